"""Tangent kernel: the probe-set kernel block, its spectrum over rounds, and a score split into
contributions c_ij = r_iᵀ H_ij r_j / m from the other probe samples."""
import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from app import common
from docl_core import views

ctx = common.context()
st.title("Tangent kernel")
st.caption("H_ij = J_i J_jᵀ says how much a step on sample j moves the output on sample i. On a fixed probe "
           "set we log K_ij = tr H_ij and each probe sample's score split over the others.")
run = common.need_focus(ctx)
WORD = common.round_word(run)  # "epoch" under the paper protocol


def class_blocks(kv: dict, cname, t: int) -> str:
    """What the heatmap shows, in numbers: the mean gradient similarity of two probe samples of one class
    against two of different classes, and the pair of classes whose block is brightest."""
    S, lab = np.asarray(kv["similarity"], dtype=float), np.asarray(kv["labels"])
    m = len(lab)
    same = (lab[:, None] == lab[None, :]) & ~np.eye(m, dtype=bool)
    across = lab[:, None] != lab[None, :]
    if not same.any() or not across.any():
        return (f"In {WORD} {t} the probe set holds {'one class' if not across.any() else 'one sample per class'}: "
                "no class blocks to compare.")
    within, between = float(np.nanmean(S[same])), float(np.nanmean(S[across]))
    classes = np.unique(lab)
    blocks = {(a, b): float(np.nanmean(S[np.ix_(lab == a, lab == b)])) for i, a in enumerate(classes)
              for b in classes[i + 1:]}
    (a, b), top = max(blocks.items(), key=lambda kv_: kv_[1])
    verdict = ("the class blocks stand out: training on a sample moves its own class most" if within > between
               else "no class structure yet: a step on one sample moves other classes as much as its own")
    return (f"In {WORD} {t}, two probe samples of one class have mean gradient similarity {within:.2f}, of two "
            f"classes {between:.2f}: {verdict}. The most alike pair of classes (a step on one moves the other's "
            f"outputs most) is {cname(a)} and {cname(b)} ({top:.2f}).")


def body():
    run.refresh()
    stamp = common.run_stamp(run.dir)
    kr = run.kernel_rounds()
    if not kr:
        st.info("This run logged no kernel blocks (probe_size 0). Rerun with `--probe-size 64` to see this page.")
        return
    t = common.round_slider(kr, "k_round", WORD, run.is_live, label=f"Kernel {WORD}", select=True,
                            help=f"The {WORD} is shared with the other pages (the nearest logged kernel {WORD}).")
    K = common.run_kernel(str(run.dir), stamp, t)
    kv = views.kernel_view(K)
    names = run.meta.get("class_names") or []
    m = len(kv["probe_ids"])

    noisy_ids = set()
    ds = common.dataset_light_of(run)
    if "noisy" in ds:
        noisy_ids = set(ds.loc[ds["noisy"].astype(bool), "sample_id"].astype(int))

    def cname(v):
        return names[int(v)] if 0 <= int(v) < len(names) else str(int(v))

    left, right = st.columns([3, 2], gap="medium")  # presenting, the right holds the takeaway (no eigenvalues)
    with left:
        scale = st.radio("Colour", ["similarity", "trace"], horizontal=True, key="k_scale",
                         format_func={"similarity": "gradient similarity K_ij/√(K_ii K_jj)",
                                      "trace": "raw kernel tr H_ij"}.get,
                         help="Similarity divides out each sample's gradient size, so the class blocks show; "
                              "the raw kernel also shows which samples have large gradients.")
        text = [[f"i = #{a} (class {la})<br>j = #{b} (class {lb})" for b, lb in zip(kv["probe_ids"], kv["labels"])]
                for a, la in zip(kv["probe_ids"], kv["labels"])]
        Z = kv[scale]
        off = Z[~np.eye(m, dtype=bool)] if m > 1 else Z.ravel()
        lo, hi = (np.percentile(off, 1), np.percentile(off, 99)) if off.size else (None, None)
        fig = go.Figure(go.Heatmap(z=Z, colorscale="Viridis", text=text, zmin=lo, zmax=hi,
                                   hovertemplate="%{text}<br>" + ("similarity" if scale == "similarity" else "K_ij")
                                   + " = %{z:.4g}<extra></extra>",
                                   colorbar=dict(title="cosine" if scale == "similarity" else "tr H_ij")))
        edge = dict(color="white", width=1.5)
        fig.update_layout(shapes=[dict(type="line", xref="x", yref="paper", x0=b - 0.5, x1=b - 0.5, y0=0, y1=1, line=edge)
                                  for b in kv["bounds"]] +
                                 [dict(type="line", xref="paper", yref="y", x0=0, x1=1, y0=b - 0.5, y1=b - 0.5, line=edge)
                                  for b in kv["bounds"]])
        ticks = [int(np.mean(np.flatnonzero(kv["labels"] == c))) for c in np.unique(kv["labels"])]
        labs = [names[int(c)] if 0 <= int(c) < len(names) else str(c) for c in np.unique(kv["labels"])]
        fig.update_xaxes(tickvals=ticks, ticktext=labs, title="probe sample j (ordered by class)")
        fig.update_yaxes(tickvals=ticks, ticktext=labs, title="probe sample i", autorange="reversed")
        fig.update_layout(title=f"Trace kernel K on {common.plural(m, 'probe sample')}, {WORD} {t}"
                          + (" (normalised)" if scale == "similarity" else ""), height=560)
        # both axes shrink to the square's domain: the y labels stay beside it, not at the chart's far left
        fig.update_xaxes(showgrid=False, constrain="domain")
        fig.update_yaxes(showgrid=False, scaleanchor="x", constrain="domain")
        common.chart(fig, "Bright blocks on the diagonal: samples of one class push each other's outputs together; "
                     "bright off-diagonal blocks are classes whose gradients still point alike. Colours span the 1st–99th "
                     "percentile of the off-diagonal entries (given labels; white lines separate classes).",
                     key="k_heat", present_height=620)
        if not common.presenting():
            common.takeaway(class_blocks(kv, cname, t))
    with right:
        if common.presenting():  # beside the heatmap, on the first screen
            common.takeaway(class_blocks(kv, cname, t))
        ev = views.eigenvalue_frame(common.run_eigenvalues(str(run.dir), stamp), top=8)
        ev["rank"] = ev["rank"].astype(str)
        fig = common.lines(ev, "round", "eigenvalue", "rank", title=f"Top eigenvalues of K over {WORD}s",
                           palette=px.colors.sequential.Viridis)
        fig.update_layout(yaxis_title="eigenvalue of K (log scale)", legend_title="rank", height=560, xaxis_title=WORD)
        fig.update_yaxes(type="log", dtick=1, exponentformat="power")  # label powers of ten only
        common.chart(fig, f"A few large eigenvalues = a few directions dominate learning; their change over {WORD}s "
                     "shows how the kernel evolves away from its starting value.", key="k_eig", secondary=True)
    d1, d2 = st.columns(2)
    with d1:
        common.download(pd.DataFrame(kv["trace"], index=kv["probe_ids"], columns=kv["probe_ids"]).reset_index(
            names="probe sample"), f"{run.dir.name}-trace-kernel-r{t}", label="Download K (CSV)", key="dl_trace")
    with d2:
        common.download(ev, f"{run.dir.name}-kernel-eigenvalues", label="Download eigenvalues (CSV)", key="dl_eig")

    st.subheader("Why does a sample score high? Its score, split over the probe set")
    order_by_score = np.argsort(-np.asarray(K["kernel_score"])) if "kernel_score" in K else np.arange(m)
    options = [int(np.asarray(K["probe_ids"])[i]) for i in order_by_score]
    picked = st.session_state.get("picked_sample")
    if st.session_state.get("k_sample") not in options:
        st.session_state["k_sample"] = picked if picked in options else views.representative_probe(K, noisy_ids)
    probe_label = dict(zip(np.asarray(K["probe_ids"]).astype(int), np.asarray(K.get("labels", np.zeros(m, int)))))
    sid = st.selectbox("Probe sample (highest kernel score first)", options, key="k_sample",
                       format_func=lambda s: f"label {cname(probe_label[s])}" + (" ⚠ flipped" if s in noisy_ids else "")
                       + f" · sample {s}")
    pos = int(np.flatnonzero(np.asarray(K["probe_ids"]) == sid)[0])
    contrib = views.contributions_for(K, pos)
    score_i = float(np.asarray(K["kernel_score"])[pos]) if "kernel_score" in K else float(contrib["contribution"].sum())
    res_i = float(np.linalg.norm(np.asarray(K["residual"])[pos])) if "residual" in K else float("nan")
    c = st.columns(4)
    c[0].metric("kernel score a_i = Σ_j c_ij", f"{score_i:.4g}")
    c[1].metric("its residual ‖r_i‖", f"{res_i:.3f}")
    c[2].metric("positive share of Σ|c_ij|", f"{100 * contrib['contribution'].clip(lower=0).sum() / max(contrib['contribution'].abs().sum(), 1e-30):.0f} %")
    same = contrib[contrib["label"] == contrib.loc[contrib["sample_id"] == sid, "label"].iloc[0]]
    c[3].metric("Σ c_ij from its own class", f"{same['contribution'].sum():.4g}",
                help="The part of a_i that comes from probe samples with the same given label (itself included); "
                     "the rest comes from other classes and can have either sign.")
    top = contrib.head(12).copy()
    top["who"] = [("itself" if s == sid else f"#{s}") + f" · label {cname(l)}" + (" ⚠" if int(s) in noisy_ids else "")
                  for s, l in zip(top["sample_id"], top["label"])]
    top["sign"] = np.where(top["contribution"] >= 0, "pushes score up", "pulls score down")
    fig = go.Figure()
    for sign, color in (("pushes score up", "#D55E00"), ("pulls score down", "#0072B2")):
        d = top[top["sign"] == sign]
        fig.add_trace(go.Bar(x=d["contribution"], y=d["who"], orientation="h", name=sign, marker_color=color,
                             customdata=d[["residual_norm", "kernel_sim"]],
                             hovertemplate="%{y}<br>c_ij = %{x:.4g}<br>‖r_j‖ = %{customdata[0]:.3f}<br>"
                                           "kernel similarity %{customdata[1]:.3f}<extra></extra>"))
    fig.update_layout(title=f"Top contributors c_ij to sample {sid}'s score ({WORD} {t})", barmode="relative")
    fig.update_yaxes(categoryorder="array", categoryarray=list(top["who"]))
    # every bar keeps its label (plotly drops category ticks that do not fit: in Presentation mode's
    # 24 px it dropped half, "itself" among them), with room for each row at the font in use
    fig.update_yaxes(autorange="reversed", title=None, tickmode="array", tickvals=list(top["who"]))
    row_px = 2 * common.PRESENTATION_FONT["tick"] if common.presenting() else 26
    fig.update_layout(xaxis_title="c_ij = r_iᵀ H_ij r_j / m", height=max(420, 140 + row_px * len(top)))
    cii = float(contrib.loc[contrib["sample_id"] == sid, "contribution"].iloc[0])  # the self term
    others = contrib[contrib["sample_id"] != sid]["contribution"]
    up, down = float(others.clip(lower=0).sum()), float(others.clip(upper=0).sum())
    common.chart(fig, "The seed's reading: a sample scores high when its own residual is large (the self term "
                 "c_ii = r_iᵀ H_ii r_i / m ≥ 0) and its gradient agrees with others that have large residuals "
                 "(orange bars). ⚠ = a flipped label.", key="k_contrib")
    common.takeaway(f"Sample {sid}'s score a_i = {score_i:.4g} ({WORD} {t}) splits into its self term c_ii = "
                    f"{cii:.4g}, {up:.4g} pushed up by {common.plural(int((others > 0).sum()), 'probe sample')} whose gradients agree "
                    f"with it, and {down:.4g} pulled down by {int((others < 0).sum())} that disagree"
                    + (f"; from its own class: {same['contribution'].sum():.4g}." if len(same) else ".")
                    + (" It has a flipped label: its large residual makes the self term "
                       f"{100 * cii / max(abs(score_i), 1e-30):.0f} % of |a_i|." if sid in noisy_ids else ""))
    common.download(contrib, f"{run.dir.name}-contributions-{sid}-r{t}", key="dl_contrib")
    if st.button(f"Open sample {sid} →", key="k_open"):
        st.session_state["picked_sample"] = sid
        st.switch_page("app_pages/sample.py")


common.live_area(body, run.is_live)
