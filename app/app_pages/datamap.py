"""Data map: confidence vs variability of p(true label) over rounds (dataset cartography)."""
import numpy as np
import plotly.graph_objects as go
import streamlit as st

from app import common
from docl_core import views

ctx = common.context()
st.title("Data map")
st.caption("Dataset cartography (Swayamdipta et al., 2020): for each training sample, the mean (confidence) and "
           "spread (variability) of p(true label) over the committed rounds.")
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
    df["label"] = -1
    if "label" in train:
        sid = train["sample_id"].to_numpy()
        lab = np.full(p.shape[1], -1)
        lab[sid[sid < len(lab)]] = train["label"].to_numpy()[sid < len(lab)]
        df["label"] = lab
    return df


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
    plot = shown.assign(noisy=shown["noisy"].map({True: f"noisy {word}", False: f"clean {word}"}))
    hover = "sample %{customdata[0]} (label %{customdata[1]})<br>selected %{customdata[2]:.0f}×<extra></extra>"
    fig = go.Figure()

    def trace(d, name, marker):
        fig.add_trace(go.Scattergl(x=d["variability"], y=d["confidence"], mode="markers", name=name, opacity=0.7,
                                   customdata=d[["sample_id", "label", "times_selected"]], hovertemplate=hover,
                                   marker=dict(size=5, **marker)))
    if color_by == "noisy":
        for name, color in ((f"clean {word}", "#9EB9D4"), (f"noisy {word}", "#D55E00")):
            trace(plot[plot["noisy"] == name], name, dict(color=color))
    else:
        scale = "RdYlBu" if color_by == "correctness" else "Viridis"
        rng = dict(cmin=0, cmax=1) if color_by == "correctness" else {}
        trace(plot, color_by, dict(color=plot[color_by], colorscale=scale, showscale=True,
                                   colorbar=dict(title=color_by.replace("_", " ")), **rng))
    fig.update_layout(height=540, title=f"{len(df):,} samples" + (
        f" ({len(shown):,} drawn: a random subset, noisy labels kept)" if len(shown) < len(df) else "")
        + f", {common.round_word(run)}s 0–{run.last_complete_round}",
                      xaxis_title=("std of loss over rounds" if regression else "variability: std of p(true) over rounds"),
                      yaxis_title=("mean loss over rounds" if regression else "confidence: mean p(true) over rounds"))
    event = common.chart(fig, ("Lower is better learned; to the right, samples whose loss swung over the rounds. "
                          if regression else
                          "High: learned confidently; low and left: never learned — flipped labels gather here, "
                          "since the network cannot fit a wrong label without memorising it; right: ambiguous "
                          "samples whose p(true) swung over the rounds, where curricula differ most. ")
                         + "Click a point to open that sample.", key="dm_scatter", on_select="rerun",
                         selection_mode="points")
    try:
        pts = event.selection.points if event else []
    except AttributeError:
        pts = []
    if pts and pts[0].get("customdata"):
        sid = int(pts[0]["customdata"][0])
        st.session_state["picked_sample"] = sid
        if st.button(f"Open sample {sid} →", key="dm_open"):
            st.switch_page("app_pages/sample.py")
    if df["noisy"].any():
        hard = df["region"] == "hard-to-learn"
        nz = df["noisy"]
        common.takeaway(f"{int((hard & nz).sum())} of {int(nz.sum())} flipped {word}s "
                        f"({100 * (hard & nz).sum() / nz.sum():.0f} %) sit in the hard-to-learn region, against "
                        f"{100 * hard.mean():.0f} % of all samples; their mean confidence is "
                        f"{df.loc[nz, 'confidence'].mean():.2f} against {df.loc[~nz, 'confidence'].mean():.2f} for clean ones.")
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
