"""The study's figures (plotly → PNG through kaleido). Each function returns a figure; `save`
writes it and returns an error string instead of raising when no exporter is available."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd


def label(c: str) -> str:
    from ..curricula import CURRICULUM_LABELS
    from .suites import ARM_LABELS
    return ARM_LABELS.get(c) or CURRICULUM_LABELS.get(c, c)


def color(c: str) -> str:
    """An arm's colour; an order arm (`docl-shuffle`, `random-reversed`) takes its base arm's."""
    from ..curricula import CURRICULUM_COLORS
    from .suites import ARM_COLORS, TUNED_AS
    if c not in ARM_COLORS and c in TUNED_AS:
        return color(TUNED_AS[c])
    return ARM_COLORS.get(c) or CURRICULUM_COLORS.get(c, "#444444")


def dash(c: str) -> str:
    """Line style: an order arm is dashed (shuffled) or dotted (reversed), beside its solid base arm."""
    return "dash" if c.endswith("-shuffle") else "dot" if c.endswith("-reversed") else "solid"


def _rgba(hex_color: str, a: float) -> str:
    r, g, b = (int(hex_color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{a})"


def save(fig, path: Path, width: int, height: int) -> Optional[str]:
    """plotly → PNG through kaleido (which drives a Chrome; Debian's chromium is used if present)."""
    if "BROWSER_PATH" not in os.environ and Path("/usr/bin/chromium").exists():
        os.environ["BROWSER_PATH"] = "/usr/bin/chromium"
    error = None
    for _ in range(3):  # kaleido's page can lose a race on a loaded machine ("kaleido_scopes is not defined")
        try:
            fig.write_image(str(path), width=width, height=height, scale=2)
            return None
        except Exception as e:  # no kaleido, no browser: the report says so instead of failing
            error = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    return error


def _band(fig, x, mean, std, c, row=None, col=None, show=True, name=None):
    import plotly.graph_objects as go
    kw = dict(row=row, col=col) if row else {}
    if dash(c) == "solid":  # bands for the base arms only: eleven overlapping bands hide every line
        fig.add_trace(go.Scatter(x=np.concatenate([x, x[::-1]]), y=np.concatenate([mean + std, (mean - std)[::-1]]),
                                 mode="lines", fill="toself", fillcolor=_rgba(color(c), 0.12), line=dict(width=0),
                                 hoverinfo="skip", showlegend=False), **kw)
    fig.add_trace(go.Scatter(x=x, y=mean, mode="lines", name=name or label(c), legendgroup=c, showlegend=show,
                             line=dict(color=color(c), width=3 if c == "docl" else 2, dash=dash(c))), **kw)


def curves(title: str, rounds: pd.DataFrame, curricula, n_train: int):
    """Test accuracy against epochs (left) and against samples seen (right), mean ± std over seeds."""
    from plotly.subplots import make_subplots
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.08,
                        subplot_titles=("against epochs", "against samples seen (× N, full passes included)"))
    for c in curricula:
        sub = rounds[rounds["curriculum"] == c]
        if not len(sub):
            continue
        g = sub.groupby("epoch")
        mean, std = g["test_acc"].mean() * 100, g["test_acc"].std(ddof=1).fillna(0) * 100
        seen = g["samples_seen"].mean() / n_train
        x = mean.index.to_numpy()
        _band(fig, x, mean.to_numpy(), std.to_numpy(), c, 1, 1, True)
        _band(fig, seen.to_numpy(), mean.to_numpy(), std.to_numpy(), c, 1, 2, False)
    n = rounds["seed"].nunique()
    fig.update_yaxes(title_text="test accuracy (%)", row=1, col=1)
    fig.update_xaxes(title_text="epoch", row=1, col=1)
    fig.update_xaxes(title_text="samples seen / N", row=1, col=2)
    lo = float(np.nanpercentile(rounds["test_acc"] * 100, 10)) if len(rounds) else 0
    fig.update_yaxes(range=[max(0, lo - 5), 100])
    fig.update_layout(title=dict(text=f"{title}: test accuracy<br><sup>paper protocol; mean over {n} seeds, "
                                      "band ± 1 std</sup>", x=0.02),
                      template="plotly_white", font=dict(size=13),
                      margin=dict(l=70, r=20, t=100, b=60 + 30 * (len(curricula) // 6)),
                      legend=dict(orientation="h", yanchor="top", y=-0.16, xanchor="center", x=0.5))
    return fig


def convergence(panels: list[tuple[str, pd.DataFrame, dict]]):
    """SGD's validation and test accuracy against epochs, one panel per setting, the last quarter shaded."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots
    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[t for t, _, _ in panels],
                        horizontal_spacing=0.07, vertical_spacing=0.14)
    for i, (title, sub, conv) in enumerate(panels):
        r, c = i // cols + 1, i % cols + 1
        for col, dash, name in (("test_acc", "solid", "test"), ("val_acc", "dot", "validation")):
            g = sub.groupby("epoch")[col]
            fig.add_trace(go.Scatter(x=g.mean().index, y=g.mean().to_numpy() * 100, mode="lines+markers",
                                     name=name, legendgroup=name, showlegend=i == 0, marker=dict(size=4),
                                     line=dict(color="#2b2b2b" if col == "test_acc" else "#8c8c8c", dash=dash)),
                          row=r, col=c)
        if conv:
            fig.add_vrect(x0=conv["cut"] + 0.5, x1=conv["epochs"] - 1, fillcolor="rgba(20,80,180,0.08)",
                          line_width=0, row=r, col=c)
        low = float(np.nanmin(sub.groupby("epoch")[["test_acc", "val_acc"]].mean().to_numpy()[1:])) * 100
        fig.update_yaxes(range=[max(0.0, min(80.0, low - 2)), 100], row=r, col=c)  # the warm start's low point off
        fig.update_xaxes(title_text="epoch", row=r, col=c)
        if c == 1:
            fig.update_yaxes(title_text="accuracy (%)", row=r, col=c)
    fig.update_layout(title=dict(text="SGD (all N every epoch) under the paper recipe: accuracy against epochs"
                                      "<br><sup>mean over seeds; shaded: the last 25% of epochs, whose gain over "
                                      "the best before is the convergence check</sup>", x=0.02),
                      template="plotly_white", font=dict(size=12), height=330 * rows,
                      margin=dict(l=60, r=20, t=100, b=50))
    return fig


def fidelity(frame: pd.DataFrame):
    """Byproduct–exact rank correlation against the epoch's peak learning rate (left) and against
    the epoch (right), one colour per run variant; on the right, where the frame has them, dashed:
    ρ_start (the byproduct after the epoch against the exact score at its start), dotted: the exact
    score's persistence over the epoch (the ceiling for a look-back estimator)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.08,
                        subplot_titles=("against the epoch's peak learning rate", "against the epoch"))
    palette = ["#1450b4", "#e8862a", "#7b3f9e", "#2a9d4b", "#c0392b", "#8c8c8c", "#74b3e0", "#2b2b2b"]
    for i, (key, g) in enumerate(frame.groupby("group", sort=True)):
        col = palette[i % len(palette)]
        fig.add_trace(go.Scatter(x=g["lr"], y=g["spearman_all"], mode="markers", name=key, legendgroup=key,
                                 marker=dict(color=col, size=6, opacity=0.7)), row=1, col=1)
        m = g.groupby("epoch")["spearman_all"].mean()
        fig.add_trace(go.Scatter(x=m.index, y=m.to_numpy(), mode="lines+markers", name=key, legendgroup=key,
                                 showlegend=False, line=dict(color=col), marker=dict(size=4)), row=1, col=2)
        for column, dash, what in (("spearman_start", "dash", "ρ_start"), ("exact_persistence", "dot", "persistence")):
            if column in g and g[column].notna().any():
                m = g.groupby("epoch")[column].mean().dropna()
                fig.add_trace(go.Scatter(x=m.index, y=m.to_numpy(), mode="lines", name=f"{key}, {what}",
                                         legendgroup=key, showlegend=False, line=dict(color=col, dash=dash)),
                              row=1, col=2)
    for c in (1, 2):
        fig.add_hline(y=0, line=dict(color="black", width=1, dash="dot"), row=1, col=c)
    lrs = sorted(frame["lr"].dropna().unique()) if "lr" in frame else []
    few = dict(tickvals=lrs, ticktext=[f"{v:g}" for v in lrs]) if 0 < len(lrs) <= 6 else {}  # label each one
    fig.update_xaxes(title_text="peak learning rate of the epoch", type="log", row=1, col=1, **few)
    fig.update_xaxes(title_text="epoch (round)", row=1, col=2)
    fig.update_yaxes(title_text="Spearman ρ (byproduct, exact), all N", row=1, col=1)
    fig.update_layout(title=dict(text="How far the authors' byproduct score is from the exact score"
                                      "<br><sup>one point per logged epoch of each fidelity run; exact score "
                                      "logged every epoch; right: solid same epoch, dashed ρ_start, "
                                      "dotted exact persistence</sup>", x=0.02),
                      template="plotly_white", font=dict(size=12), margin=dict(l=70, r=20, t=100, b=60),
                      legend=dict(orientation="h", yanchor="bottom", y=-0.4, xanchor="center", x=0.5))
    return fig


def budget(title: str, panels):
    """DoCL's paired difference against SGD and Random (both reports) against the epoch budget E,
    mean with its 95% interval as error bars; a dashed zero line."""
    import plotly.graph_objects as go
    fig = go.Figure()
    styles = {"SGD": color("sgd"), "Random": color("random")}
    budgets = sorted({int(e) for _, pts in panels for e, r in pts if r and r.get("n")})
    for i, (name, pts) in enumerate(panels):
        pts = [(e, r) for e, r in pts if r and r.get("n")]
        if not pts:
            continue
        e = np.array([p[0] for p in pts], dtype=float) * (1 + 0.03 * (i - 1.5))  # side by side, not on top
        m = np.array([p[1]["mean"] for p in pts])
        lo, hi = np.array([p[1]["low"] for p in pts]), np.array([p[1]["high"] for p in pts])
        c = next((v for k, v in styles.items() if k in name), "#444444")
        fig.add_trace(go.Scatter(x=e, y=m, mode="lines+markers", name=name,
                                 line=dict(color=c, dash="solid" if "last" in name else "dot", width=2),
                                 error_y=dict(type="data", symmetric=False, array=np.nan_to_num(hi - m),
                                              arrayminus=np.nan_to_num(m - lo), thickness=1.5)))
    fig.add_hline(y=0, line=dict(color="#888", dash="dash", width=1))
    fig.update_layout(title=f"{title}: DoCL's difference against the epoch budget (95% intervals)",
                      xaxis=dict(title="epochs E (log scale)", type="log", tickvals=budgets,  # the budgets only
                                 ticktext=[str(b) for b in budgets], minor=dict(showgrid=False)),
                      yaxis=dict(title="DoCL − baseline (accuracy points)"),
                      template="plotly_white", legend=dict(orientation="h", y=-0.2))
    return fig
