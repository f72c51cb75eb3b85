"""Score atlas: the selection beside the per-sample scores researchers already use (EL2N, GraNd,
forgetting, AUM, data maps, the loss) and the DoCL score a; the numbers come from docl_core.atlas."""
from contextlib import nullcontext

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from app import common
from docl_core import atlas, views
from docl_core.store import RunReader

ctx = common.context()
st.title("Score atlas")
run = common.need_focus(ctx)
WORD = common.round_word(run)
DRIVING = atlas.driving_column(run.meta)
st.caption(f"Is this curriculum's selection just \"the hard samples\" (or the easy ones) by a score you already "
           f"know? For one {WORD}: how every logged score ranks the samples against the others, and how much of "
           f"the selected set S sits at each score's top or bottom k = |S|. This run selected by "
           f"**{atlas.label(DRIVING) if DRIVING else 'no score (uniformly at random)'}**.")
MAX_POINTS = 6000


@st.cache_data(max_entries=16, show_spinner="Reading the scores…")
def round_frame(run_dir: str, stamp: int, t: int) -> pd.DataFrame:
    return atlas.round_scores(RunReader(run_dir), t)


@st.cache_data(max_entries=8, show_spinner="Comparing the selection with every score, round by round…")
def resemblance(run_dir: str, stamp: int) -> pd.DataFrame:
    return atlas.selection_resemblance(run_dir)


def presentation_text() -> dict:
    return dict(size=common.PRESENTATION_FONT["tick"]) if common.presenting() else dict(size=13)


def correlation_heatmap(frame: pd.DataFrame, cols: list[str], t: int) -> None:
    rho = atlas.rank_correlations(frame, cols)
    presenting = common.presenting()
    # presenting, short names (the long ones ran the column labels off the screen) on one screen with the takeaway
    names = [atlas.label(c).replace("authors' byproduct score", "byproduct").replace("exact score", "exact a_i")
             if presenting else atlas.label(c) for c in cols]
    fig = go.Figure(go.Heatmap(z=rho.to_numpy(), x=names, y=names, zmin=-1, zmax=1, zmid=0, colorscale="RdBu_r",
                               text=np.round(rho.to_numpy(), 2), texttemplate="%{text:.2f}",
                               textfont=presentation_text(), colorbar=dict(title="ρ"),
                               hovertemplate="%{y} vs %{x}: ρ = %{z:.3f}<extra></extra>"))
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(title=f"Spearman rank correlation between scores, {WORD} {t}",
                      height=max(380, 46 * len(cols) + 140))
    if presenting:
        fig.update_xaxes(tickangle=-40)
    chart_box, note_box = st.columns([2, 1], gap="medium") if presenting else (nullcontext(), nullcontext())
    with chart_box:
        common.chart(fig, "Each cell: how alike two scores rank the training samples (+1: the same order, −1: "
                          "reversed, 0: unrelated). Margin, AUM, confidence and correctness are large for easy "
                          "samples, the others for hard ones, so a negative ρ between the two groups means they agree.",
                         key="at_rho", present_height=min(600, 40 * len(cols) + 200))
    others = rho[DRIVING].drop(DRIVING) if DRIVING in cols else None
    if others is not None and len(others) and others.notna().any():
        near = others.abs().idxmax()
        with note_box:
            common.takeaway(f"In {WORD} {t} the selection's own score, {atlas.label(DRIVING)}, ranks samples most "
                            f"like {atlas.label(near)} (ρ = {others[near]:+.2f}).")
    elif presenting:  # no score drove the selection: the two scores that rank the samples most alike
        R = rho.to_numpy(dtype=float).copy()
        np.fill_diagonal(R, np.nan)
        if np.isfinite(R).any():
            i, j = np.unravel_index(np.nanargmax(np.abs(R)), R.shape)
            with note_box:
                common.takeaway(f"In {WORD} {t} the two scores that rank samples most alike are "
                                f"{atlas.label(cols[i])} and {atlas.label(cols[j])} (ρ = {R[i, j]:+.2f}).")


def overlap_bars(frame: pd.DataFrame, cols: list[str], t: int) -> None:
    try:
        ov = atlas.selection_overlap(frame, cols)
    except atlas.AtlasError as e:
        st.info(f"{e}.")
        return
    k, chance = int(ov["k"].iloc[0]), float(ov["chance"].iloc[0])
    fig = go.Figure()
    fig.add_trace(go.Bar(x=ov["label"], y=ov["top"], name="top k (largest values)", marker_color="#1450b4"))
    fig.add_trace(go.Bar(x=ov["label"], y=ov["bottom"], name="bottom k (smallest values)", marker_color="#e8862a"))
    fig.add_hline(y=chance, line_dash="dash", line_color="#444444",
                  annotation_text=f"chance {chance:.2f}", annotation_position="top left")
    fig.update_layout(barmode="group", height=420, yaxis=dict(range=[0, 1], title="share of S"),
                      title=f"Where the {k:,} selected samples sit, {WORD} {t}")
    common.chart(fig, f"For each score, the share of the selected set S among its k = {k:,} largest (blue) and "
                      f"k smallest (orange) values; the dashed line is what a uniform draw of k would give.",
                 key="at_overlap")
    score, side, share = atlas.best_match(ov[ov["score"] != DRIVING] if DRIVING in set(ov["score"]) else ov)
    common.takeaway(f"S overlaps most with the {side} k of {atlas.label(score)}: {100 * share:.0f}% of its samples, "
                    f"against {100 * chance:.0f}% by chance" + (" (the selection's own score left out)."
                                                                if DRIVING in set(ov["score"]) else "."))


def resemblance_lines(res: pd.DataFrame) -> None:
    if not len(res):
        st.info(f"No {WORD} of this run selected a proper subset (every {WORD} trained on all samples, or none): "
                "there is no selection to compare with the scores.")
        return
    cols = [c[len("overlap_"):] for c in res.columns if c.startswith("overlap_")]
    palette = ["#1450b4", "#74b3e0", "#2b2b2b", "#e8862a", "#7b3f9e", "#117733", "#CC6677", "#DDCC77",
               "#88CCEE", "#AA4499", "#44AA99", "#999933", "#8c8c8c", "#332288"]
    fig = go.Figure()
    for i, c in enumerate(cols):
        fig.add_trace(go.Scatter(x=res["round"], y=res[f"overlap_{c}"], name=atlas.label(c), mode="lines+markers",
                                 line=dict(color=palette[i % len(palette)], width=2,
                                           dash="dot" if c == DRIVING else "solid"), marker=dict(size=5)))
    fig.add_trace(go.Scatter(x=res["round"], y=res["chance"], name="chance", mode="lines",
                             line=dict(color="#999999", width=2, dash="dash")))
    fig.update_layout(height=440, xaxis_title=WORD, yaxis=dict(title="share of S at the score's nearer end",
                                                                 range=[0, 1]),
                      title=f"Which score the selection resembles, {WORD} by {WORD}")
    common.chart(fig, f"Per {WORD}, the larger of a score's top-k and bottom-k overlap with S (dotted: the score "
                      f"that drove the selection).", key="at_rounds")
    best = atlas.most_resembled(res)
    if best:
        wins = int((res["resembles"] == best).sum())
        common.takeaway(f"Leaving its own score aside, the selection resembled {atlas.label(best)} most in "
                        f"{wins} of {len(res)} {WORD}s.")
    if DRIVING is not None and not common.presenting():
        rho = res[[c for c in res.columns if c.startswith("rho_") and c != f"rho_{DRIVING}"]]
        if rho.notna().any().any():
            fig = go.Figure()
            for i, c in enumerate(rho.columns):
                fig.add_trace(go.Scatter(x=res["round"], y=rho[c], name=atlas.label(c[len("rho_"):]),
                                         mode="lines+markers", line=dict(color=palette[i % len(palette)], width=2),
                                         marker=dict(size=5)))
            fig.update_layout(height=380, xaxis_title=WORD, yaxis=dict(title="Spearman ρ", range=[-1, 1]),
                              title=f"Rank correlation of {atlas.label(DRIVING)} with each score")
            common.chart(fig, "", key="at_rho_rounds", secondary=True)


def scatter(frame: pd.DataFrame, cols: list[str], t: int) -> None:
    names = {c: atlas.label(c) for c in cols}
    default_x = DRIVING if DRIVING in cols else cols[0]
    default_y = next((c for c in ("el2n", "loss", "aum", "margin") if c in cols and c != default_x),
                     cols[1] if cols[1] != default_x else cols[0])
    for key, default in (("at_x", default_x), ("at_y", default_y)):
        if st.session_state.get(key) not in cols:
            st.session_state[key] = default
    c1, c2 = st.columns(2)
    x = c1.selectbox("x: score", cols, key="at_x", format_func=names.get)
    y = c2.selectbox("y: score", cols, key="at_y", format_func=names.get)
    # drawn on the server: at most MAX_POINTS, every (selected, flipped label) group present, small ones whole
    shown = views.downsample_rows(frame, MAX_POINTS, groups=frame["selected"].astype(int) * 2
                                  + frame["noisy"].astype(int))
    fig = go.Figure()
    groups = ((False, False, "not selected", "#9EB9D4", "circle"), (True, False, "selected", "#1450b4", "circle"),
              (False, True, "flipped label, not selected", "#e8862a", "x"),
              (True, True, "flipped label, selected", "#D55E00", "x"))
    for sel, noisy, name, color, symbol in groups:
        d = shown[(shown["selected"] == sel) & (shown["noisy"] == noisy)]
        if not len(d):
            continue
        fig.add_trace(go.Scattergl(x=d[x], y=d[y], mode="markers", name=name, opacity=0.75,
                                   marker=dict(size=6, color=color, symbol=symbol),
                                   customdata=d["sample_id"],
                                   hovertemplate=f"sample %{{customdata}}<br>{names[x]} %{{x:.4g}}<br>"
                                                 f"{names[y]} %{{y:.4g}}<extra>{name}</extra>"))
    fig.update_layout(height=520, xaxis_title=names[x], yaxis_title=names[y],
                      title=f"{names[y]} against {names[x]}, {WORD} {t}" + (
                          f" ({len(shown):,} of {len(frame):,} samples drawn; selected and flipped-label groups "
                          "kept, small ones whole)"
                          if len(shown) < len(frame) else ""))
    common.chart(fig, "Blue: selected this " + WORD + "; crosses: samples whose training label was flipped.",
                 key="at_scatter")


def body():
    run.refresh()
    ids = run.round_ids
    t = common.round_slider(ids, "at_round", word=WORD, live=run.is_live)
    stamp = common.run_stamp(run.dir)
    try:
        frame = round_frame(str(run.dir), stamp, t)
    except atlas.AtlasError as e:
        st.warning(f"{e}.")
        return
    cols = atlas.score_columns(frame)
    if len(cols) < 2:
        st.info(f"{WORD.capitalize()} {t} of this run has fewer than two scores that vary across samples "
                f"({', '.join(atlas.label(c) for c in cols) or 'none'}): nothing to compare. Runs made before the "
                "score atlas lack EL2N's companions; rerun to log them.")
        return
    absent = [atlas.label(c) for c in ("margin", "entropy", "forgetting", "aum") if c not in frame]
    if absent and run.task != "regression":
        st.caption(f"This run was made before {', '.join(absent)} were logged: they are absent here "
                   "(EL2N and the data map are derived from its residual norms and p(given label)).")
    if not common.presenting():  # presenting, the chart's title says it (one screen: the heatmap and its takeaway)
        st.subheader("How the scores rank the samples")
    correlation_heatmap(frame, cols, t)
    st.subheader("Where the selection sits on each score")
    overlap_bars(frame, cols, t)
    st.subheader(f"Over {WORD}s")
    resemblance_lines(resemblance(str(run.dir), stamp))
    st.subheader("Any two scores")
    scatter(frame, cols, t)
    common.download(frame, f"{run.dir.name}-atlas-{WORD}{t}", label="Download this round's scores (CSV)",
                    key="dl_atlas")


common.live_area(body, run.is_live)
