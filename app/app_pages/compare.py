"""Compare: accuracy of every curriculum against rounds and gradient steps, final table, timings."""
import plotly.graph_objects as go
import streamlit as st

from app import common
from docl_core import views

ctx = common.context()
st.title("Compare curricula")
st.caption("Does DoCL beat Random, SPL and MCL on this experiment? Mean over seeds, band = ± 1 std.")

summary = ctx.summary()
live = any(r.is_live for r in ctx.runs)
if ctx.runs:  # what this experiment is, in one line, before any chart
    meta = ctx.runs[0].meta
    cfg = meta.get("config") or {}
    parts = [f"**{cfg.get('dataset', '?')}**"]
    if meta.get("num_train"):
        parts.append(f"N = {int(meta['num_train']):,} training samples")
    if cfg.get("label_noise"):
        parts.append(f"{100 * float(cfg['label_noise']):.0f} % flipped labels")
    n_seeds = len({r.seed for r in ctx.runs})
    parts.append(f"{len(ctx.curricula)} curricula × {n_seeds} seed{'s' if n_seeds != 1 else ''}")
    if meta.get("rounds_planned"):
        parts.append(f"{meta['rounds_planned']} rounds")
    st.markdown(f"**Experiment** `{ctx.exp_dir.name}`: " + ", ".join(parts))


def curves():
    rounds = ctx.rounds()
    if not len(rounds):
        st.info("No run has committed a round yet; curves appear as soon as one does.")
        return
    c1, c2 = st.columns([1, 1])
    def logged(cols):  # the metrics these runs logged (a user's own loop may log only some)
        return [c for c in cols if c in rounds.columns and rounds[c].notna().any()]

    sets = {"test": "test set", "val": "validation set", "train": "training set"}
    accs = logged(["test_acc", "val_acc", "train_acc"])
    regression = not accs  # no accuracy logged: the loss (MSE for regression) on the same sets
    if regression:
        losses = logged(["test_loss", "val_loss", "train_loss"])
        if not losses:
            st.info("These runs log neither accuracy nor loss per round: pass eval_sets to DynamicsTracker "
                    "or metrics to end_round to see curves here.")
            return
        metric = c1.radio("Loss on", losses, horizontal=True, key="cmp_metric_loss",
                          format_func=lambda m: sets[m.split("_")[0]])
    else:
        metric = c1.radio("Accuracy on", accs, horizontal=True, key="cmp_metric",
                          format_func=lambda m: sets[m.split("_")[0]])
    x = c2.radio("Against", ["round", "steps"], horizontal=True, key="cmp_x",
                 format_func={"round": "rounds", "steps": "gradient steps"}.get)
    df = views.accuracy_curves(rounds, metric, x)
    scale = 100.0 if metric.endswith("acc") else 1.0
    fig = go.Figure()
    for cur in common.sort_curricula(df["curriculum"]):
        g = df[df["curriculum"] == cur].sort_values("x")
        color = common.curriculum_color(cur)
        name = common.curriculum_label(cur)
        if g["seeds"].max() > 1:
            fig.add_trace(go.Scatter(x=list(g["x"]) + list(g["x"])[::-1],
                                     y=list(scale * g["hi"]) + list(scale * g["lo"])[::-1],
                                     fill="toself", fillcolor=color, opacity=0.18, line=dict(width=0),
                                     hoverinfo="skip", showlegend=False, legendgroup=name))
        fig.add_trace(go.Scatter(x=g["x"], y=scale * g["mean"], name=name, legendgroup=name,
                                 mode="lines+markers", line=dict(color=color, width=2.5), marker=dict(size=5),
                                 customdata=g[["seeds"]],
                                 hovertemplate=f"{name}<br>%{{x}}<br>%{{y:.2f}}<br>seeds: %{{customdata[0]}}<extra></extra>"))
    label = {"test_acc": "test accuracy (%)", "val_acc": "validation accuracy (%)",
             "train_acc": "training accuracy (%)", "test_loss": "test loss", "val_loss": "validation loss",
             "train_loss": "training loss"}[metric]
    fig.update_layout(title=f"{label.split(' (')[0].capitalize()} per curriculum",
                      xaxis_title="round" if x == "round" else "gradient steps (cumulative, warm start included)",
                      yaxis_title=label, height=430, hovermode="x unified")
    common.chart(fig, ("Lower is better: look for the curve that falls earliest and ends lowest"
                       if regression else "Look for the curve that climbs earliest and ends highest")
                 + "; overlapping bands mean the seeds cannot tell the curricula apart. Every curriculum "
                 "trains on k_t samples a round: one that picks a narrow slice early (see the class balance on "
                 "Selected subsets) can trail Random until k_t grows.", key="cmp_curve")
    common.download(df, f"{ctx.exp_dir.name}-{metric}-by-{x}", key="dl_curves")

    st.subheader("Final test MSE (Table-1 style)" if regression else "Final accuracy (Table-1 style)")
    table = views.final_accuracy_table(rounds, summary)
    table = table.set_index("curriculum").loc[common.sort_curricula(table["curriculum"])].reset_index()
    shown = table[[c for c in table.columns if not c.endswith(" mean")]].copy()
    shown["curriculum"] = shown["curriculum"].map(common.curriculum_label)
    st.dataframe(shown, hide_index=True)
    st.caption("Mean ± std over seeds at the last round of each complete run (one seed: no std); the best "
               "curriculum is the one to beat, and a gap smaller than the std is not a win.")
    common.download(shown, f"{ctx.exp_dir.name}-final-accuracy", key="dl_final")
    if not regression and len(table) and table["test acc (%) mean"].notna().any():
        best = table.loc[table["test acc (%) mean"].idxmax()]
        cols = st.columns(min(5, len(table)))
        for col, (_, row) in zip(cols, table.iterrows()):
            delta = None
            rnd = table[table["curriculum"] == "random"]
            if len(rnd) and row["curriculum"] != "random":
                delta = f"{row['test acc (%) mean'] - rnd['test acc (%) mean'].iloc[0]:+.2f} vs Random"
            col.metric(common.curriculum_label(row["curriculum"]) + (" ★" if row["curriculum"] == best["curriculum"] else ""),
                       f"{row['test acc (%) mean']:.2f} %", delta)

    st.subheader("Where the time goes")
    timing = views.timing_table(rounds)
    if len(timing):
        timing["curriculum"] = timing["curriculum"].map(common.curriculum_label)
        order = [common.curriculum_label(c) for c in common.sort_curricula(rounds["curriculum"])]
        fig = go.Figure()
        for phase, color in zip(timing["phase"].unique(), ["#44AA99", "#DDCC77", "#CC6677", "#AAAAAA"]):
            d = timing[timing["phase"] == phase].set_index("curriculum").reindex(order)
            fig.add_trace(go.Bar(x=order, y=d["seconds"], name=phase, marker_color=color))
        fig.update_layout(barmode="stack", title="Mean time per round, by phase", yaxis_title="seconds per round",
                          height=360)
        common.chart(fig, "Scoring and selection are the price of a curriculum: compare them with the "
                     "training time they are meant to save.", key="cmp_time")
        common.download(timing, f"{ctx.exp_dir.name}-timings", key="dl_time")


common.live_area(curves, live)

st.subheader("Runs in this experiment")
order = {c: i for i, c in enumerate(common.sort_curricula(summary["curriculum"]))}
shown = summary.assign(_o=summary["curriculum"].map(order)).sort_values(["_o", "seed", "run"]).drop(columns="_o")
shown = shown.assign(curriculum=shown["curriculum"].map(common.curriculum_label))
shown = shown[[c for c in shown.columns if c not in ("error",) or shown[c].notna().any()]]  # no empty error column
st.dataframe(shown, hide_index=True)
st.caption("Status per run: ● running runs refresh on their own; failed runs show why they stopped.")
