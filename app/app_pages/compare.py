"""Compare: accuracy of every curriculum against rounds and gradient steps, final table, timings."""
from contextlib import nullcontext

import plotly.graph_objects as go
import streamlit as st

from app import common
from docl_core import views

ctx = common.context()
st.title("Compare curricula")
common.need_runs(ctx)
_others = [common.legend_label(c) for c in ctx.curricula if c != "docl"]  # the curricula this experiment has
st.caption((f"Does DoCL beat {views.and_list(_others)} on this experiment, and at what cost in computation?"
            if "docl" in ctx.curricula and _others else
            f"How do {views.and_list([common.legend_label(c) for c in ctx.curricula])} compare on this experiment, "
            "and at what cost in computation?"))
summary = ctx.summary()
live = any(r.is_live for r in ctx.runs)
first_view = common.first_view(live)
if ctx.runs:  # what this experiment is, in one line, before any chart
    meta = ctx.runs[0].meta
    cfg = meta.get("config") or {}
    parts = [f"**{cfg.get('dataset', '?')}**"]
    if meta.get("num_train"):
        parts.append(f"N = {common.plural(int(meta['num_train']), 'training sample')}")
    if cfg.get("label_noise"):
        parts.append(f"{100 * float(cfg['label_noise']):.0f} % flipped labels")
    n_seeds = len({r.seed for r in ctx.runs})
    parts.append(f"{common.plural(len(ctx.curricula), 'curriculum', 'curricula')} × {common.plural(n_seeds, 'seed')}")
    if meta.get("rounds_planned"):
        parts.append(common.plural(int(meta["rounds_planned"]), common.round_word(ctx=ctx))
                     + (" (the paper's protocol)" if ctx.protocol == "paper" else ""))
    about = common.experiment_about(ctx.exp_dir)  # what the experiment is for (the demos say it)
    st.markdown(f"**Experiment** `{ctx.exp_dir.name}`: " + ", ".join(parts) + (f"  \n*For:* {about}" if about else ""))
    # its budget and seeds, beside the study's answer to the same question (docs/RESULTS*.json)
    answer = views.study_answer(cfg.get("dataset", ""), float(cfg.get("label_noise") or 0), ctx.protocol)
    study_said = views.study_sentence(answer, common.legend_label, meta.get("rounds_planned"), n_seeds,
                                      common.round_word(ctx=ctx)) if answer else ""
    if study_said and not common.presenting():  # presenting: under the chart, which keeps the first screen
        st.caption(study_said)


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
    word = common.round_word(ctx=ctx)
    xs = ["round", "steps"] + (["samples_seen"] if "samples_seen" in rounds and rounds["samples_seen"].notna().any() else [])
    if st.session_state.get("cmp_x") not in xs:
        st.session_state["cmp_x"] = "round"
    x = c2.radio("Against", xs, horizontal=True, key="cmp_x",
                 format_func={"round": f"{word}s", "steps": "gradient steps", "samples_seen": "samples seen"}.get,
                 help="Accuracy per unit of computation: gradient steps and samples trained on, not only "
                      f"{word}s (DoCL's claim is accuracy *and* computation).")
    df = views.accuracy_curves(rounds, metric, x)
    ref = views.reference_curriculum(ctx.curricula, ctx.protocol)  # every curriculum is paired against it
    scale = 100.0 if metric.endswith("acc") else 1.0
    fig = go.Figure()
    for cur in common.sort_curricula(df["curriculum"]):
        g = df[df["curriculum"] == cur].sort_values("x")
        color = common.curriculum_color(cur)
        name = common.legend_label(cur)
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
    xtitle = {"round": word, "steps": "gradient steps (cumulative, warm start included)",
              "samples_seen": "samples seen (cumulative samples trained on)"}[x]
    fig.update_layout(title=f"{label.split(' (')[0].capitalize()} per curriculum",
                      xaxis_title=xtitle, yaxis_title=label, height=430, hovermode="x unified")
    # presenting, one 1920×1080 screen: the verdict callout beside the curves, the legend above them
    chart_box, note_box = st.columns([11, 9], gap="medium") if common.presenting() else (nullcontext(), nullcontext())
    if common.presenting():
        fig.update_layout(legend=dict(orientation="h", yanchor="bottom", y=1.0, x=0, xanchor="left"),
                          title=None)
    with chart_box:
        common.chart(fig, ("Lower is better: look for the curve that falls earliest and ends lowest"
                           if regression else "Look for the curve that climbs earliest and ends highest")
                     + "; overlapping bands (± 1 std over seeds) mean the seeds cannot tell the curricula apart. "
                     + ("Against samples seen, a curve to the left reached its accuracy with less computation. "
                        if x != "round" else "")
                     + f"Every curriculum but SGD trains on k_t samples per {word}: one that picks a narrow slice early "
                     f"(see the class balance on Selected subsets) can trail {common.legend_label(ref)} until k_t grows.",
                     key="cmp_curve", present_height=560)
    if first_view:  # a new visitor sees this chart before the rest of the page is sent
        common.rest_follows()
        return
    common.download(df, f"{ctx.exp_dir.name}-{metric}-by-{x}", key="dl_curves")

    # winners only when the data says so: paired by seed against the reference, 95 % t-interval
    final_metric = "test_loss" if regression else "test_acc"
    sign, unit, pscale = (-1.0, "(MSE, lower is better)", 1.0) if regression else (1.0, "points", 100.0)
    complete = summary.loc[summary["status"] == "complete", "run"]
    final = views.paired_differences(rounds, final_metric, ref, final=True, complete=complete, sign=sign)
    per_round = views.paired_differences(rounds, final_metric, ref, sign=sign)
    table = views.final_accuracy_table(rounds, summary)
    table = table.set_index("curriculum").loc[common.sort_curricula(table["curriculum"])].reset_index()
    mean_col = "test MSE mean" if regression else "test acc (%) mean"
    means = {c: sign * m for c, m in zip(table["curriculum"], table[mean_col])} if len(table) else {}
    star = views.winner(final, means, ref)
    verdicts = {r["curriculum"]: r for r in final.to_dict("records")}
    lines = [views.verdict_sentence(verdicts[c], common.legend_label, ref, unit, pscale)
             for c in common.sort_curricula(verdicts)]
    lead = views.lead_sentence(per_round, "docl", common.legend_label, ref, word, unit, pscale) \
        if "docl" in verdicts else ""
    if lines:
        head = views.compare_headline(final.set_index("curriculum").loc[common.sort_curricula(verdicts)].reset_index(),
                                      star, common.legend_label, ref)
        with note_box:
            common.takeaway(head + " At the last " + word + ", paired by seed:\n\n"
                            + "\n".join(f"- {t}" for t in lines) + (f"\n\n{lead}" if lead else ""))

    st.subheader("Final test MSE (Table-1 style)" if regression else "Final accuracy (Table-1 style)")
    if len(table) and table[mean_col].notna().any():
        cols = st.columns(min(6, len(table)))
        for col, (_, row) in zip(cols, table.iterrows()):
            cur = row["curriculum"]
            v = verdicts.get(cur)
            delta = None
            if v is not None:
                delta = f"{pscale * v['mean']:+.2f} vs {common.curriculum_label(ref)}"
            value = f"{row[mean_col]:.4f}" if regression else f"{row[mean_col]:.2f} %"
            col.metric(common.curriculum_label(cur) + (" ★" if cur == star else ""), value, delta,
                       delta_color="normal" if v is not None and v["verdict"] in ("beats", "trails") else "off",
                       help=(views.verdict_sentence(v, common.legend_label, ref, unit, pscale) if v is not None
                             else "The reference every other curriculum is paired against."))
    if not common.presenting():
        shown = table[[c for c in table.columns if not c.endswith(" mean")]].copy()
        shown["curriculum"] = shown["curriculum"].map(common.curriculum_label)
        # st.table: a few rows need no scrollable grid (on the first page a new user waits for; measured with
        # benchmarks/bench_app.py --first-load, the browser's busy time did not change measurably either way)
        st.table(shown.set_index("curriculum"))
        st.markdown(f"Mean ± std over seeds at the last {word} of each complete run (one seed: no std). A ★ marks "
                    f"a winner only when its difference to {common.legend_label(ref)}, paired by seed, has a 95 % "
                    f"t-interval that excludes zero (≥ {views.MIN_SEEDS} seeds); the delta under each value is that "
                    "paired mean difference, grey when the interval includes zero.")
        common.download(shown, f"{ctx.exp_dir.name}-final-accuracy", key="dl_final")

    if not regression and len(table):
        claim = views.paper_claim(final, means, ref, common.legend_label, unit, pscale)
        st.subheader("The paper's claim and this lab")
        left, right = st.columns(2)
        left.markdown(claim["claim"])
        right.markdown(claim["here"] + {True: " It agrees with the claim here.",
                                        False: " It does not reproduce the claim here.",
                                        None: ""}[claim["agrees"]])

    if len(per_round):
        fig = go.Figure()
        fig.add_hline(y=0, line=dict(color="#888888", width=1, dash="dot"))
        for cur in common.sort_curricula(per_round["curriculum"]):
            g = per_round[per_round["curriculum"] == cur].sort_values("round")
            color, name = common.curriculum_color(cur), common.legend_label(cur)
            band = g[g["seeds"] >= views.MIN_SEEDS].dropna(subset=["lo", "hi"])  # 1 df: bands ±12.7 std wide
            if len(band):
                fig.add_trace(go.Scatter(x=list(band["round"]) + list(band["round"])[::-1],
                                         y=list(pscale * band["hi"]) + list(pscale * band["lo"])[::-1], fill="toself",
                                         fillcolor=color, opacity=0.15, line=dict(width=0), hoverinfo="skip",
                                         showlegend=False, legendgroup=name))
            fig.add_trace(go.Scatter(x=g["round"], y=pscale * g["mean"], name=name, legendgroup=name,
                                     mode="lines+markers", line=dict(color=color, width=2), marker=dict(size=5)))
        fig.update_layout(title=f"Difference to {common.legend_label(ref)} per {word}, paired by seed",
                          xaxis_title=word, yaxis_title=f"difference ({unit})", height=360)
        common.chart(fig, f"Above zero: better than {common.legend_label(ref)} in that {word}. Bands are 95 % "
                     f"t-intervals over paired seeds, drawn with ≥ {views.MIN_SEEDS} seeds"
                     + (f" (this experiment has {int(per_round['seeds'].max())}: no bands)."
                        if per_round["seeds"].max() < views.MIN_SEEDS else "."), key="cmp_diff", secondary=True)

    timing = views.timing_table(rounds)
    if len(timing) and not common.presenting():
        time_chart(timing, rounds, word)


PHASES = {"score": ("score pass", "#CC6677"), "select": ("selection", "#DDCC77"),
          "train": ("training", "#44AA99"), "eval": ("evaluation", "#AAAAAA")}


def time_chart(timing, rounds, word: str) -> None:
    """Median seconds per round in each phase with its spread; logging-only passes hatched."""
    st.subheader("Where the time goes")
    order = common.sort_curricula(rounds["curriculum"])
    labels = [common.curriculum_label(c) for c in order]
    fig = go.Figure()
    for phase in [p for p in PHASES if p in set(timing["phase"])]:
        name, color = PHASES[phase]
        d = timing[timing["phase"] == phase].set_index("curriculum").reindex(order)
        used = d["used"].fillna(True).astype(bool).to_numpy()
        # a phase whose result some curricula only log is split in two traces sharing one slot:
        # solid where it drives the selection, hatched where it is logging only
        for part, keep in (("", used), (", logging only", ~used)):
            if not keep.any():
                continue
            y = d["seconds"].where(keep)
            fig.add_trace(go.Bar(
                x=labels, y=y, name=name + part, offsetgroup=phase, marker_color="#F2D4DA" if part else color,
                marker_line=dict(color=color, width=1.2 if part else 0),
                marker_pattern=dict(shape="/" if part else "", fgcolor=color, solidity=0.35),
                error_y=dict(type="data", symmetric=False, array=(d["q75"] - d["seconds"]).where(keep),
                             arrayminus=(d["seconds"] - d["q25"]).where(keep), color="#444444", thickness=1.2, width=4),
                customdata=list(zip(d["q25"], d["q75"], d["rounds"].fillna(0).astype(int))),
                hovertemplate=f"%{{x}} · {name}{part}<br>median %{{y:.3g}} s per {word} (middle half "
                              f"%{{customdata[0]:.3g}}–%{{customdata[1]:.3g}} s over %{{customdata[2]}} {word}s)<extra></extra>"))
    fig.update_layout(barmode="group", title=f"Median wall-clock time per {word}, by phase",
                      yaxis_title=f"seconds per {word} (median)", height=380, bargap=0.25)
    logged_only_ids = [c for c in order
                       if not timing.loc[(timing["curriculum"] == c) & (timing["phase"] == "score"), "used"].all()]
    logged_only = [common.legend_label(c) for c in logged_only_ids]
    common.chart(fig, f"Each bar is the median over every committed {word} of every seed; the whisker spans the "
                 f"middle half of those {word}s (25th to 75th percentile). These are wall-clock times, measured on "
                 "whatever machine ran the runs, possibly shared with other jobs: a busy moment slows a phase for "
                 "reasons that have nothing to do with the method, so read only large, consistent differences. "
                 "The chart cannot show CPU time or the cost on an idle machine (the benchmarks measure that)."
                 + (f" Hatched: the score pass of {', '.join(logged_only)}, which "
                    f"{'does' if len(logged_only) == 1 else 'do'} not select by score: the scores are logged for these "
                    "pages only" + (" (SPL and MCL use only the losses of that pass)" if {"spl", "mcl"} & set(logged_only_ids)
                                     else "") + ", so it is not a cost of the method."
                    if logged_only else ""), key="cmp_time", secondary=True)
    shown = timing.assign(curriculum=timing["curriculum"].map(common.curriculum_label),
                          phase=[PHASES.get(p, (p,))[0] + ("" if u else " (logging only)")
                                 for p, u in zip(timing["phase"], timing["used"])])
    common.download(shown.rename(columns={"seconds": "median_s", "q25": "q25_s", "q75": "q75_s"}),
                    f"{ctx.exp_dir.name}-timings", key="dl_time")


common.live_area(curves, live)
if ctx.runs and study_said and common.presenting():
    st.caption(study_said)

def runs_table():
    st.subheader("Runs in this experiment")
    order = {c: i for i, c in enumerate(common.sort_curricula(summary["curriculum"]))}
    shown = summary.assign(_o=summary["curriculum"].map(order)).sort_values(["_o", "seed", "run"]).drop(columns="_o")
    shown = shown.assign(curriculum=shown["curriculum"].map(common.curriculum_label))
    shown = shown[[c for c in shown.columns if c not in ("error",) or shown[c].notna().any()]]  # no empty error column
    st.table(shown.set_index("run"))  # a static table: see the final-accuracy table
    st.markdown("Status per run: ● running runs refresh on their own; failed runs show why they stopped.")


if not common.presenting() and not first_view:
    runs_table()
