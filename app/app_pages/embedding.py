"""Embedding: every training sample as a point in the model's own feature space, round by round."""
from contextlib import nullcontext

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from app import common
from docl_core import embedding, views

ctx = common.context()
st.title("Embedding")
run = common.need_focus(ctx)
UNIT = str(run.meta.get("round_unit") or "round")  # "epoch" under --protocol paper
MAX_POINTS = 8000    # points drawn (a fixed random subset, flipped labels kept, the same in every round)
TSNE_POINTS = (500, 1000, 2000, 4000)  # t-SNE runs here, on demand, on one of these many samples
if not common.presenting():  # presenting, the chart's caption names the axes; this paragraph would push it down
    st.caption(f"The training samples' penultimate-layer features, projected to 2-D on the principal axes of "
               f"the shown {UNIT} (within the components the run stores), so each {UNIT} is seen from the angle "
               f"it spreads most along; the axis titles say how much of that {UNIT}'s feature variance they hold. "
               f"To follow points across {UNIT}s, choose Projection's fixed axes: fitted once, on the first "
               f"measured {UNIT}, and kept, so a point that moves moved in feature space, but directions the "
               f"network develops later are off them.")
# Projection's choices, the first the default; the values keep the word "round" (tests set them), the
# labels say the run's unit. The default refits on the shown round: the fixed axes of round 0 hold a few
# per cent of a later round's variance (a squashed corner), a refit on the round shown holds the most.
FIXED, REFIT_SHOWN, REFIT_LAST, TSNE = ("PCA (fixed axes)", "PCA (refit on this round)", "PCA (refit on the last round)",
                                        "t-SNE (this round)")
METHODS = (REFIT_SHOWN, FIXED, REFIT_LAST, TSNE)
COLOR_LABELS = {"score": views.score_label("score", views.driving_estimator(run), short=True), "selected": "selected", "times_selected": "times selected", "loss": "loss",
                "class": "class", "noisy": "noisy target" if run.task == "regression" else "noisy label"}


@st.cache_resource(max_entries=4, show_spinner="Reading the maps…")
def maps(run_dir: str, stamp: int) -> dict:
    """x, y (R, N) over the mapped rounds and the fixed axis ranges (shared, read-only)."""
    M = embedding.embedding_matrices(common.RunReader(run_dir))
    M["xrange"], M["yrange"] = embedding.axis_range(M["x"]), embedding.axis_range(M["y"])
    for v in M.values():
        if isinstance(v, np.ndarray):
            v.setflags(write=False)
    return M


@st.cache_data(max_entries=32, show_spinner=False)
def coordinates(run_dir: str, t: int, mtime: int) -> np.ndarray:
    """Round t's stored map coordinates (N, K): x, y, pc2 … in sample_id order."""
    df = common.RunReader(run_dir).embedding(t).sort_values("sample_id")
    return df[embedding.component_columns(df.columns)].to_numpy(np.float64)


def coords_of(t: int) -> np.ndarray:
    """Round t's stored coordinates (N, K), cached until its file changes."""
    path = run.dir / "embedding" / f"round={t:04d}.parquet"
    return coordinates(str(run.dir), t, path.stat().st_mtime_ns)


def refitted(t: int, fit_round: int) -> tuple[np.ndarray, np.ndarray]:
    """Round t's points (N, 2) on the axes refitted on fit_round's coordinates, and their shares (2,) of
    the variance within fit_round's K stored components (the fallback when the full variance is unknown)."""
    fit = views.refit_axes(coords_of(fit_round))
    return views.project(coords_of(t), fit), fit["share"]


def var_2d(t: int) -> float:
    """Round t's `embedding_var_2d` (the fixed axes' share of its full feature variance), NaN if unrecorded."""
    rows = ctx.rounds()
    rows = rows[(rows["run"] == run.dir.name) & (rows["round"] == t)] if len(rows) else rows
    if len(rows) and "embedding_var_2d" in rows:
        return float(rows["embedding_var_2d"].iat[0])
    return float("nan")


@st.cache_data(max_entries=16, show_spinner="Computing t-SNE (once per round)…")
def tsne(run_dir: str, t: int, ids: tuple, mtime: int) -> pd.DataFrame:
    df = common.RunReader(run_dir).embedding(t).set_index("sample_id").loc[list(ids)]
    comps = df[embedding.component_columns(df.columns)].to_numpy()
    xy = embedding.tsne_map(comps, init=df[["x", "y"]].to_numpy())
    return pd.DataFrame({"sample_id": np.asarray(ids), "x": xy[:, 0], "y": xy[:, 1]})


def shown_ids(n: int, noisy: np.ndarray, budget: int) -> np.ndarray:
    """A fixed subset of sample ids (the same every round, so motion can be followed)."""
    if n <= budget:
        return np.arange(n)
    rng = np.random.default_rng(0)
    must = np.flatnonzero(noisy)
    if len(must) > budget // 2:
        must = rng.choice(must, budget // 2, replace=False)
    rest = rng.choice(np.setdiff1d(np.arange(n), must), budget - len(must), replace=False)
    return np.sort(np.concatenate([must, rest]))


def train_columns(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Given labels and noise flags (N,) of the training samples, from dataset.parquet."""
    ds = common.dataset_light_of(run)
    train = ds[ds["split"] == "train"] if "split" in ds else ds
    label, noisy = np.full(n, -1, dtype=np.int64), np.zeros(n, dtype=bool)
    sid = train["sample_id"].to_numpy() if "sample_id" in train else np.zeros(0, dtype=np.int64)
    ok = (sid >= 0) & (sid < n)
    if "label" in train:
        label[sid[ok]] = train["label"].to_numpy()[ok]
    if "noisy" in train:
        noisy[sid[ok]] = train["noisy"].fillna(False).to_numpy(bool)[ok]
    return label, noisy


def no_map_note() -> None:
    info = run.meta.get("embedding") or {}
    if info.get("method") == "none":
        st.info("**No map for this run:** its model has no `features(x)` method, so the tracker had no "
                "penultimate features to project. Give the model a `features(x)` that returns the layer "
                "before the output (with `forward(x) = head(features(x))`) and new runs get a map.")
    else:
        st.info("**No map for this run yet.** It has no `embedding/` files: it was written before docl "
                "mapped penultimate features (the bundled demo too, until it is regenerated with "
                "`python -m docl_core demo`). Run it again to get the map; the other pages work as before.")


def round_view():
    run.refresh()
    mapped = run.embedding_rounds()
    if not mapped:
        no_map_note()
        return
    stamp = common.run_stamp(run.dir)
    M = maps(str(run.dir), stamp)
    rounds = [int(t) for t in M["rounds"]]
    if st.session_state.get("emb_round") not in rounds:
        st.session_state["emb_round"] = rounds[-1] if run.is_live else common.early_round(rounds)
    if st.session_state.get("emb_play", False) and len(rounds) > 1:
        i = rounds.index(st.session_state["emb_round"])
        st.session_state["emb_round"] = rounds[0] if i + 1 >= len(rounds) else rounds[i + 1]
    if len(rounds) > 1:
        t = st.select_slider(UNIT.capitalize(), options=rounds, key="emb_round",
                             help="Use ▶ Play to step through them.")
    else:
        t = rounds[0]
        st.caption(f"{UNIT.capitalize()} {t} is the only mapped {UNIT} so far.")
    r = rounds.index(t)
    n = M["x"].shape[1]
    label, noisy = train_columns(n)
    regression = run.task == "regression"
    columns = ["score", "selected", "times_selected", "loss"] + ([] if regression else ["class"]) + ["noisy"]
    options = [COLOR_LABELS[c] for c in columns]  # the labels are the values (AppTest sets them as shown)
    if st.session_state.get("emb_color") not in options:
        st.session_state["emb_color"] = COLOR_LABELS["score"]
    c1, c2, c3 = st.columns([5, 3, 5])
    color_by = columns[options.index(c1.radio("Colour by", options, horizontal=True, key="emb_color"))]
    emphasis = c2.radio("Score as", ["uniform", "size", "opacity"], horizontal=True, key="emb_emph",
                        help="Draw high-|score| samples larger or more opaque.")
    fit0 = (run.meta.get("embedding") or {}).get("fit_round", rounds[0])
    method = c3.radio("Projection", METHODS, key="emb_method", horizontal=True,
                      format_func=lambda m: {FIXED: f"fixed axes of {UNIT} {fit0}", REFIT_SHOWN: f"PCA of this {UNIT}",
                                             REFIT_LAST: f"PCA of the last {UNIT}", TSNE: f"t-SNE (this {UNIT})"}[m],
                      help=f"PCA of this {UNIT} (the default) finds the two directions along which the shown "
                           f"{UNIT}'s points spread most, within the stored principal components (the full features "
                           f"are not stored); the axes change with the {UNIT}. The fixed axes are fitted on {UNIT} "
                           f"{fit0} and kept: motion is motion, but directions grown later are off the map. t-SNE "
                           f"is computed here, once per {UNIT} and sample count, on the stored components; its axes "
                           f"and distances between clusters carry no meaning across {UNIT}s.")
    tsne_on = method == TSNE
    budget = MAX_POINTS
    if tsne_on:
        budget = st.select_slider("t-SNE samples", TSNE_POINTS, value=1000, key="emb_tsne_n",
                                  help="Measured on 2 busy CPU cores (scikit-learn, 300 iterations): about 17 s "
                                       "for 1,000 samples, 30 s for 2,000; cached afterwards.")
    ids = shown_ids(n, noisy, budget)
    if tsne_on:
        path = run.dir / "embedding" / f"round={t:04d}.parquet"
        xy = tsne(str(run.dir), t, tuple(int(i) for i in ids), path.stat().st_mtime_ns)
        x, y = xy["x"].to_numpy(), xy["y"].to_numpy()
    else:
        coords = coords_of(t)  # (N, K)
        fit_round = t if method == REFIT_SHOWN else rounds[-1] if method == REFIT_LAST else fit0
        xy, fit_share = refitted(t, fit_round) if method != FIXED else (coords[:, :2], None)
        # each axis's share of round t's full feature variance (NaN: a run from before var_2d was logged)
        on_fixed = var_2d(t)  # the fixed axes' share, as the tracker measured it
        share, stored = embedding.variance_shares(coords, on_fixed, xy)
        x, y = (xy[ids, 0], xy[ids, 1]) if method != FIXED else (M["x"][r, ids], M["y"][r, ids])
    cols = {c: common.matrix(run, c)[t, ids] for c in ("score", "selected", "times_selected", "loss")}
    df = pd.DataFrame({"sample_id": ids, "x": x, "y": y, "label": label[ids], "noisy": noisy[ids], **cols})
    df["selected"] = df["selected"] > 0.5
    names = run.meta.get("class_names") or []
    df["class"] = [names[v] if 0 <= v < len(names) else str(v) for v in df["label"]]
    fig = scatter(df, color_by, emphasis)
    title = (f"{len(ids):,} of {n:,} samples" if len(ids) < n else f"{n:,} samples") + f", {UNIT} {t}"
    if tsne_on:
        fig.update_layout(xaxis_title="t-SNE 1", yaxis_title="t-SNE 2")
        axes_note = f"Axes: t-SNE of {UNIT} {t}'s stored principal components (no meaning across {UNIT}s)."
    elif method in (REFIT_SHOWN, REFIT_LAST):
        k = coords.shape[1]
        known = bool(np.isfinite(share).all())
        of = f"{UNIT} {t}'s feature variance" if known else f"{UNIT} {fit_round}'s variance within the {k} components"
        shown = share if known else fit_share
        fig.update_layout(xaxis_title=f"refit axis 1 ({100 * shown[0]:.0f} % of {of})",
                          yaxis_title=f"refit axis 2 ({100 * shown[1]:.0f} % of {of})")
        axes_note = (f"Axes: refitted on {UNIT} {fit_round}{' (the last)' if method == REFIT_LAST else ''}, the two "
                     f"directions its points spread most along within the run's {k} stored principal components; "
                     + (f"at {UNIT} {t} they hold {100 * share.sum():.0f} % of the features' variance, the {k} stored "
                        f"components {100 * stored:.0f} % (the most any axes refitted from the files can hold), the "
                        f"fixed axes of {UNIT} {fit0} {100 * on_fixed:.0f} %." if known else
                        f"they hold {100 * fit_share.sum():.0f} % of {UNIT} {fit_round}'s variance within those "
                        f"components (this run did not record its features' full variance, so no share of it "
                        f"can be given)."))
    else:
        axes_note = f"Axes: the run's principal axes, fitted on {UNIT} {fit0} and kept for every {UNIT}."
        ev = (run.meta.get("embedding") or {}).get("explained_variance_ratio") or []
        if np.isfinite(share).all():  # the shown round's share: the fit round's would flatter a later round
            pct = lambda i: f" ({100 * share[i]:.0f} % of {UNIT} {t}'s variance)"  # noqa: E731
        else:
            pct = lambda i: f" ({100 * ev[i]:.0f} % of {UNIT} {fit0}'s variance)" if len(ev) > i else ""  # noqa: E731
        fig.update_layout(xaxis=dict(range=M["xrange"], title=f"PC1 of {UNIT} {fit0}{pct(0)}"),
                          yaxis=dict(range=M["yrange"], title=f"PC2 of {UNIT} {fit0}{pct(1)}"))
    fig.update_layout(title=title, height=580, legend=dict(itemsizing="constant"), dragmode="lasso")
    # presenting, one 1920×1080 screen: the computed takeaway beside the map
    chart_box, note_box = st.columns([3, 2], gap="medium") if common.presenting() else (nullcontext(), nullcontext())
    with chart_box:
        event = common.chart(fig, axes_note + " What to look for: whether samples of one class gather as training goes "
                             "on; where the selected samples sit against the clusters (their cores, their edges, between "
                             "them); whether flipped labels sit with their given class or their true one; which "
                             "points still move late. Box- or lasso-select points to list them.",
                             key="emb_scatter", on_select="rerun", selection_mode=("points", "box", "lasso"),
                             present_height=540)
    with note_box:
        common.takeaway(map_takeaway(df, t))
    if method == FIXED:
        var_note(t)
    picked = picked_ids(event)
    if picked:
        listing(df[df["sample_id"].isin(picked)], t)


def map_takeaway(df: pd.DataFrame, t: int) -> str:
    """The map in numbers, on the axes shown: how many samples lie nearest their own (given) class's centre,
    and whether the selected ones sit nearer their class's centre than the rest (its core) or farther (its edges)."""
    xy = df[["x", "y"]].to_numpy(dtype=float)
    ok = np.isfinite(xy).all(axis=1)
    lab = df["label"].to_numpy()
    classes = [c for c in np.unique(lab[ok]) if c >= 0]
    parts = []
    if len(classes) >= 2:
        centres = np.stack([xy[ok & (lab == c)].mean(axis=0) for c in classes])
        dist = np.linalg.norm(xy[:, None, :] - centres[None, :, :], axis=2)  # (n, classes)
        has = ok & (lab >= 0)
        nearest = np.asarray(classes)[np.argmin(dist[has], axis=1)]
        share, chance = float(np.mean(nearest == lab[has])), 1 / len(classes)
        gathered = ("the classes have separated" if share >= 0.8 else "the classes still overlap"
                    if share <= 2 * chance else "the classes are partly separated")
        parts.append(f"In {UNIT} {t}, {100 * share:.0f} % of the samples lie nearest their own class's centre on "
                     f"this map (by chance {100 * chance:.0f} %): {gathered}.")
        own = np.full(len(df), np.nan)
        own[has] = dist[has, [classes.index(c) for c in lab[has]]]
        what = "their class's centre"
    else:  # no classes (a regression): distances to the centre of the map
        own = np.where(ok, np.linalg.norm(xy - np.nanmean(xy[ok], axis=0), axis=1), np.nan)
        what = "the map's centre"
        parts.append(f"In {UNIT} {t}:")
    sel = df["selected"].to_numpy(bool)
    if sel.any() and (~sel).any() and np.isfinite(own[sel]).any() and np.isfinite(own[~sel]).any():
        ratio = float(np.nanmedian(own[sel]) / max(np.nanmedian(own[~sel]), 1e-30))
        where = "their edges" if ratio > 1.1 else "their cores" if ratio < 0.9 else "neither core nor edge"
        parts.append(f"The {common.plural(int(sel.sum()), 'selected sample')} lie {ratio:.2f}× as far from {what} "
                     f"as the others (median distance): {where}.")
    else:
        parts.append(f"{'Every' if sel.all() else 'No'} sample shown is selected in this {UNIT}.")
    return " ".join(parts)


def scatter(df: pd.DataFrame, color_by: str, emphasis: str) -> go.Figure:
    """One Scattergl per category (selected, class, noisy) or one coloured by a number."""
    s = df["score"].to_numpy(dtype=float)
    rank = pd.Series(np.abs(s)).rank(pct=True).fillna(0.5).to_numpy()  # ranks: scores are heavy-tailed
    size = 3 + 9 * rank if emphasis == "size" else np.full(len(df), 5.0)
    opacity = 0.15 + 0.85 * rank if emphasis == "opacity" else None
    hover = ("sample %{customdata[0]} · %{customdata[1]}<br>score %{customdata[2]:.3g} · loss %{customdata[3]:.3g}"
             "<br>selected %{customdata[4]:.0f}×<extra></extra>")
    fig = go.Figure()

    def trace(d, name, marker, mask=None):
        sz = size if mask is None else size[mask]
        op = opacity if (opacity is None or mask is None) else opacity[mask]
        m = dict(size=sz, line=dict(width=0), **marker)
        if op is not None:
            m["opacity"] = op
        fig.add_trace(go.Scattergl(x=d["x"], y=d["y"], mode="markers", name=name, marker=m, hovertemplate=hover,
                                   opacity=None if op is not None else 0.75,
                                   customdata=d[["sample_id", "class", "score", "loss", "times_selected"]]))
    word = "target" if len(df) and (df["label"] < 0).all() else "label"
    if color_by in ("selected", "noisy", "class"):
        if color_by == "selected":
            groups = [("not selected", ~df["selected"], "#BBBBBB"), ("selected", df["selected"], "#0072B2")]
        elif color_by == "noisy":
            groups = [(f"clean {word}", ~df["noisy"], "#9EB9D4"), (f"noisy {word}", df["noisy"], "#D55E00")]
        else:
            palette = px.colors.qualitative.Safe
            groups = [(c, df["class"] == c, palette[i % len(palette)])
                      for i, c in enumerate(sorted(df["class"].unique(), key=_class_key))]
        for name, mask, color in groups:
            mask = mask.to_numpy()
            trace(df[mask], name, dict(color=color), mask)
    else:
        v = df[color_by].to_numpy(dtype=float)
        fin = v[np.isfinite(v)]
        marker = dict(color=v, showscale=True, colorbar=dict(title=COLOR_LABELS[color_by]))
        if color_by == "score" and len(fin):
            hi = float(np.quantile(np.abs(fin), 0.98)) or 1.0
            marker.update(colorscale="RdBu_r", cmin=-hi, cmax=hi)
        elif color_by == "loss" and len(fin):
            marker.update(colorscale="Plasma", cmin=float(fin.min()), cmax=float(np.quantile(fin, 0.98)))
        else:
            marker.update(colorscale="Viridis")
        trace(df, COLOR_LABELS[color_by], marker)
    return fig


def _class_key(c: str):
    return (0, int(c)) if c.lstrip("-").isdigit() else (1, c)


def var_note(t: int) -> None:
    fit, share = (run.meta.get("embedding") or {}).get("fit_round"), var_2d(t)
    if np.isfinite(share):
        st.caption(f"Axes fitted on {UNIT} {fit}'s features; at {UNIT} {t} they hold {100 * share:.0f} % of the "
                   f"features' variance (a falling share means the network has grown directions this map does not "
                   f"show: Projection's PCA of this {UNIT} shows them).")


def picked_ids(event) -> list[int]:
    try:
        pts = event.selection.points if event else []
    except AttributeError:
        return []
    return sorted({int(p["customdata"][0]) for p in pts if p.get("customdata") is not None})


def listing(sel: pd.DataFrame, t: int) -> None:
    st.markdown(f"**{common.plural(len(sel), 'sample')} selected on the chart** ({UNIT} {t})")
    table = sel[["sample_id", "class", "noisy", "score", "loss", "selected", "times_selected"]].rename(
        columns={"selected": f"in S_{t}", "noisy": COLOR_LABELS["noisy"]})
    st.dataframe(table, hide_index=True, height=min(400, 38 + 35 * len(table)))
    pick = st.selectbox("Open one on the Sample page", [None] + [int(s) for s in sel["sample_id"]], key="emb_open",
                        format_func=lambda s: "—" if s is None else f"sample {s}")
    if pick is not None:
        st.session_state["picked_sample"] = int(pick)
        st.page_link("app_pages/sample.py", label=f"Open sample {pick} →", icon="🔎")
    common.download(table, f"{run.dir.name}-embedding-selection-{UNIT}{t}", key="dl_emb_sel")


st.toggle(f"▶ Play {UNIT}s", key="emb_play", help=f"Step through the {UNIT}s once a second.")
playing = st.session_state.get("emb_play", False)
if playing or run.is_live:
    def area():
        with common.error_box():
            round_view()
        if not playing and not common.still_live(run):  # it has ended: redraw the sidebar too (● live)
            st.rerun()
    st.fragment(run_every=1.0 if playing else common.LIVE_REFRESH_S)(area)()
else:
    with common.error_box():
        round_view()
