"""Selected subsets: which samples S_t each curriculum picks, round by round."""
import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st
from plotly.colors import hex_to_rgb
from plotly.subplots import make_subplots

from app import common
from docl_core import views

ctx = common.context()
st.title("Selected subsets")
st.caption("Each round a curriculum picks S_t (|S_t| = k_t) and trains on it. Which samples, which classes, "
           "how many noisy labels, and how much do the curricula agree?")
run = common.need_focus(ctx)
WORD = common.round_word(run)  # "epoch" under the paper protocol
GALLERY = 40  # thumbnails shown per round
GALLERY_PRESENTED, THUMB_PRESENTED = 12, 132  # Presentation mode: fewer, larger (px) thumbnails, ids readable
TABLE_ROWS = 200  # selected samples listed per round (tabular data); the download has them all
MAX_POINTS = 6000  # points drawn in input-space plots
ORDER_HEIGHT, ORDER_PRESENTED = 260, 300  # px: the "Order of the pass" chart, normally and in Presentation mode


@st.cache_data(max_entries=32, show_spinner=False)
def selection(run_dir: str, stamp: int, t: int, ds_mtime: int):
    return views.selection_frame(common.RunReader(run_dir), t, common.dataset_light(run_dir, ds_mtime))


def round_view():
    run.refresh()
    ids = run.round_ids
    fresh = st.session_state.pop("_sub_play_fresh", False)  # Play just pressed: show this round first
    if st.session_state.get("sub_play", False) and len(ids) > 1 and not fresh:
        cur = common.current_round(ids, run.is_live)
        if cur < ids[-1]:
            st.session_state["current_round"] = ids[ids.index(cur) + 1]
        if st.session_state["current_round"] >= ids[-1]:  # Play stops at the last round, never wraps
            st.session_state["_sub_play_stop"] = True
    if len(ids) > 1:
        t = common.round_slider(ids, "sub_round", WORD, run.is_live, help=f"Use ▶ Play to step through {WORD}s; "
                                f"the {WORD} is shared with the other pages.")
    else:
        t = ids[0]
        st.markdown(f"{WORD.capitalize()} {t} is the only committed {WORD} so far.")
    dsp = run.dir / "dataset.parquet"
    sel = selection(str(run.dir), common.run_stamp(run.dir), t, dsp.stat().st_mtime_ns if dsp.exists() else -1)
    chosen = sel[sel["selected"].astype(bool)]
    k, n = len(chosen), len(sel)
    kernel = (common.run_kernel(str(run.dir), common.run_stamp(run.dir), t) if t in run.kernel_rounds() else None)
    about = views.subset_summary(sel, run.curriculum, run.meta.get("class_names"), kernel, WORD)
    kind = "image" if "thumbnail" in common.dataset_of(run).columns else (
        "points2d" if {"x0", "x1"} <= set(sel.columns) else "curve1d" if {"x0", "target"} <= set(sel.columns) else "tabular")
    callout = (f"**What {common.curriculum_label(run.curriculum)} selected here.** " + about["parts"][0] + "\n\n"
               + "\n".join(f"- {p}" for p in about["parts"][1:]))
    if common.presenting() and kind == "image":
        # one 1920×1080 screen: the callout (it states k_t, the noise share and the loss the metrics
        # would repeat) beside fewer, larger thumbnails whose ids can be read from the back
        left, right = st.columns([5, 6], gap="large")
        with left:
            common.takeaway(callout)
        with right:
            _gallery(chosen, t, count=GALLERY_PRESENTED, width=THUMB_PRESENTED)
        _pass_order(sel, t)  # below the first screen: what the order of this pass did, for the lecture
        return
    c = st.columns(4)
    c[0].metric("selected k_t", f"{k:,}", f"{100 * k / max(n, 1):.1f} % of N", delta_color="off")
    n_noisy = int(chosen["noisy"].sum())
    c[1].metric("noisy targets in S_t" if run.task == "regression" else "noisy labels in S_t", f"{n_noisy:,}",
                (f"{100 * about['noisy_share']:.1f} % vs {100 * about['base_rate']:.1f} % base"
                 if k and about["base_rate"] > 0 else None),
                delta_color="off" if about.get("noise_vs_base", "at") == "at" else "inverse"
                if about["noise_vs_base"] == "above" else "normal")
    c[2].metric("mean loss in S_t", f"{chosen['loss'].mean():.3f}" if k else "–",
                f"{chosen['loss'].mean() - sel['loss'].mean():+.3f} vs all" if k else None, delta_color="off")
    c[3].metric("mean score in S_t", f"{chosen['score'].mean():.3g}" if k else "–",
                help=f"The {views.score_label('score', views.driving_estimator(run), short=True)}: the score "
                     "that drove this run's selection.")
    common.takeaway(callout)

    if kind == "image":
        _gallery(chosen, t)
    elif kind == "points2d":
        _points(sel, t)
    elif kind == "curve1d":
        _curve(sel, t)
    else:
        _table(sel, t)

    names = run.meta.get("class_names")
    if run.task == "classification":
        bal = views.class_balance(sel, names)
        fig = go.Figure([go.Bar(x=bal["class"], y=bal["selected (%)"], name="selected (%)",
                                marker_color=common.curriculum_color(run.curriculum)),
                         go.Bar(x=bal["class"], y=bal["all (%)"], name="all (%)", marker_color="#BBBBBB")])
        fig.update_layout(barmode="group", title=f"Class balance, {WORD} {t}", yaxis_title="share of samples (%)",
                          height=330)
        common.chart(fig, f"Bars above grey: the curriculum over-samples that class this {WORD}"
                     + (f" (most: {about['top_class']}, {100 * about['top_share']:.0f} % of S_t; least: "
                        f"{about['low_class']}, {100 * about['low_share']:.0f} %; balanced would be "
                        f"{100 * about['uniform']:.0f} % each)." if "top_class" in about else "."),
                     key="sub_bal", secondary=True)
        common.download(bal, f"{run.dir.name}-class-balance-r{t}", key="dl_bal")
    common.download(chosen.drop(columns=[c for c in ("thumbnail",) if c in chosen]),
                    f"{run.dir.name}-selected-r{t}", label="Download this round's selection (CSV)", key="dl_sel")
    _pass_order(sel, t)


def _warm_start(t: int) -> bool:
    """Epoch t of a paper-protocol run is its warm start (episode 0: one shuffled pass over all N, no subset)."""
    rounds = ctx.rounds()
    rounds = rounds[rounds["run"] == run.dir.name] if len(rounds) and "run" in rounds else rounds.iloc[:0]
    if not len(rounds):  # the focus run is not among the runs shown: read its own rounds
        rounds = run.rounds()
    if "episode" not in rounds:
        return False
    row = rounds[rounds["round"] == t]
    return bool(len(row)) and pd.notna(row["episode"].iloc[0]) and int(row["episode"].iloc[0]) == 0


def _pass_order(sel, t):
    """Order of the pass: mean score and noise share per mini-batch, in the order the pass trained them."""
    order = views.pass_order_name(run.meta)
    if order is None:  # the steps protocol: rounds of steps, no subset pass to order
        return
    if "pass_position" not in sel:
        st.caption(f"This run did not record the order of its {WORD}s' passes (it was made before docl recorded "
                   "it): train it again to see which samples came first.")
        return
    if _warm_start(t):
        st.caption(f"{WORD.capitalize()} {t} is the warm start: one pass over all samples in a fresh random "
                   f"order, no subset selected, so there is no order of a selection to show; pick a later {WORD}.")
        return
    bs = int((run.meta.get("config") or {}).get("batch_size") or 64)
    frame = views.pass_order(sel, bs)
    if not len(frame):
        st.caption(f"No sample was trained in a subset pass in {WORD} {t}, so there is no order to show.")
        return
    n_pass = int(frame["n"].sum())
    rho = views.pass_order_rho(sel)
    regression = run.task == "regression"
    noise = ("corrupted targets" if regression else "flipped labels") if sel["noisy"].any() else None
    color = common.curriculum_color(run.curriculum)
    band = (f"rgba({', '.join(str(v) for v in hex_to_rgb(color))}, 0.2)" if color.startswith("#")
            else "rgba(120, 120, 120, 0.2)")
    xtitle = "mini-batch along the pass (index)"
    fig = make_subplots(rows=1, cols=2, column_widths=[0.62, 0.38], horizontal_spacing=0.12) if noise else go.Figure()
    where = dict(row=1, col=1) if noise else {}
    hover = [f"mini-batch {b} (positions {p}–{p + m - 1}, {m} samples)" for b, p, m in
             zip(frame["batch"], frame["first_position"], frame["n"])]
    fig.add_trace(go.Scatter(x=frame["batch"], y=frame["score_q75"], mode="lines", line=dict(width=0),
                             hoverinfo="skip", showlegend=False), **where)
    fig.add_trace(go.Scatter(x=frame["batch"], y=frame["score_q25"], mode="lines", line=dict(width=0),
                             fill="tonexty", fillcolor=band, hoverinfo="skip", showlegend=False), **where)
    fig.add_trace(go.Scatter(x=frame["batch"], y=frame["score_mean"], mode="lines+markers", name="mean score",
                             line=dict(color=color, width=2), marker=dict(color=color, size=6), customdata=hover,
                             hovertemplate="%{customdata}<br>mean score %{y:.3g}<extra></extra>", showlegend=False),
                  **where)
    if noise:
        fig.add_trace(go.Bar(x=frame["batch"], y=100 * frame["noisy_share"], name=noise, customdata=hover,
                             marker_color="#C44E52", opacity=0.75, showlegend=False,
                             hovertemplate="%{customdata}<br>" + noise + " %{y:.1f} %<extra></extra>"), row=1, col=2)
        fig.update_xaxes(title_text=xtitle, row=1, col=2)
        fig.update_yaxes(title_text=f"{noise} (%)", rangemode="tozero", row=1, col=2)
        fig.update_xaxes(title_text=xtitle, row=1, col=1)
        fig.update_yaxes(title_text="score (batch mean)", row=1, col=1)
    else:
        fig.update_layout(xaxis_title=xtitle, yaxis_title="score (batch mean)")
    fig.update_xaxes(tick0=0, dtick=max(1, int(np.ceil(len(frame) / 12))))  # whole mini-batches, about a dozen ticks
    fig.update_layout(title=f"Order of the pass, {WORD} {t}", height=ORDER_HEIGHT)
    common.chart(fig, views.pass_order_caption(order, rho, n_pass, WORD, t, bs, noise), key="sub_order",
                 present_height=ORDER_PRESENTED)


def _gallery(chosen, t, count: int = GALLERY, width: int = 96):
    thumbs = common.dataset_of(run).set_index("sample_id")["thumbnail"] if len(chosen) else None
    top = chosen.sort_values("score", ascending=False).head(count)
    names = run.meta.get("class_names") or []

    def cname(v):
        return names[int(v)] if 0 <= int(v) < len(names) else str(int(v))
    n_noisy = int(top["noisy"].sum()) if "noisy" in top else 0
    st.markdown(f"**{WORD.capitalize()} {t}: the {len(top)} highest-scoring of {common.plural(len(chosen), 'selected sample')}** — "
                f"caption: sample id · given label; a :red[**red frame**] marks a flipped label "
                f"(given→true), {n_noisy} of {len(top)} here")
    images, caps = [], []
    for _, row in top.iterrows():
        sid, noisy = int(row["sample_id"]), bool(row.get("noisy", False))
        cap = f"#{sid} · {cname(row['label'])}"
        if noisy and pd.notna(row.get("clean_label")):
            cap = f"#{sid} · {cname(row['label'])}→{cname(row['clean_label'])}"
        images.append(common.framed_thumbnail(thumbs.loc[sid], noisy, side=max(96, width)))
        caps.append(cap)
    if images:
        st.image(images, caption=caps, width=width)
    if common.presenting():
        return
    if run.meta.get("dataset_kind") == "signal":
        st.caption("Each tile is a 1-D signal drawn as a line plot, on one vertical scale shared by all "
                   "samples; the grey line marks zero.")
    st.caption(f"What the curriculum trains on this {WORD}, highest score first; the summary above says, from "
               f"the data, how its flipped-label share, classes and losses compare with all samples. Move the "
               f"slider to later {WORD}s to see k_t grow towards N.")
    pick = st.selectbox("Open a sample from this gallery", [None] + [int(s) for s in top["sample_id"]], key="sub_open",
                        format_func=lambda s: "—" if s is None else f"sample {s}")
    if pick is not None:
        st.session_state["picked_sample"] = int(pick)
        st.page_link("app_pages/sample.py", label=f"Open sample {pick} →", icon="🔎")


def _table(sel, t):
    """Tabular data: the selected samples as rows of the user's file, with their feature values."""
    table = views.selection_table(sel, run.meta.get("class_names"), rows=TABLE_ROWS)
    k = int(sel["selected"].astype(bool).sum())
    shown = f"the {len(table)} highest-scoring of" if len(table) < k else "all"
    st.markdown(f"**{WORD.capitalize()} {t}: {shown} {common.plural(k, 'selected sample')}**, highest score first")
    st.dataframe(table, hide_index=True)
    if "source_row" in table:
        st.caption("This dataset has no thumbnails or low-dimensional coordinates to draw, so its selected "
                   "samples are listed as rows. source_row is the sample's row in your file (0-based, the "
                   "header not counted: line source_row + 2 of a CSV; the index in x of an .npz); the "
                   "feature columns are the values as read, before standardisation.")
    else:
        st.caption("This dataset has no thumbnails or low-dimensional coordinates to draw, so its selected "
                   "samples are listed as rows. This run was made before docl recorded each sample's row in "
                   "its file: train it again to see source_row and the feature values here.")


def _points(sel, t):
    # every (selected, flipped label) group drawn, the small ones whole (a 100k run has thousands of each)
    shown = views.downsample_rows(sel, MAX_POINTS, groups=sel["selected"].astype(int) * 2 + sel["noisy"].astype(int))
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
    fig.update_layout(title=f"{WORD.capitalize()} {t}: selected samples in input space"
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
    fig.update_layout(title=f"{WORD.capitalize()} {t}: the fitted curve and the selected x's", xaxis_title="x",
                      yaxis_title="y", height=440)
    common.chart(fig, "For DoCL, look for selected x's (circles) where the curve is still wrong and still moving.",
                 key="sub_curve")


def _rewind(ids):
    """Play pressed at the last round starts again from the first."""
    st.session_state["_sub_play_fresh"] = True
    if st.session_state.get("sub_play") and ids and common.current_round(ids) >= ids[-1]:
        st.session_state["current_round"] = ids[0]


if st.session_state.pop("_sub_play_stop", False):
    st.session_state["sub_play"] = False
st.toggle(f"▶ Play {WORD}s", key="sub_play", on_change=_rewind, args=(run.round_ids,),
          help=f"Step through the {WORD}s once a second; stops at the last one.")
playing = st.session_state.get("sub_play", False)
if playing or run.is_live:
    def area():
        with common.error_box():
            round_view()
        if st.session_state.get("_sub_play_stop") and playing:
            st.rerun()  # the whole page, so the Play toggle is drawn switched off
    st.fragment(run_every=1.0 if playing else common.LIVE_REFRESH_S)(area)()
else:
    with common.error_box():
        round_view()


def across():
    rounds = ctx.rounds()
    regression = run.task == "regression"
    st.subheader("Noisy targets picked over time" if regression else "Noisy labels picked over time")
    noisy = views.noisy_selected_over_time(rounds)
    ds = common.dataset_light_of(run)
    train = ds[ds["split"] == "train"] if "split" in ds else ds
    base = 100 * float(train["noisy"].mean()) if "noisy" in train and len(train) else 0.0
    if len(noisy) and noisy["noisy selected"].sum() > 0:
        t_now = common.current_round(sorted(noisy["round"].unique().tolist()), run.is_live)
        now = noisy[noisy["round"] == t_now].set_index("curriculum")["noisy share (%)"]
        noisy["curriculum"] = noisy["curriculum"].map(common.legend_label)
        order = [common.legend_label(c) for c in ctx.curricula if common.legend_label(c) in set(noisy["curriculum"])]
        fig = common.lines(noisy, "round", "noisy share (%)", "curriculum", order=order,
                           colors={common.legend_label(c): common.curriculum_color(c) for c in rounds["curriculum"].unique()},
                           title=("Share of S_t with corrupted targets" if regression else
                                  "Share of S_t with flipped labels") + " (mean over seeds)")
        fig.add_hline(y=base, line=dict(color="#555555", width=1.5, dash="dot"))
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name=f"base rate {base:.1f} %",  # legend entry
                                 line=dict(color="#555555", width=1.5, dash="dot")))
        fig.update_layout(yaxis_title=f"noisy {'targets' if regression else 'labels'} in S_t (%)", height=360,
                          xaxis_title=WORD)
        # "above" only beyond two binomial standard errors of a uniform draw of k_t samples
        k_now = rounds[rounds["round"] == t_now].groupby("curriculum")["k"].mean()
        margin = {c: 200 * np.sqrt(base / 100 * (1 - base / 100) / max(float(k_now.get(c, 1)), 1)) for c in now.index}
        above = [common.legend_label(c) for c in common.sort_curricula(now.index) if now[c] > base + margin[c]]
        below = [common.legend_label(c) for c in common.sort_curricula(now.index) if now[c] < base - margin[c]]
        common.chart(fig, f"Lower is better: training on noisy labels teaches the network wrong answers. The dotted "
                     f"line is the base rate ({base:.1f} % of the training set); a uniform draw sits on it. In {WORD} "
                     f"{t_now}: " + ", ".join(f"{common.legend_label(c)} {now[c]:.1f} %" for c in
                                               common.sort_curricula(now.index))
                     + (f"; clearly above the base rate: {', '.join(above)}" if above else "")
                     + (f"; clearly below: {', '.join(below)}" if below else "")
                     + " (clearly = beyond two standard errors of a uniform draw of k_t samples).", key="sub_noisy")
        common.download(noisy, f"{ctx.exp_dir.name}-noisy-selected", key="dl_noisy")
    else:
        st.markdown("No noisy-label samples were selected (or the dataset has no label noise).")

    if common.presenting():
        return
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
    t = common.round_slider(list(range(common_rounds + 1)), "sub_jac_round", WORD, live,
                            label=f"{WORD.capitalize()} to compare")
    masks = {common.curriculum_label(c): common.run_samples(str(r.dir), common.run_stamp(r.dir), t,
                                                             ("sample_id", "selected"))["selected"].to_numpy(bool)
             for c, r in sorted(one.items(), key=lambda kv: common.sort_curricula(one).index(kv[0]))}
    J = views.jaccard_matrix(masks)
    fig = go.Figure(go.Heatmap(z=J.to_numpy(), x=list(J.columns), y=list(J.index), zmin=0, zmax=1, colorscale="Blues",
                               text=J.to_numpy(), texttemplate="%{text:.2f}", colorbar=dict(title=dict(text="Jaccard<br>|A∩B| / |A∪B|", side="top"))))
    fig.update_yaxes(autorange="reversed", scaleanchor="x")
    fig.update_layout(height=420, title=f"Jaccard overlap of S_t at {WORD} {t} (seed {min(r.seed for r in one.values())})")
    pairs = [(J.iloc[a, b], J.index[a], J.columns[b]) for a in range(len(J)) for b in range(a + 1, len(J))]
    hi, lo = max(pairs), min(pairs)
    said = (f"{hi[1]} and {hi[2]} overlap by {hi[0]:.2f}" if len(pairs) == 1 else
            f"{hi[1]} and {hi[2]} overlap most ({hi[0]:.2f}) and {lo[1]} and {lo[2]} least ({lo[0]:.2f})")
    common.chart(fig, f"1 = identical subsets. In this {WORD}, {said}. Late {WORD}s all look alike because k_t "
                 f"nears N: compare early {WORD}s.", key="sub_jac", secondary=True)
    common.download(J.reset_index(names="curriculum"), f"{ctx.exp_dir.name}-jaccard-r{t}", key="dl_jac")


with common.error_box():
    across()
