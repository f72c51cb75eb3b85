"""Selected subsets: which samples S_t each curriculum picks, round by round."""
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from app import common
from docl_core import views

ctx = common.context()
st.title("Selected subsets")
st.caption("Each round a curriculum picks S_t (|S_t| = k_t) and trains on it. Which samples, which classes, "
           "how many noisy labels, and how much do the curricula agree?")
run = common.need_focus(ctx)
GALLERY = 40  # thumbnails shown per round
MAX_POINTS = 6000  # points drawn in input-space plots


@st.cache_data(max_entries=32, show_spinner=False)
def selection(run_dir: str, stamp: int, t: int, ds_mtime: int):
    return views.selection_frame(common.RunReader(run_dir), t, common.dataset_light(run_dir, ds_mtime))


def round_view():
    run.refresh()
    ids = run.round_ids
    if st.session_state.get("sub_round") is None or st.session_state["sub_round"] > ids[-1]:
        # a run still training opens on its newest round; a finished one where the curricula differ
        st.session_state["sub_round"] = ids[-1] if run.is_live else common.early_round(ids)
    if st.session_state.get("sub_play", False) and len(ids) > 1:
        cur = st.session_state["sub_round"]
        st.session_state["sub_round"] = ids[0] if cur >= ids[-1] else cur + 1
    if len(ids) > 1:
        t = st.slider("Round", ids[0], ids[-1], key="sub_round", help="Use ▶ Play to step through rounds.")
    else:
        t = ids[0]
        st.caption(f"Round {t} is the only committed round so far.")
    dsp = run.dir / "dataset.parquet"
    sel = selection(str(run.dir), common.run_stamp(run.dir), t, dsp.stat().st_mtime_ns if dsp.exists() else -1)
    chosen = sel[sel["selected"].astype(bool)]
    k, n = len(chosen), len(sel)
    c = st.columns(4)
    c[0].metric("selected k_t", f"{k:,}", f"{100 * k / max(n, 1):.1f} % of N")
    n_noisy = int(chosen["noisy"].sum())
    c[1].metric("noisy targets in S_t" if run.task == "regression" else "noisy labels in S_t", f"{n_noisy:,}",
                f"{100 * chosen['noisy'].mean():.1f} % of S_t" if k and n_noisy else None, delta_color="inverse")
    c[2].metric("mean loss in S_t", f"{chosen['loss'].mean():.3f}" if k else "–",
                f"{chosen['loss'].mean() - sel['loss'].mean():+.3f} vs all" if k else None, delta_color="off")
    c[3].metric("mean score in S_t", f"{chosen['score'].mean():.3g}" if k else "–")

    kind = "image" if "thumbnail" in common.dataset_of(run).columns else (
        "points2d" if {"x0", "x1"} <= set(sel.columns) else "curve1d" if {"x0", "target"} <= set(sel.columns) else "tabular")
    if kind == "image":
        _gallery(chosen, t)
    elif kind == "points2d":
        _points(sel, t)
    elif kind == "curve1d":
        _curve(sel, t)
    else:
        st.info("This dataset has no thumbnails or low-dimensional coordinates to draw; see the tables below.")

    names = run.meta.get("class_names")
    if run.task == "classification":
        bal = views.class_balance(sel, names)
        fig = go.Figure([go.Bar(x=bal["class"], y=bal["selected (%)"], name="selected (%)",
                                marker_color=common.curriculum_color(run.curriculum)),
                         go.Bar(x=bal["class"], y=bal["all (%)"], name="all (%)", marker_color="#BBBBBB")])
        fig.update_layout(barmode="group", title=f"Class balance, round {t}", yaxis_title="share of samples (%)",
                          height=330)
        common.chart(fig, "Bars above grey: the curriculum over-samples that class this round (hard or "
                     "fast-moving classes draw DoCL's attention).", key="sub_bal")
        common.download(bal, f"{run.dir.name}-class-balance-r{t}", key="dl_bal")
    common.download(chosen.drop(columns=[c for c in ("thumbnail",) if c in chosen]),
                    f"{run.dir.name}-selected-r{t}", label="Download this round's selection (CSV)", key="dl_sel")


def _gallery(chosen, t):
    thumbs = common.dataset_of(run).set_index("sample_id")["thumbnail"] if len(chosen) else None
    top = chosen.sort_values("score", ascending=False).head(GALLERY)
    names = run.meta.get("class_names") or []

    def cname(v):
        return names[int(v)] if 0 <= int(v) < len(names) else str(int(v))
    n_noisy = int(top["noisy"].sum()) if "noisy" in top else 0
    st.markdown(f"**Round {t}: the {len(top)} highest-scoring of {len(chosen):,} selected samples** — "
                f"caption: sample id · given label; a :red[**red frame**] marks a flipped label "
                f"(given→true), {n_noisy} of {len(top)} here")
    images, caps = [], []
    for _, row in top.iterrows():
        sid, noisy = int(row["sample_id"]), bool(row.get("noisy", False))
        cap = f"#{sid} · {cname(row['label'])}"
        if noisy and pd.notna(row.get("clean_label")):
            cap = f"#{sid} · {cname(row['label'])}→{cname(row['clean_label'])}"
        images.append(common.framed_thumbnail(thumbs.loc[sid], noisy))
        caps.append(cap)
    if images:
        st.image(images, caption=caps, width=96)
    if run.meta.get("dataset_kind") == "signal":
        st.caption("Each tile is a 1-D signal drawn as a line plot, on one vertical scale shared by all "
                   "samples; the grey line marks zero.")
    st.caption("What the curriculum trains on this round. Early rounds show the difference: SPL picks clear, "
               "typical samples, MCL hard ones, DoCL the frontier; flipped labels (red) are what a good "
               "curriculum avoids. Move the slider to later rounds to see k_t grow towards N.")
    pick = st.selectbox("Open a sample from this gallery", [None] + [int(s) for s in top["sample_id"]], key="sub_open",
                        format_func=lambda s: "—" if s is None else f"sample {s}")
    if pick is not None:
        st.session_state["picked_sample"] = int(pick)
        st.page_link("app_pages/sample.py", label=f"Open sample {pick} →", icon="🔎")


def _points(sel, t):
    shown = views.downsample_rows(sel, MAX_POINTS, keep=sel["selected"].astype(bool))
    un, ch = shown[~shown["selected"].astype(bool)], shown[shown["selected"].astype(bool)]
    names = run.meta.get("class_names") or []
    fig = go.Figure()
    palette = px.colors.qualitative.Safe
    for lab in sorted(shown["label"].unique()):  # faint: the data, so the classes' shapes show
        g = un[un["label"] == lab]
        name = names[int(lab)] if 0 <= int(lab) < len(names) else f"label {lab}"
        fig.add_trace(go.Scattergl(x=g["x0"], y=g["x1"], mode="markers", name=f"{name}, not selected",
                                   marker=dict(color=palette[int(lab) % len(palette)], size=5, opacity=0.22)))
    for lab, g in ch.groupby("label"):
        clean = g[~g["noisy"]]
        name = names[int(lab)] if 0 <= int(lab) < len(names) else f"label {lab}"
        fig.add_trace(go.Scattergl(x=clean["x0"], y=clean["x1"], mode="markers", name=f"{name}, selected",
                                   marker=dict(color=palette[int(lab) % len(palette)], size=8,
                                               line=dict(color="#333333", width=0.8))))
    noisy = ch[ch["noisy"]]
    if len(noisy):
        fig.add_trace(go.Scattergl(x=noisy["x0"], y=noisy["x1"], mode="markers", name="selected, noisy label",
                                   marker=dict(color="black", size=9, symbol="x")))
    fig.update_layout(title=f"Round {t}: selected samples in input space"
                      + (f" ({len(shown):,} of {len(sel):,} drawn)" if len(shown) < len(sel) else ""),
                      xaxis_title="x₀", yaxis_title="x₁", height=480)
    fig.update_yaxes(scaleanchor="x", scaleratio=1)
    common.chart(fig, "Solid, outlined points are S_t; faint ones the rest of the training set, coloured by "
                 "label. See whether the curriculum covers the class boundaries (DoCL, MCL) or the easy cores "
                 "(SPL); × marks a flipped label.", key="sub_pts")


def _curve(sel, t):
    s = sel.sort_values("x0")
    fig = go.Figure()
    fig.add_trace(go.Scattergl(x=s["x0"], y=s["target"], mode="markers", name="target y",
                               marker=dict(color="#BBBBBB", size=5)))
    if "output0" in s and s["output0"].notna().any():
        fig.add_trace(go.Scatter(x=s["x0"], y=s["output0"], mode="lines", name=f"model f(x), round {t}",
                                 line=dict(color=common.curriculum_color(run.curriculum), width=3)))
    ch = s[s["selected"].astype(bool)]
    fig.add_trace(go.Scattergl(x=ch["x0"], y=ch["target"], mode="markers", name="selected x",
                               marker=dict(color="black", size=7, symbol="circle-open")))
    fig.update_layout(title=f"Round {t}: the fitted curve and the selected x's", xaxis_title="x",
                      yaxis_title="y", height=440)
    common.chart(fig, "For DoCL, look for selected x's (circles) where the curve is still wrong and still moving.",
                 key="sub_curve")


st.toggle("▶ Play rounds", key="sub_play", help="Step through the rounds once a second.")
playing = st.session_state.get("sub_play", False)
if playing or run.is_live:
    def area():
        with common.error_box():
            round_view()
    st.fragment(run_every=1.0 if playing else common.LIVE_REFRESH_S)(area)()
else:
    with common.error_box():
        round_view()


def across():
    rounds = ctx.rounds()
    regression = run.task == "regression"
    st.subheader("Noisy targets picked over time" if regression else "Noisy labels picked over time")
    noisy = views.noisy_selected_over_time(rounds)
    if len(noisy) and noisy["noisy selected"].sum() > 0:
        noisy["curriculum"] = noisy["curriculum"].map(common.curriculum_label)
        order = [common.curriculum_label(c) for c in ctx.curricula if common.curriculum_label(c) in set(noisy["curriculum"])]
        fig = common.lines(noisy, "round", "noisy share (%)", "curriculum", order=order,
                           colors=common.color_map(rounds["curriculum"].unique()),
                           title=("Share of S_t with corrupted targets" if regression else
                                  "Share of S_t with flipped labels") + " (mean over seeds)")
        fig.update_layout(yaxis_title=f"noisy {'targets' if regression else 'labels'} in S_t (%)", height=360)
        common.chart(fig, "Lower is better: training on noisy labels or targets teaches the network wrong answers. "
                     "Random sits at the noise rate; compare hard-first MCL, easy-first SPL and the DoCL variants.",
                     key="sub_noisy")
        common.download(noisy, f"{ctx.exp_dir.name}-noisy-selected", key="dl_noisy")
    else:
        st.caption("No noisy-label samples were selected (or the dataset has no label noise).")

    st.subheader("Do the curricula pick the same samples?")
    cands = [r for r in ctx.runs if r.last_complete_round >= 0]
    one = {}
    for r in cands:  # one run per curriculum: the lowest seed
        one.setdefault(r.curriculum, r)
    if len(one) < 2:
        if len({r.curriculum for r in ctx.experiment.runs}) < 2:
            st.info("This experiment holds one curriculum: add runs of others (New run page, or "
                    "`python -m docl_core compare`) to compare their subsets.")
        else:
            st.info("Select at least two curricula in the sidebar to compare their subsets.")
        return
    common_rounds = min(r.last_complete_round for r in one.values())
    live = any(r.is_live for r in one.values())
    t = st.slider("Round to compare", 0, max(common_rounds, 1),
                  common_rounds if live else common.early_round(list(range(common_rounds + 1))),
                  key="sub_jac_round", disabled=common_rounds == 0)
    t = min(t, common_rounds)
    masks = {common.curriculum_label(c): common.run_samples(str(r.dir), common.run_stamp(r.dir), t,
                                                             ("sample_id", "selected"))["selected"].to_numpy(bool)
             for c, r in sorted(one.items(), key=lambda kv: common.sort_curricula(one).index(kv[0]))}
    J = views.jaccard_matrix(masks)
    fig = go.Figure(go.Heatmap(z=J.to_numpy(), x=list(J.columns), y=list(J.index), zmin=0, zmax=1, colorscale="Blues",
                               text=J.to_numpy(), texttemplate="%{text:.2f}", colorbar=dict(title=dict(text="Jaccard<br>|A∩B| / |A∪B|", side="top"))))
    fig.update_yaxes(autorange="reversed", scaleanchor="x")
    fig.update_layout(height=420, title=f"Jaccard overlap of S_t at round {t} (seed {min(r.seed for r in one.values())})")
    common.chart(fig, "1 = identical subsets. Expect DoCL and DoCL-NR to overlap most and easy-first SPL and "
                 "hard-first MCL least; Random is the chance level. Late rounds all look alike because k_t "
                 "nears N: compare early rounds.", key="sub_jac")
    common.download(J.reset_index(names="curriculum"), f"{ctx.exp_dir.name}-jaccard-r{t}", key="dl_jac")


with common.error_box():
    across()
