"""How it works: docs/design.md §1 in short, and a live example computed on the spot on the CPU."""
import time

import plotly.express as px
import streamlit as st

from app import common
from docl_core import views

st.title("How it works")
st.caption("What every number on the other pages means, and a small network you can recompute here.")


@st.cache_data(max_entries=32, show_spinner="Training the tiny network and computing scores…")
def example(n, steps, seed):
    t0 = time.perf_counter()
    out = views.tiny_example(n=n, steps=steps, seed=seed)
    out["seconds"] = time.perf_counter() - t0
    return out


def the_math():
    st.markdown("A training set $D=\\{(x_i,y_i)\\}_{i=1}^N$, a network $f(x;\\theta)\\in\\mathbb{R}^C$ and a "
                "per-sample loss $\\ell_i$.")
    c1, c2 = st.columns(2)
    with c1:
        st.markdown("**Residual** — how wrong, in output space")
        st.latex(r"r_i=\frac{\partial \ell_i}{\partial f(x_i)}\quad(\text{cross-entropy: } \mathrm{softmax}(f)-\mathrm{onehot}(y))")
        st.markdown("**Tangent kernel** — how a step on sample $j$ moves the output on sample $i$")
        st.latex(r"J_i=\frac{\partial f(x_i)}{\partial\theta},\qquad H_{ij}=J_iJ_j^\top\in\mathbb{R}^{C\times C}")
    with c2:
        st.markdown("**Output speed** under gradient flow on the mean loss")
        st.latex(r"v_i=\frac1N\sum_j H_{ij}\,r_j,\qquad \frac{\partial f(x_i)}{\partial t}=-v_i")
        st.markdown("**DoCL score** — how fast the total loss falls thanks to sample $i$")
        st.latex(r"a_i=r_i\cdot v_i")
    st.markdown("**The identity that makes it cheap.** With $g_i=\\nabla_\\theta\\ell_i=J_i^\\top r_i$ and the mean "
                "gradient $\\bar g=\\frac1N\\sum_j g_j$:")
    st.latex(r"r_i^\top H_{ij} r_j=g_i\cdot g_j\quad\Rightarrow\quad a_i=g_i\cdot\bar g,\qquad v_i=J_i\,\bar g")
    st.markdown("So exact scores for all $N$ samples cost one backward pass (for $\\bar g$) and one forward-mode "
                "pass along $\\bar g$ — no per-sample gradients, no $N\\times N$ kernel. On a probe set of $m$ samples "
                "the score splits into contributions")
    st.latex(r"c_{ij}=\frac{r_i^\top H_{ij} r_j}{m},\qquad \sum_j c_{ij}=a_i\ \ (\text{when the probe set is all of }D)")
    st.markdown("A sample scores high when its residual is large **and** its gradient agrees with many others that "
                "have large residuals: the *learning frontier*. Selecting by this exact score selects that frontier "
                "(`--estimator exact`; the frontier-digits demo shows it). The authors' recipe selects by their own "
                "**byproduct** score instead, read off the outputs training already computes, and it need not agree: "
                "Scores gives, on each run that logged both, how far the two rank samples alike (on the clean-digits "
                "demo they rank them *against* each other). Under that recipe each subset is also trained in the "
                "order its weighted draw returns it, which the order-digits demo and docs/RESULTS-order.md take "
                "apart. SPL picks small losses, MCL large ones.")


def live():
    if not common.presenting():  # presenting, the tab says it
        st.subheader("Live: a tiny network, computed now")
    c1, c2, c3 = st.columns(3)
    n = c1.slider("Points", 20, 60, 40, step=10, key="hw_n")
    steps = c2.slider("Training steps before scoring", 0, 200, 60, step=20, key="hw_steps")
    seed = c3.number_input("Seed", 0, 999, 0, key="hw_seed")


    ex = example(int(n), int(steps), int(seed))
    pts = ex["points"]
    m = st.columns(3)
    m[0].metric("max |a_i − Σ_j c_ij|", f"{ex['max_abs_diff']:.1e}", help="The identity above, checked in float32.")
    m[1].metric("largest |a_i|", f"{ex['max_abs_score']:.3g}")
    m[2].metric("computed in", f"{ex['seconds']:.2f} s", help="Training, docl_scores (exact), kernel_block (full) and "
                "score_contributions on the CPU, cached afterwards. The first call in a fresh server also pays "
                "torch.func's one-time set-up.")
    align = views.alignment_summary(pts)
    said = (f"A large residual and a fast output are not enough: the score is their product times the cosine "
            f"between them. Here the highest score has cos = {align['top_cos']:.2f}, while the points with the "
            f"largest ‖r‖‖v‖ have cos between {align['big_cos_min']:.2f} and {align['big_cos_max']:.2f}.")
    if common.presenting():  # one 1920×1080 screen: the takeaway above the two charts, not under their captions
        common.takeaway(said)
    left, right = st.columns(2)  # side by side when presenting too: both in one screen
    with left:
        fig = px.scatter(pts, x="x0", y="x1", color="score", symbol=pts["label"].astype(str),
                         color_continuous_scale="RdBu_r", color_continuous_midpoint=0.0,
                         hover_data=["sample_id", "loss", "residual_norm", "speed_norm"],
                         title=f"{n} points in 2-D, MLP 2→16→3, coloured by a_i", labels={"symbol": "class"})
        fig.update_traces(marker=dict(size=11, line=dict(width=0.5, color="#333")))
        fig.update_yaxes(scaleanchor="x", scaleratio=1)
        fig.update_layout(height=430, xaxis_title="x₀", yaxis_title="x₁",
                          legend=dict(orientation="h", yanchor="top", y=-0.18, x=0, title="class"))
        common.chart(fig, "Red points drive the loss down fastest right now, blue ones are pushed up by training on the "
                     f"others (a_i from {pts['score'].min():.3g} to {pts['score'].max():.3g}; "
                     f"{int((pts['score'] < 0).sum())} of {len(pts)} below zero).", key="hw_points",
                     present_height=440)
    with right:
        top = float(pts["rv_norm"].max()) * 1.05
        fig = px.scatter(pts, x="rv_norm", y="score", color="cos_rv", color_continuous_scale="RdBu_r",
                         range_color=(-1, 1), hover_data=["sample_id", "residual_norm", "speed_norm"],
                         title="Score against ‖r‖·‖v‖: the angle decides", labels={"cos_rv": "cos(r, v)"})
        fig.add_shape(type="line", x0=0, y0=0, x1=top, y1=top, line=dict(color="#999", dash="dash"))
        fig.add_shape(type="line", x0=0, y0=0, x1=top, y1=-top, line=dict(color="#999", dash="dash"))
        fig.update_traces(marker=dict(size=11, line=dict(width=0.5, color="#333")))
        lo_a, hi_a = float(pts["score"].min()), float(pts["score"].max())
        pad = 0.25 * (hi_a - lo_a) + 1e-12  # the data's range: the bounds ±‖r‖‖v‖ run off the top and bottom
        fig.update_layout(height=430, xaxis_title="‖r_i‖ · ‖v_i‖ (residual norm × output speed norm)",
                          yaxis_title="a_i = r_i · v_i", yaxis_range=[min(lo_a, 0) - pad, hi_a + pad],
                          xaxis_range=[0, top], coloraxis_colorbar=dict(title=dict(text="cos", side="top")))
        common.chart(fig, "a_i = ‖r_i‖ ‖v_i‖ cos(r_i, v_i): every point lies between the dashed lines a = ±‖r‖‖v‖, "
                     "on the upper one when the output moves exactly along the residual (red), on the lower one when "
                     "it moves against it (blue). " + align["sentence"], key="hw_rv", present_height=440)
    if not common.presenting():
        common.takeaway(said)
    fig = px.scatter(pts, x="score", y="sum_j_c_ij", title="The identity, numerically: a_i against Σ_j c_ij",
                     hover_data=["sample_id"])
    lo, hi = float(pts["score"].min()), float(pts["score"].max())
    fig.add_shape(type="line", x0=lo, y0=lo, x1=hi, y1=hi, line=dict(color="#999", dash="dash"))
    fig.update_traces(marker=dict(size=9, color=common.curriculum_color("docl")))
    fig.update_layout(height=380, xaxis_title="a_i from docl_scores (exact, via jvp)",
                      yaxis_title="Σ_j c_ij from explicit kernel blocks")
    common.chart(fig, f"The largest gap between a point and the diagonal is {ex['max_abs_diff']:.1e} (float32 rounding): "
                 "the cheap forward-mode score equals the sum of kernel contributions.", key="hw_identity", secondary=True)
    if not common.presenting():
        st.dataframe(pts.round(5), hide_index=True, height=260)
    common.download(pts, "how-it-works-example", key="dl_hw")


if common.presenting():  # one screen at a time: the live charts open, the math one click away
    live_tab, math_tab = st.tabs(["Live: a tiny network, computed now", "The math"])
    with live_tab:
        live()
    with math_tab:
        the_math()
else:
    the_math()
    st.divider()
    live()
