"""Sample: one training sample's history (loss, p(given label), residual, speed, score, selection)."""
from contextlib import nullcontext

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from app import common
from docl_core import views
from docl_core.stats import spearman

ctx = common.context()
st.title("One sample's history")
st.caption("Follow a single sample through training: when it was learned, when it moved fastest, and when the "
           "curriculum picked it.")
run = common.need_focus(ctx)
WORD = common.round_word(run)  # "epoch" under the paper protocol
EST = views.driving_estimator(run)  # the estimator in the run's `score` column
SCORE = views.score_label("score", EST, short=True)  # e.g. "authors' byproduct score"


def history(run_dir: str, stamp: int, sid: int) -> pd.DataFrame:
    """From the run's cached (R, N) matrices: the first sample costs one pass over the rounds,
    every other sample is a column slice."""
    mats = {c: common.run_matrix(run_dir, stamp, c) for c in ("loss", "p_true", "p_clean", "residual_norm",
                                                                "speed_norm", "selected", "times_selected", "output0")}
    mats["score"] = common.run_matrix(run_dir, stamp, "score")
    if EST != "exact":  # the exact score beside the estimate, where the run logged it
        mats["score_exact"] = common.run_matrix(run_dir, stamp, "score_exact")
    return views.history_from_matrices(mats, common.RunReader(run_dir).round_ids, sid)


def score_story(hist: pd.DataFrame, regression: bool) -> str:
    """The chart's caption, computed from this sample's own curves: when each logged score peaked,
    what the residual and the speed were then against their medians, and how far the two agree."""
    parts = ["Learned when the loss drops" + ("" if regression else " and p(given label) rises") + "."]
    shown = [("score", SCORE)] + ([("score_exact", "exact score")] if "score_exact" in hist else [])
    for col, name in shown:
        h = hist.dropna(subset=[col])
        if len(h) < 2:
            continue
        at = h.loc[h[col].idxmax()]
        text = f"The {name} peaked in {WORD} {int(at['round'])} ({at[col]:.3g})"
        for norm, what in (("residual_norm", "‖r_i‖"), ("speed_norm", "‖v_i‖")):
            if norm in hist and np.isfinite(at.get(norm, np.nan)) and hist[norm].notna().sum() > 1:
                med = float(hist[norm].median())
                text += (f"{',' if what == '‖r_i‖' else ' and'} when {what} was {at[norm]:.3g} "
                         f"({'above' if at[norm] > med else 'at or below'} its median {med:.3g})")
        parts.append(text + ".")
    if "score_exact" in hist:
        both = hist.dropna(subset=["score", "score_exact"])
        if len(both) >= 3:
            rho = spearman(both["score"], both["score_exact"])
            parts.append(f"Over the {common.plural(len(both), WORD)} with both, the {SCORE} and the exact score "
                         f"rank this sample's {WORD}s with ρ = {rho:.2f} (1: the estimate follows the exact "
                         "score; 0 or below: it does not).")
    if EST == "exact" or "score_exact" in hist:
        parts.append("The exact score a_i = r_i·v_i is large only while the residual is large *and* the output "
                     "moves along it.")
    return " ".join(parts)


def _default_sample() -> int:
    """A representative high-scoring probe sample of the last kernel round (clean label, its score
    carried by other samples: views.representative_probe), else 0."""
    kr = run.kernel_rounds()
    if not kr:
        return 0
    K = common.run_kernel(str(run.dir), common.run_stamp(run.dir), kr[-1])
    try:
        ds = common.RunReader(run.dir).dataset()
        noisy = ds.loc[ds["noisy"].astype(bool), "sample_id"] if "noisy" in ds else []
    except Exception:  # noqa: BLE001 - a missing dataset frame only loses the noise filter
        noisy = []
    return views.representative_probe(K, noisy)


def body():
    run.refresh()
    n = int(run.meta.get("num_train") or len(common.run_samples(str(run.dir), common.run_stamp(run.dir), 0, ("sample_id",))))
    qp = st.query_params.get("sample")
    if qp is not None and str(qp).isdigit() and "smp_id" not in st.session_state:
        st.session_state["picked_sample"] = int(qp)
    if "smp_id" not in st.session_state or st.session_state.get("_smp_from") != st.session_state.get("picked_sample"):
        pick = st.session_state.get("picked_sample")
        st.session_state["smp_id"] = int(pick) if pick is not None and 0 <= int(pick) < n else _default_sample()
        st.session_state["_smp_from"] = st.session_state.get("picked_sample")
    sid = int(st.number_input(f"Sample id (0 – {n - 1})", min_value=0, max_value=max(n - 1, 0), step=1, key="smp_id"))
    hist = history(str(run.dir), common.run_stamp(run.dir), sid)
    if not len(hist):
        st.warning(f"Sample {sid} does not appear in this run's rounds.")
        return
    ds = common.dataset_light_of(run)
    row = ds[ds["sample_id"] == sid]
    names = run.meta.get("class_names") or []

    def cname(v):
        return names[int(v)] if names and 0 <= int(v) < len(names) else str(int(v))

    left, right = st.columns([1, 3])
    with left:
        full = common.dataset_of(run)
        if "thumbnail" in full.columns:
            thumb = full.loc[full["sample_id"] == sid, "thumbnail"]
            if len(thumb):
                flipped_here = bool(len(row) and row.iloc[0].get("noisy", False))
                st.image(common.framed_thumbnail(thumb.iloc[0], flipped_here, side=160), width=160,
                         caption=f"sample {sid}")
        elif {"x0", "x1"} <= set(ds.columns):
            tr = ds[ds["split"] == "train"] if "split" in ds else ds
            tr = views.downsample_rows(tr, 3000)
            import plotly.express as px
            palette = px.colors.qualitative.Safe  # the Selected subsets page's class colours
            fig = go.Figure(go.Scattergl(x=tr["x0"], y=tr["x1"], mode="markers", name="training set",
                                         marker=dict(size=4, opacity=0.35, color=[palette[int(v) % len(palette)]
                                                                                  for v in tr["label"]])
                                         if "label" in tr else dict(color="#CCCCCC", size=4)))
            fig.add_trace(go.Scatter(x=row["x0"], y=row["x1"], mode="markers", name=f"sample {sid}",
                                     marker=dict(color="#222222", size=16, symbol="star",
                                                 line=dict(color="white", width=1.5))))
            fig.update_layout(height=300, showlegend=False, title="Where it lies", xaxis_title="x₀", yaxis_title="x₁")
            common.chart(fig, "The star is this sample among the training set (coloured by given label).",
                         key="smp_where")
        elif {"x0", "target"} <= set(ds.columns) and len(row):
            st.metric("x", f"{float(row['x0'].iloc[0]):.3f}")
            st.metric("target y", f"{float(row['target'].iloc[0]):.3f}")
        # presenting, the takeaway (drawn with the chart, below) sits here, under the picture, on the first
        # screen; it says what the two metrics say, so they are left out
        note = st.container() if common.presenting() else nullcontext()
        if len(row) and run.task == "classification":
            r0 = row.iloc[0]
            st.markdown(f"**given label:** {cname(r0['label'])}")
            if bool(r0.get("noisy", False)):
                flipped = (f":red[⚠ **noisy label**] (flipped): trained as {cname(r0['label'])}, clean label "
                           f"{cname(r0['clean_label'])}. ")
                if "p_clean" in hist and hist["p_clean"].notna().any():
                    st.markdown(flipped + f"p(given label {cname(r0['label'])}) rising means the wrong label is "
                                f"being memorised; p(clean label {cname(r0['clean_label'])}) rising means the "
                                "network predicts the clean label despite the flip.")
                else:
                    st.markdown(flipped + f"The p curve is p(given label {cname(r0['label'])}); this run logged "
                                "no p(clean label) (made before docl logged it), so a rising p here means the "
                                "wrong label is being memorised.")
        if len(row) and "source_row" in row and pd.notna(row["source_row"].iloc[0]):
            st.markdown(f"**row in its file:** {int(row['source_row'].iloc[0])} (0-based, before the split; "
                        "sample ids count train, then validation, then test)")
        feats = views.feature_columns(row.columns) if len(row) else []
        if feats:  # tabular data: the feature values as read from the file
            st.dataframe(row[feats].T.set_axis(["value"], axis=1), key="smp_features")
        sel_rounds = hist.loc[hist["selected"], "round"].tolist()
        if not common.presenting():
            st.metric("times selected", f"{len(sel_rounds)} / {common.plural(len(hist), WORD)}")
            st.metric("last loss", f"{hist['loss'].iloc[-1]:.3f}", f"{hist['loss'].iloc[-1] - hist['loss'].iloc[0]:+.3f} since {WORD} 0",
                      delta_color="inverse")
    with right:
        panels = [("loss", "loss ℓ_i"), ("p_true", "p(given label)"), ("p_clean", "p(clean label)"),
                  ("residual_norm", "‖r_i‖ residual"),
                  ("speed_norm", "‖v_i‖ output speed"), ("score", f"{SCORE} · drove selection"),
                  ("score_exact", "exact score a_i = r_i·v_i")]
        flipped_sample = bool(len(row) and row.iloc[0].get("noisy", False))  # p_clean = p_true otherwise
        panels = [(c, t) for c, t in panels if c in hist and hist[c].notna().any()
                  and (c != "p_clean" or flipped_sample)]
        presenting = common.presenting()
        fig = make_subplots(rows=len(panels), cols=1, shared_xaxes=True, vertical_spacing=0.07 if presenting else 0.045,
                            subplot_titles=[t for _, t in panels])
        color = common.curriculum_color(run.curriculum)
        for i, (col, title) in enumerate(panels, start=1):
            fig.add_trace(go.Scatter(x=hist["round"], y=hist[col], mode="lines+markers", name=title,
                                     line=dict(color=color, width=2, dash="dot" if col == "score_exact" else None),
                                     marker=dict(size=5), connectgaps=col == "score_exact"), row=i, col=1)
            fig.update_yaxes(nticks=3 if presenting else 4, row=i, col=1)
        # one layout update for all bands (add_vrect per round is quadratic in plotly)
        fig.update_layout(shapes=[dict(type="rect", xref="x", yref="paper", x0=t - 0.45, x1=t + 0.45, y0=0, y1=1,
                                       fillcolor="#009E73", opacity=0.12, line_width=0, layer="below")
                                  for t in hist.loc[hist["selected"], "round"]])
        fig.update_xaxes(title_text=f"{WORD} (green bands: selected in S_t)", row=len(panels), col=1)
        fig.update_xaxes(tick0=0, dtick=max(1, int(np.ceil(len(hist) / 12))))  # whole rounds on every panel
        fig.update_annotations(x=0, xanchor="left", font=dict(size=13))  # panel titles top-left
        fig.update_layout(height=130 * len(panels) + 90, showlegend=False,
                          title=f"Sample {sid} in {common.run_label(run)}")
        def peak_of(col):
            ok = col in hist and hist[col].notna().any()
            return int(hist.loc[hist[col].idxmax(), "round"]) if ok else None

        peak, exact_peak = peak_of("score"), peak_of("score_exact")
        common.chart(fig, score_story(hist, run.task == "regression"), key="smp_hist",
                     present_height=min(690, 105 * len(panels) + 100))  # within 1080 px, under the page's header
        with note:
            common.takeaway(f"Sample {sid} was selected in {len(sel_rounds)} of {common.plural(len(hist), WORD)}; its loss went from "
                            f"{hist['loss'].iloc[0]:.3f} to {hist['loss'].iloc[-1]:.3f}"
                            + (f", and its {SCORE} peaked in {WORD} {peak}"
                               + (" (selected then)" if peak in sel_rounds else " (not selected then)")
                               if peak is not None else "")
                            + (f"; its exact score peaked in {WORD} {exact_peak}" if exact_peak is not None else "")
                            + ".")
        common.download(hist, f"{run.dir.name}-sample-{sid}", key="dl_smp")

    if common.presenting():
        return
    st.subheader("Kernel neighbours")
    kr = run.kernel_rounds()
    found = False
    for t in reversed(kr):
        K = common.run_kernel(str(run.dir), common.run_stamp(run.dir), t)
        nb = views.kernel_neighbours(K, sid)
        if len(nb):
            found = True
            st.caption(f"Probe samples whose gradients point most like sample {sid}'s (normalised trace kernel "
                       f"K_ij/√(K_ii K_jj), round {t}): training on them moves this sample's output too.")
            full = common.dataset_of(run)
            flipped = set(ds.loc[ds["noisy"].astype(bool), "sample_id"].astype(int)) if "noisy" in ds else set()
            shown = nb.assign(label=nb["label"].map(cname), flipped=nb["sample_id"].astype(int).isin(flipped))
            if run.task == "regression":  # no labels: where the neighbours lie instead
                coords = [c for c in ("x0", "target") if c in ds]
                shown = shown.drop(columns="label").merge(ds[["sample_id", *coords]].drop_duplicates("sample_id"),
                                                          on="sample_id", how="left")
                shown = shown.rename(columns={"x0": "x", "target": "target y"})
            if "thumbnail" in full.columns:
                th = full.set_index("sample_id")["thumbnail"]
                st.image([common.framed_thumbnail(th.loc[int(r["sample_id"])], bool(r["flipped"]))
                          for _, r in shown.iterrows()],
                         caption=[f"#{int(r['sample_id'])} · {r['label']} · {r['kernel_sim']:.2f}"
                                  for _, r in shown.iterrows()], width=96)
                st.caption("Caption: sample id · given label · similarity (1 = same gradient direction); a red "
                           "frame marks a flipped label. A flipped sample whose neighbours share its *true* "
                           "class is one the network already sees through.")
                common.download(shown, f"{run.dir.name}-sample-{sid}-neighbours", key="dl_nb")
            else:
                st.dataframe(shown if shown["flipped"].any() else shown.drop(columns="flipped"), hide_index=True)
            break
    if not found:
        probe = sorted(int(s) for s in common.run_kernel(str(run.dir), common.run_stamp(run.dir), kr[-1])["probe_ids"][:12]) if kr else []
        st.info(f"Sample {sid} is not in the kernel probe set, so it has no logged kernel neighbours."
                + (f" Probe samples include: {', '.join(map(str, probe))}." if probe else ""))


common.live_area(body, run.is_live)
