"""Scores: how the DoCL score a_t(i) of every sample evolves over rounds."""
from contextlib import nullcontext

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from app import common
from docl_core import views
from docl_core.stats import spearman

ctx = common.context()
st.title("Scores over rounds")
run = common.need_focus(ctx)
WORD = common.round_word(run)  # "epoch" under the paper protocol
EST = views.driving_estimator(run)  # the estimator in the run's `score` column


@st.cache_data(max_entries=16, show_spinner=False)
def fidelity_frame(run_dir: str, stamp: int) -> pd.DataFrame:
    from docl_core.fidelity import round_fidelity
    return round_fidelity(run_dir)


@st.cache_data(max_entries=16, show_spinner=False)
def logged_columns(run_dir: str, stamp: int) -> list:
    return views.logged_estimators(common.RunReader(run_dir))


def agreement_words() -> str:
    """How far the run's driving estimate ranks samples like the exact score, as a number where both
    were logged (the per-epoch section at the bottom, which Presentation mode hides, is only pointed to
    outside it)."""
    logged = logged_columns(str(run.dir), common.run_stamp(run.dir))  # cached: the page asks twice
    if "score_paper" in logged and "score_exact" in logged:
        fid = fidelity_frame(str(run.dir), common.run_stamp(run.dir))
        if len(fid) and fid["spearman_all"].notna().any():
            where = "" if common.presenting() else f" (per {WORD}: the last section of this page)"
            return (f"over the {common.plural(int(fid['spearman_all'].notna().sum()), WORD)} that logged both, the two "
                    f"rank samples alike with median Spearman ρ = {fid['spearman_all'].median():+.2f}{where}")
    if "score_exact" in logged and not common.presenting():
        return "pick its column below and compare the two in \"Do the estimators agree?\""
    return "this run did not log the exact score, so how far the two agree is not measured here"


st.caption(f"This run's selection was driven by the {views.SCORE_NAMES.get(EST, EST)}. "
           + ("The exact score a_i = r_i·v_i = g_i·ḡ is large when a sample's residual is large *and* its "
              "output moves fast (the learning frontier)." if EST == "exact" else
              "The exact score a_i = r_i·v_i (large when a sample's residual is large *and* its output moves "
              f"fast) is another quantity: {agreement_words()}."))


def is_exact(column: str) -> bool:
    return column == "score_exact" or (column == "score" and EST == "exact")


# derived views, cached per run commit (heavy for large N: sorting and ranking 50 × 60,000 values)
@st.cache_resource(max_entries=4, show_spinner=False)
def row_ranks(run_dir: str, stamp: int, column: str) -> np.ndarray:
    """(R, N) ranks within each round, computed once for the heatmap and the churn (shared, read-only)."""
    ranks = views.row_ranks(common.run_matrix(run_dir, stamp, column))
    ranks.setflags(write=False)
    return ranks


@st.cache_data(max_entries=16, show_spinner=False)
def heatmap(run_dir: str, stamp: int, column: str, order: str, rank: bool):
    M = common.run_matrix(run_dir, stamp, column)  # (R, N)
    if rank:
        M = (row_ranks(run_dir, stamp, column) / max(M.shape[1] - 1, 1)).astype(np.float32)
    return views.heatmap_bins(M, order=order, max_rows=400)


@st.cache_data(max_entries=16, show_spinner=False)
def round_scale(run_dir: str, stamp: int, column: str) -> tuple[np.ndarray, list]:
    """(R,) median |value| per round, and the rows (rounds) whose values are all zero or NaN."""
    A = np.abs(common.run_matrix(run_dir, stamp, column))
    with np.errstate(all="ignore"):
        typical = np.nanmedian(A, axis=1)
    return typical, [r for r in range(A.shape[0]) if np.nanmax(A[r], initial=0.0) == 0.0]


@st.cache_data(max_entries=16, show_spinner=False)
def bands_and_churn(run_dir: str, stamp: int, column: str, rounds: tuple):
    M = common.run_matrix(run_dir, stamp, column)
    return views.quantile_bands(M, rounds), views.rank_churn(M, rounds, ranks=row_ranks(run_dir, stamp, column))


@st.cache_data(max_entries=16, show_spinner=False)
def agreement(run_dir: str, stamp: int, a: str, b: str, rounds: tuple):
    return views.estimator_agreement(common.run_matrix(run_dir, stamp, a), common.run_matrix(run_dir, stamp, b), rounds)


def body():
    run.refresh()
    ids = run.round_ids
    cols = common.run_columns(str(run.dir), common.run_stamp(run.dir))
    # `score` is the driving estimator's column: its own score_<name> twin would be the same choice twice
    choices = [c for c in views.SCORE_COLUMNS if c in cols and c != f"score_{EST}"]
    value = st.radio("Score column", choices, horizontal=True, key="sc_col",
                     format_func=lambda c: views.score_label(c, EST))
    M = common.matrix(run, value)  # (R, N)
    short = views.score_label(value, EST, short=True)
    R, N = M.shape

    st.subheader(f"Samples × {WORD}s")
    c1, c2 = st.columns([1, 1])
    # by default sort by the mean: late rounds of a finished run have small scores that barely order anything
    order = c1.radio("Sort samples by", ["mean", "last", "first"], horizontal=True, key="sc_order",
                     format_func={"last": "last round", "mean": "mean over rounds", "first": "first round"}.get)
    scale = c2.radio("Colour", ["rank", "raw"], horizontal=True, key="sc_scale",
                     format_func={"rank": f"rank within each {WORD} (percentile)", "raw": "raw values"}.get,
                     help=f"Scores scale with the learning rate (a_i = g_i · ḡ also with ‖ḡ‖), which shrink as "
                          f"training converges: raw values are not comparable across {WORD}s; ranks show who leads "
                          f"in each {WORD}. Tied values share one rank; a {WORD} where every value is equal has no "
                          "ranking and is drawn grey.")
    norm = scale == "rank"
    stamp = common.run_stamp(run.dir)
    Z, info = heatmap(str(run.dir), stamp, value, order, bool(norm))
    binned = len(info) < N
    # a few samples reach scores 10× the typical one: clip the colours at the 98th percentile of |score|
    span = float(np.nanpercentile(np.abs(Z), 98)) if not norm and np.isfinite(Z).any() else None
    fig = go.Figure(go.Heatmap(
        z=Z, x=ids, y=np.arange(1, len(info) + 1),
        colorscale="Viridis" if norm else "RdBu_r", zmid=None if norm else 0.0,
        zmin=-span if span else None, zmax=span if span else None,
        colorbar=dict(title="percentile" if norm else "score<br>(clipped)"),
        customdata=np.stack([info["first_rank"], info["last_rank"]], axis=1)[:, None, :].repeat(R, axis=1),
        hovertemplate="round %{x}<br>ranks %{customdata[0]}–%{customdata[1]}<br>value %{z:.4g}<extra></extra>"))
    groups = f"averaged in {len(info)} sorted groups of ~{N // len(info)}" if binned else "one row each"
    # presenting, the long axis title would not fit the shorter chart: the caption says how rows are grouped
    fig.update_yaxes(autorange="reversed", title="samples, sorted" if common.presenting() else f"samples, sorted ({groups})")
    fig.update_xaxes(title=WORD)
    fig.update_layout(title=f"{short[0].upper() + short[1:]} of {common.plural(N, 'sample')}"
                      + (f", ranked per {WORD}" if norm else ""), height=460,  # the y axis names the groups
                      plot_bgcolor="#BBBBBB")  # cells without a ranking (every value tied) show this grey
    typical, zero = round_scale(str(run.dir), stamp, value)
    flat = [ids[r] for r in zero]  # rounds logged as all zero
    ok_rows = np.flatnonzero(np.isfinite(typical) & (typical > 0))
    spread = ""
    if len(ok_rows) > 1:
        lo_r, hi_r = ok_rows[np.argmin(typical[ok_rows])], ok_rows[np.argmax(typical[ok_rows])]
        spread = (f" The typical |value| (median) ranges from {typical[lo_r]:.3g} in {WORD} {ids[lo_r]} to "
                  f"{typical[hi_r]:.3g} in {WORD} {ids[hi_r]}, {typical[hi_r] / typical[lo_r]:.0f}× apart: scores "
                  f"scale with the learning rate, so raw values are not comparable across {WORD}s.")
    if is_exact(value):
        meaning = ((f"Yellow = the top of its {WORD} (percentile 1: the frontier, loss falling fastest), dark = the "
                    "bottom (training on the others pushes its loss up).") if norm else
                   ("a_i is how fast sample i's loss falls: red = falling fast (the frontier), blue = training on "
                    "the others pushes it up, white = it does not move."))
    else:
        meaning = (f"Yellow = the top of its {WORD} by the {short}, dark = the bottom. This is an estimate, not "
                   f"the exact a_i: {agreement_words()}." if norm else
                   f"Red = high {short}, blue = low, white = 0. This is an estimate, not the exact a_i.")
    bands, churn = bands_and_churn(str(run.dir), stamp, value, tuple(ids))
    # presenting, one 1920×1080 screen: the takeaway beside the heatmap, not under its long caption
    chart_box, note_box = st.columns([3, 2], gap="medium") if common.presenting() else (nullcontext(), nullcontext())
    with chart_box:
        common.chart(fig, ((f"Read across a row to follow a group of samples ({groups}). {meaning} "
                            + ("Ranks compare samples within a column, whatever the scale." if norm else
                               f"Colours are clipped at the 98th percentile of |value| over all {WORD}s, so {WORD}s "
                               "with small values look white.")) + spread
                           + (f" {WORD.capitalize()}{'s' if len(flat) > 1 else ''} {', '.join(map(str, flat))}: every "
                              "value is exactly 0 (the run logged no movement there)"
                              + (", so there is no ranking: drawn grey." if norm else ".") if flat else "")),
                     key="sc_heat", present_height=440)
    with note_box:
        common.takeaway(_takeaway(churn))
    common.download(pd.DataFrame(Z, columns=[f"round {t}" for t in ids]).assign(**info), f"{run.dir.name}-score-heatmap",
                    key="dl_heat")

    st.subheader(f"Distribution per {WORD}")
    fig = go.Figure()
    color = common.curriculum_color(run.curriculum)
    for lo, hi, op in (("q05", "q95", 0.15), ("q25", "q75", 0.3)):
        fig.add_trace(go.Scatter(x=list(bands["round"]) + list(bands["round"])[::-1],
                                 y=list(bands[hi]) + list(bands[lo])[::-1], fill="toself", fillcolor=color,
                                 opacity=op, line=dict(width=0), name=f"{lo[1:]}–{hi[1:]}th percentile"))
    fig.add_trace(go.Scatter(x=bands["round"], y=bands["q50"], name="median", line=dict(color=color, width=2.5)))
    fig.update_layout(title=f"{short[0].upper() + short[1:]}: quantiles per {WORD}", xaxis_title=WORD,
                      yaxis_title=short, height=360)
    left, right = (st.container(), st.container()) if common.presenting() else st.columns(2)
    with left:
        common.chart(fig, f"A wide band = the {WORD}s where training moves many samples at once; it narrows "
                     "as the model converges and fewer samples still move the loss.", key="sc_bands", secondary=True)
    with right:
        t = common.round_slider(ids, "sc_round", WORD, run.is_live)
        row = M[ids.index(t)]
        hist = views.histogram(row)
        fig = go.Figure(go.Bar(x=hist["center"], y=hist["count"], marker_color=color))
        fig.update_layout(title=f"{short[0].upper() + short[1:]}: histogram, {WORD} {t}")
        fig.update_layout(xaxis_title=short, yaxis_title="samples", bargap=0.02, height=360)
        fin = np.sort(row[np.isfinite(row)])[::-1]
        pos = fin[fin > 0]
        top_share = (pos[:max(1, len(fin) // 10)].sum() / pos.sum()) if len(pos) else float("nan")
        common.chart(fig, (f"In {WORD} {t}, the top 10 % of samples carry {100 * top_share:.0f} % of the positive "
                           "score mass (10 % would mean no tail); "
                           f"{100 * np.mean(fin < 0):.0f} % of samples are below 0." if len(pos) else
                           f"No sample has a positive {short} in {WORD} {t}."), key="sc_hist")
    common.download(bands, f"{run.dir.name}-score-quantiles", key="dl_bands")

    if common.presenting():
        return
    st.subheader("Trajectories of chosen samples")
    default = views.default_trajectory_samples(M, 5)
    picked = st.session_state.get("picked_sample")
    if picked is not None and picked not in default and 0 <= picked < N:
        default = [picked] + default[:4]
    chosen = st.multiselect("Samples (ids)", list(range(N)) if N <= 5000 else sorted(set(default)), default=default,
                            key="sc_samples", help="Highest, middle and lowest by last-round score are preselected.")
    extra = st.number_input("Add a sample id", min_value=0, max_value=max(N - 1, 0), value=None, step=1, key="sc_add")
    if extra is not None and int(extra) not in chosen:
        chosen = chosen + [int(extra)]
    traj = views.trajectories(M, ids, chosen)
    ds = common.dataset_light_of(run)
    flipped = set(ds.loc[ds["noisy"].astype(bool), "sample_id"].astype(int)) if "noisy" in ds else set()
    names = [f"#{s}" + (" ⚠ flipped" if int(s) in flipped else "") for s in traj["sample_id"]]
    fig = common.lines(traj.assign(sample=names), "round", "value", "sample",
                       title=f"{short[0].upper() + short[1:]} of each chosen sample", palette=px.colors.qualitative.Safe)
    fig.update_layout(height=360, yaxis_title=short, legend_title="sample", xaxis_title=WORD)
    event = common.chart(fig, ("An exact score rises as a sample reaches the frontier, peaks, then falls once it is "
                               "learned" if is_exact(value) else f"Each line is one sample's {short}")
                         + "; ⚠ marks a flipped label. Click a point to open that sample.",
                         key="sc_traj", on_select="rerun", selection_mode="points")
    _open_clicked(event, traj)
    common.download(traj, f"{run.dir.name}-score-trajectories", key="dl_traj")

    st.subheader(f"Rank churn between {WORD}s")
    undefined = churn.loc[churn["spearman"].isna(), "round"].tolist() if len(churn) else []
    if len(churn) and len(undefined) < len(churn):
        long = churn.melt(id_vars="round", var_name="measure", value_name="value").dropna()
        long["measure"] = long["measure"].map({"spearman": "Spearman ρ(t−1, t)", "top_overlap": "top-10 % Jaccard overlap"})
        fig = common.lines(long, "round", "value", "measure", title="How stable is the ranking?")
        fig.update_layout(yaxis_title=f"agreement with {WORD} t−1", yaxis_range=[min(0, long["value"].min() - 0.05), 1.02],
                          height=340, xaxis_title=WORD)
        fig.add_hline(y=0, line=dict(color="#888888", width=1, dash="dot"))
        common.chart(fig, "Near 1: the ranking, and so the selection, stays put; near 0: the frontier moves on each "
                     "round; below 0: the order flips (samples pushed up one round are pulled back the next)."
                     + (f" Not drawn at {WORD}{'s' if len(undefined) > 1 else ''} {', '.join(map(str, undefined))}: "
                        f"every value of that {WORD} or the one before is tied, so there is no ranking to compare."
                        if undefined else ""),
                     key="sc_churn")
        common.download(churn, f"{run.dir.name}-rank-churn", key="dl_churn")

    st.subheader("Do the estimators agree?")
    logged = logged_columns(str(run.dir), stamp)
    if len(logged) < 2:
        st.info("This run logged only one estimator; log `byproduct` beside `exact` to compare them.")
        return
    a, b = logged[0], logged[1]
    A, B = common.matrix(run, a), common.matrix(run, b)
    agree = agreement(str(run.dir), stamp, a, b, tuple(ids))
    left, right = st.columns(2)
    with left:
        long = agree.melt(id_vars="round", var_name="measure", value_name="correlation")
        fig = common.lines(long, "round", "correlation", "measure", palette=["#117733", "#882255"],
                           title=f"{views.score_label(a, EST, short=True)} vs {views.score_label(b, EST, short=True)}")
        fig.update_layout(yaxis_range=[min(0, long["correlation"].min(skipna=True) or 0), 1.02], height=360,
                          xaxis_title=WORD)
        common.chart(fig, "Correlation near 1 means the cheap estimate ranks samples like the exact score; near 0, "
                     "selecting by the estimate would pick different samples.", key="sc_agree")
    with right:
        r = ids.index(t)
        pts = pd.DataFrame({"sample_id": np.arange(N), a: A[r], b: B[r]}).dropna()
        if not len(pts):
            st.info(f"{WORD.capitalize()} {t} has no {views.score_label(a, EST, short=True)} and "
                    f"{views.score_label(b, EST, short=True)} values side by side (one was not logged this {WORD}).")
        else:
            # values differ in scale between estimators (a_i scales with the learning rate and ‖ḡ‖):
            # compare ranks, which is what selection uses
            ra, rb = (pts[a].rank(pct=True) * 100), (pts[b].rank(pct=True) * 100)
            rho = spearman(pts[a], pts[b])
            scale = float(pts[b].abs().median() / max(pts[a].abs().median(), 1e-30))
            pts = pts.assign(rank_a=ra, rank_b=rb)
            shown = views.downsample_rows(pts, 4000)
            fig = go.Figure(go.Scattergl(x=shown["rank_a"], y=shown["rank_b"], mode="markers", opacity=0.5,
                                         customdata=shown[["sample_id", a, b]],
                                         marker=dict(size=4, color=common.curriculum_color(run.curriculum)),
                                         hovertemplate="sample %{customdata[0]}<br>ranks %{x:.0f}, %{y:.0f}"
                                                       "<br>values %{customdata[1]:.4g}, %{customdata[2]:.4g}"
                                                       "<extra></extra>"))
            fig.update_layout(height=360, title=f"{WORD.capitalize()} {t}: percentile ranks, one dot per sample"
                              + (f" ({len(shown):,} of {len(pts):,} shown)" if len(shown) < len(pts) else ""),
                              xaxis_title=f"rank by {views.score_label(a, EST, short=True)} (%)",
                              yaxis_title=f"rank by {views.score_label(b, EST, short=True)} (%)")
            common.chart(fig, f"This {WORD}: Spearman ρ = {rho:.2f} between the two rankings. Their raw values "
                         f"differ in scale (median |{views.score_label(b, EST, short=True)}| is {scale:.3g}× median "
                         f"|{views.score_label(a, EST, short=True)}|), so the chart compares ranks, which is what selection uses.",
                         key="sc_scatter")
    common.download(agree, f"{run.dir.name}-estimator-agreement", key="dl_agree")
    if "score_paper" in logged and "score_exact" in logged:
        _fidelity()
    _downloads(ids)


def _downloads(ids: list) -> None:
    """Every logged per-sample column, with sample ids, source rows and labels: one round as CSV, or
    the whole run as N × T arrays (the files `docl export --to csv|npz` writes); built on click."""
    if common.presenting() or not ids:
        return
    from docl_core import export
    st.subheader("Download the scores")
    c1, c2 = st.columns([1, 2])
    t = c1.selectbox(WORD.capitalize(), ids, index=len(ids) - 1, key="sc_dl_round")
    c1.download_button(f"⬇ {WORD} {t} (CSV)", key="sc_dl_csv", file_name=f"{run.dir.name}-{WORD}{t}.csv",
                       mime="text/csv", on_click="ignore",
                       data=lambda: export.round_table(run, int(t)).to_csv(index=False).encode())
    c2.download_button(f"⬇ whole run, {common.plural(len(ids), WORD)} (npz)", key="sc_dl_npz",
                       file_name=f"{run.dir.name}.npz", mime="application/octet-stream", on_click="ignore",
                       data=lambda: export.run_npz_bytes(run))
    c2.caption("One row per sample: sample_id, source_row (its row in your file), label, clean_label, noisy, then "
               "every score, loss and the selected mask the run logged. The npz holds each as an (N, T) array, "
               "row i = sample_id[i], column j = rounds[j]; numpy alone reads it (np.load). "
               "`docl export --to npz|parquet|csv` writes the same for whole experiments.")


def _fidelity() -> None:
    """How far the authors' byproduct is from the exact score, per round where both were logged."""
    st.subheader("How far is the authors' byproduct from the exact score?")
    fid = fidelity_frame(str(run.dir), common.run_stamp(run.dir))
    if not len(fid):
        st.info(f"No {WORD} of this run logged both scores yet.")
        return
    long = fid.melt(id_vars="round", value_vars=["spearman_all", "spearman_selected", "overlap_topk"],
                    var_name="measure", value_name="value")
    long["measure"] = long["measure"].map({"spearman_all": "Spearman ρ, all samples",
                                           "spearman_selected": "Spearman ρ, selected samples",
                                           "overlap_topk": "top-k overlap (k = |S_t|)"})
    fig = common.lines(long.dropna(), "round", "value", "measure", palette=["#117733", "#882255", "#DDAA33"],
                       title="Byproduct against exact, per " + WORD)
    fig.update_layout(height=340, xaxis_title=WORD, yaxis_range=[min(-0.1, float(long["value"].min(skipna=True))), 1.02])
    med = fid[["spearman_all", "spearman_selected", "overlap_topk"]].median()
    common.chart(fig, f"Over the {common.plural(len(fid), WORD)} that logged both: median Spearman ρ {med['spearman_all']:.2f} "
                 f"over all samples and {med['spearman_selected']:.2f} within the selected ones; the top-|S_t| "
                 f"sets by each score share {100 * med['overlap_topk']:.0f} % of their samples (median). 1 would mean "
                 "selecting by the free byproduct picks what the exact score picks.", key="sc_fidelity")
    common.download(fid, f"{run.dir.name}-byproduct-fidelity", key="dl_fid")


def _takeaway(churn: pd.DataFrame) -> str:
    """Computed from views.rank_churn: how stable the top of the ranking is across the run (the frontier
    moves, or not)."""
    if not len(churn):
        return f"One {WORD} so far: the ranking's evolution shows once more {WORD}s commit."
    ok = churn.dropna(subset=["spearman"])
    if not len(ok):
        return f"No two consecutive {WORD}s both rank the samples (their values are all tied): no churn to read."
    rho = ok["spearman"].to_numpy()
    over = ok["top_overlap"].to_numpy()
    head = "The top moves on" if np.nanmedian(over) < 0.5 else "The top stays put"
    skipped = len(churn) - len(ok)
    return (f"{head}: over the {common.plural(len(ok), 'pair')} of consecutive {WORD}s that both rank the "
            f"samples, the top 10 % overlap by {100 * np.nanmedian(over):.0f} % (median Jaccard, range "
            f"{100 * np.nanmin(over):.0f}–{100 * np.nanmax(over):.0f} %) and the whole ranking correlates with "
            f"ρ = {np.nanmedian(rho):.2f} (median Spearman, range {np.nanmin(rho):.2f} to {np.nanmax(rho):.2f})"
            + (f"; {common.plural(skipped, 'pair')} with tied values left out." if skipped else "."))


def _open_clicked(event, traj):
    try:
        pts = event.selection.points if event else []
    except AttributeError:
        pts = []
    if not pts:
        return
    curve = pts[0].get("curve_number", 0)
    names = list(dict.fromkeys(traj["sample_id"]))
    if 0 <= curve < len(names):
        sid = int(names[curve])
        st.session_state["picked_sample"] = sid
        if st.button(f"Open sample {sid} →", key="sc_open"):
            st.switch_page("app_pages/sample.py")


common.live_area(body, run.is_live)
