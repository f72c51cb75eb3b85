"""Data map: confidence vs variability of p(given label) over rounds (dataset cartography)."""
from contextlib import nullcontext

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from app import common
from docl_core import views

ctx = common.context()
st.title("Data map")
st.caption("Dataset cartography (Swayamdipta et al., 2020): for each training sample, the mean (confidence) and "
           "spread (variability) of p(given label) over the committed rounds: the probability the network gives the "
           "label the training set holds, which for a flipped sample is the wrong one.")
run = common.need_focus(ctx)
MAX_POINTS = 6000


@st.cache_data(max_entries=16, show_spinner="Building the data map…")
def build_map(run_dir: str, stamp: int, ds_mtime: int, regression: bool):
    p = common.run_matrix(run_dir, stamp, "loss" if regression else "p_true")  # (R, N)
    correct = None if regression else common.run_matrix(run_dir, stamp, "correct")
    times = common.run_matrix(run_dir, stamp, "times_selected")[-1]
    ds = common.dataset_light(run_dir, ds_mtime)
    train = ds[ds["split"] == "train"] if "split" in ds else ds
    noisy = np.zeros(p.shape[1], dtype=bool)
    if "noisy" in train:
        sid = train["sample_id"].to_numpy()
        ok = sid < len(noisy)
        noisy[sid[ok]] = train["noisy"].to_numpy(bool)[ok]
    df = views.data_map(p, correct, times, noisy)
    sid = train["sample_id"].to_numpy()
    inside = sid < p.shape[1]
    for col, src in (("label", "label"), ("clean_label", "clean_label" if "clean_label" in train else "label")):
        lab = np.full(p.shape[1], -1)
        if src in train:
            lab[sid[inside]] = train[src].to_numpy()[inside]
        df[col] = lab
    return df


def point_text(d, word: str) -> list[str]:
    """Hover line per point: the given label, and for a flipped one the clean label beside it."""
    return [f"sample {s} · given {word} {g}" + (f", clean {word} {c} (flipped)" if nz else "")
            for s, g, c, nz in zip(d["sample_id"], d["label"], d["clean_label"], d["noisy"])]


def show_pick(df, picked: list[int], word: str, regression: bool) -> None:
    """What a click on the map picked: that sample's place on the map and a link to its history."""
    rows = df.set_index("sample_id").reindex([p for p in picked if p in set(df["sample_id"])])
    if not len(rows):
        return
    sid = int(rows.index[0])
    r = rows.iloc[0]
    st.session_state["picked_sample"] = sid
    what = ("" if regression else f"given {word} {int(r['label'])}"
            + (f", clean {word} {int(r['clean_label'])} (flipped)" if r["noisy"] else "") + "; ")
    measure = "loss" if regression else "p(given label)"
    st.markdown(f"**Picked sample {sid}**: {what}mean {measure} {r['confidence']:.2f}, spread {r['variability']:.2f}, "
                f"{r['region']}, selected {r['times_selected']:.0f}×"
                + (f" ({len(rows) - 1} more picked points not shown)" if len(rows) > 1 else "") + ".")
    if st.button(f"Open sample {sid} →", key="dm_open"):
        st.switch_page("app_pages/sample.py")


def map_takeaway(df: pd.DataFrame, word: str, regression: bool) -> str:
    """The map in one computed sentence: with flipped labels, how many sit in the hard-to-learn region;
    without, how many samples sit where they would gather and how often the curriculum picked them."""
    hard = df["region"] == "hard-to-learn"
    nz = df["noisy"].astype(bool)
    y = "mean loss" if regression else "confidence"
    if nz.any():
        return (f"{int((hard & nz).sum())} of {common.plural(int(nz.sum()), 'flipped ' + word)} "
                f"({100 * (hard & nz).sum() / nz.sum():.0f} %) sit in the hard-to-learn region, against "
                f"{100 * hard.mean():.0f} % of all samples; their mean {y} is "
                f"{df.loc[nz, 'confidence'].mean():.2f} against {df.loc[~nz, 'confidence'].mean():.2f} for clean ones.")
    if regression:  # no probabilities: the y axis is the mean loss (higher is worse)
        worst = df["confidence"] >= df["confidence"].quantile(0.9)
        return (f"No target is noisy here: the tenth of samples with the highest mean loss (≥ "
                f"{df.loc[worst, 'confidence'].min():.3g}, median {df['confidence'].median():.3g}) were selected "
                f"{df.loc[worst, 'times_selected'].mean():.1f}× on average, the rest "
                f"{df.loc[~worst, 'times_selected'].mean():.1f}×.")
    sel = df.groupby("region")["times_selected"].mean()
    said = ", ".join(f"{r} {sel[r]:.1f}×" for r in ("hard-to-learn", "ambiguous", "easy-to-learn") if r in sel)
    return (f"No {word} was flipped here: the hard-to-learn region, where flipped {word}s would gather, holds "
            f"{common.plural(int(hard.sum()), 'sample')} of {len(df):,} ({100 * hard.mean():.0f} %), "
            f"{100 * (df['region'] == 'ambiguous').mean():.0f} % are ambiguous. Times selected on average, by "
            f"region: {said}.")


def body():
    run.refresh()
    regression = run.task == "regression"
    if regression:
        st.info("A regression run has no class probabilities: this map uses the per-sample loss instead "
                "(x: its variability, y: its mean; lower is better learned).")
    p = run.dir / "dataset.parquet"
    df = build_map(str(run.dir), common.run_stamp(run.dir), p.stat().st_mtime_ns if p.exists() else -1, regression)
    options = ["noisy", "times_selected"] if regression else ["correctness", "noisy", "times_selected"]
    word = "target" if regression else "label"
    if "dm_color" not in st.session_state and df["noisy"].any():
        st.session_state["dm_color"] = "noisy"  # with flipped labels, where they land is the story
    if st.session_state.get("dm_color", options[0]) not in options:  # e.g. correctness, then a regression run
        st.session_state["dm_color"] = options[0]
    color_by = st.radio("Colour by", options, horizontal=True, key="dm_color",
                        format_func={"correctness": "correctness", "noisy": f"{word} noise",
                                     "times_selected": "times selected"}.get)
    if color_by == "correctness" and df["correctness"].isna().all():
        color_by = "times_selected"
    shown = views.downsample_rows(df, MAX_POINTS, keep=df["noisy"])
    plot = shown.assign(noisy=shown["noisy"].map({True: f"noisy {word}", False: f"clean {word}"}),
                        hover=point_text(shown, word))  # from the boolean flag, before it becomes a name
    hover = "%{text}<br>selected %{customdata[1]:.0f}×<extra></extra>"
    fig = go.Figure()
    trace_ids = []  # sample ids per trace, in drawing order: what a click's (curve_number, point_index) indexes

    def trace(d, name, marker):
        trace_ids.append(d["sample_id"].to_numpy())
        fig.add_trace(go.Scattergl(x=d["variability"], y=d["confidence"], mode="markers", name=name, opacity=0.7,
                                   customdata=d[["sample_id", "times_selected"]], text=d["hover"],
                                   hovertemplate=hover, marker=dict(size=5, **marker)))
    if color_by == "noisy":
        for name, color in ((f"clean {word}", "#9EB9D4"), (f"noisy {word}", "#D55E00")):
            trace(plot[plot["noisy"] == name], name, dict(color=color))
    else:
        scale = "RdYlBu" if color_by == "correctness" else "Viridis"
        rng = dict(cmin=0, cmax=1) if color_by == "correctness" else {}
        trace(plot, color_by, dict(color=plot[color_by], colorscale=scale, showscale=True,
                                   colorbar=dict(title=color_by.replace("_", " ")), **rng))
    fig.update_layout(height=540, title=common.plural(len(df), "sample") + (
        f" ({len(shown):,} drawn: a random subset, noisy labels kept)" if len(shown) < len(df) else "")
        + f", {common.round_word(run)}s 0–{run.last_complete_round}",
                      xaxis_title=("std of loss over rounds" if regression else "variability: std of p(given label) over rounds"),
                      yaxis_title=("mean loss over rounds" if regression else "confidence: mean p(given label) over rounds"))
    # presenting, one 1920×1080 screen: the takeaway (and a clicked point) beside the map
    chart_box, note_box = st.columns([3, 2], gap="medium") if common.presenting() else (nullcontext(), nullcontext())
    with chart_box:
        event = common.chart(fig, ("Lower is better learned; to the right, samples whose loss swung over the rounds. "
                              if regression else
                              "High: learned confidently; low and left: never learned — flipped labels gather here, "
                              "since the network cannot fit a wrong label without memorising it; right: ambiguous "
                              "samples whose p(given label) swung over the rounds, where curricula differ most. ")
                             + "Click a point to open that sample.", key="dm_scatter", on_select="rerun",
                             selection_mode="points")
    with note_box:
        common.takeaway(map_takeaway(df, word, regression))
        show_pick(df, common.picked_samples(event, trace_ids), word, regression)
    if common.presenting():
        return
    regions = df.groupby("region").agg(samples=("sample_id", "size"), noisy=("noisy", "sum"),
                                       times=("times_selected", "mean")).reset_index()
    regions = regions.rename(columns={"noisy": "flipped labels", "times": "mean times selected"})
    if not regression:
        st.dataframe(regions, hide_index=True,
                     column_config={"mean times selected": st.column_config.NumberColumn(format="%.1f")})
        st.markdown("Regions: ambiguous = the third of samples with the largest variability; the rest split at "
                   "confidence 0.5. Confidence averages over all committed rounds, early ones included, so a short "
                   "run puts most samples below 0.5.")
    common.download(df, f"{run.dir.name}-data-map", label="Download the full map (CSV)", key="dl_dm")


common.live_area(body, run.is_live)
