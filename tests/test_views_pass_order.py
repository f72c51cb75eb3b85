"""views.pass_order / pass_order_rho (Selected subsets' "Order of the pass" chart) against plain-Python
oracles on fresh random inputs, and the cases with nothing to show (no pass_position column, no pass)."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from docl_core import views  # noqa: E402
from test_atlas import _plain_spearman  # noqa: E402  (average ranks by plain loops)


def _random_selection(rng: np.random.Generator, n: int, k: int, ties: bool = False, nan_scores: int = 0):
    """A selection_frame-like frame of n samples: k of them in the pass at shuffled positions 0..k−1,
    the rest at −1; scores (rounded to a few values when ties), noisy flags, rows in random order."""
    ids = rng.permutation(n)
    pos = np.full(n, -1, dtype=np.int32)
    pos[ids[:k]] = rng.permutation(k).astype(np.int32)
    score = rng.normal(size=n)
    if ties:
        score = np.round(score * 2) / 2  # a handful of distinct values: many ties
    if nan_scores:
        score[rng.choice(n, nan_scores, replace=False)] = np.nan
    return pd.DataFrame({"sample_id": np.arange(n), "selected": pos >= 0, "pass_position": pos, "score": score,
                         "noisy": rng.random(n) < 0.2, "loss": rng.random(n)})


def _quantile(values: list[float], q: float) -> float:
    """Linear-interpolation quantile (numpy's default, pandas' too), by hand."""
    v = sorted(values)
    if not v:
        return math.nan
    h = (len(v) - 1) * q
    lo = math.floor(h)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (h - lo) * (v[hi] - v[lo])


def _oracle_pass_order(df: pd.DataFrame, batch_size: int) -> list[dict]:
    batches: dict[int, list[tuple[int, float, bool]]] = {}
    for p, s, noisy in zip(df["pass_position"].tolist(), df["score"].tolist(), df["noisy"].tolist()):
        if p < 0:
            continue
        batches.setdefault(p // batch_size, []).append((p, s, noisy))
    rows = []
    for b in sorted(batches):
        items = batches[b]
        scores = [s for _, s, _ in items if not math.isnan(s)]
        rows.append({"batch": b, "first_position": min(p for p, _, _ in items), "n": len(items),
                     "score_mean": sum(scores) / len(scores) if scores else math.nan,
                     "score_q25": _quantile(scores, 0.25), "score_q75": _quantile(scores, 0.75),
                     "noisy_share": sum(1 for _, _, z in items if z) / len(items)})
    return rows


def _oracle_spearman(df: pd.DataFrame) -> float:
    pairs = [(p, s) for p, s in zip(df["pass_position"].tolist(), df["score"].tolist())
             if p >= 0 and not math.isnan(s)]
    if len(pairs) < 3 or len({s for _, s in pairs}) < 2:
        return math.nan
    return _plain_spearman([float(p) for p, _ in pairs], [s for _, s in pairs])


@pytest.mark.parametrize("seed", range(6))
def test_pass_order_matches_a_loop_oracle(seed):
    rng = np.random.default_rng(1000 + seed)
    n = int(rng.integers(40, 400))
    k = int(rng.integers(3, n))
    batch_size = int(rng.choice([7, 16, 33, 64]))
    if k % batch_size == 0:
        k -= 1  # the last mini-batch is short
    df = _random_selection(rng, n, k, ties=seed % 2 == 1, nan_scores=3 if seed == 5 else 0)
    got = views.pass_order(df, batch_size)
    want = _oracle_pass_order(df, batch_size)
    assert list(got.columns) == list(views.PASS_ORDER_COLUMNS)
    assert len(got) == len(want) == math.ceil(k / batch_size)
    assert got["n"].sum() == k and got["n"].iloc[-1] == k - (len(got) - 1) * batch_size
    for (_, g), w in zip(got.iterrows(), want):
        for c in views.PASS_ORDER_COLUMNS:
            assert g[c] == pytest.approx(w[c], rel=1e-12, abs=1e-12, nan_ok=True), (seed, c, g["batch"])
    assert got["batch"].dtype == np.int64 and got["first_position"].dtype == np.int64
    assert (got["first_position"] == got["batch"] * batch_size).all()  # positions 0..k−1 fill every batch


@pytest.mark.parametrize("seed", range(6))
def test_pass_order_rho_matches_a_hand_written_spearman(seed):
    rng = np.random.default_rng(2000 + seed)
    n = int(rng.integers(20, 300))
    df = _random_selection(rng, n, int(rng.integers(3, n)), ties=seed % 2 == 0, nan_scores=2 if seed == 3 else 0)
    assert views.pass_order_rho(df) == pytest.approx(_oracle_spearman(df), rel=1e-12, abs=1e-12)


def test_rho_sign_follows_the_order():
    """High score first (the draw with a strong score) gives ρ = −1; reversed +1; ties use average ranks."""
    k = 50
    df = pd.DataFrame({"pass_position": np.arange(k), "score": np.linspace(1, 0, k), "noisy": False})
    assert views.pass_order_rho(df) == pytest.approx(-1.0)
    assert views.pass_order_rho(df.assign(pass_position=df["pass_position"][::-1].to_numpy())) == pytest.approx(1.0)
    tied = pd.DataFrame({"pass_position": [0, 1, 2, 3], "score": [2.0, 2.0, 1.0, 1.0]})
    assert views.pass_order_rho(tied) == pytest.approx(_oracle_spearman(tied.assign(noisy=False)))
    assert views.pass_order_rho(tied) == pytest.approx(-math.sqrt(0.8))


def test_no_column_no_pass_and_too_few_samples():
    rng = np.random.default_rng(7)
    df = _random_selection(rng, 30, 10)
    old = df.drop(columns=["pass_position"])  # an older run, or the steps protocol
    for frame in (old, df.assign(pass_position=-1), df.iloc[:0]):
        out = views.pass_order(frame, 8)
        assert out.empty and list(out.columns) == list(views.PASS_ORDER_COLUMNS)
        assert math.isnan(views.pass_order_rho(frame))
    two = df.assign(pass_position=[0, 1] + [-1] * 28)
    assert len(views.pass_order(two, 8)) == 1 and math.isnan(views.pass_order_rho(two))
    flat = df.assign(score=1.0)  # all scores equal: no rank correlation
    assert math.isnan(views.pass_order_rho(flat))
    assert views.pass_order(flat, 4)["score_mean"].eq(1.0).all()
    assert views.pass_order(old.drop(columns=["noisy"]).assign(pass_position=df["pass_position"]),
                            4)["noisy_share"].isna().all()
    with pytest.raises(ValueError):
        views.pass_order(df, 0)


def test_order_name_and_caption():
    assert views.pass_order_name({"config": {"protocol": "steps"}}) is None
    assert views.pass_order_name({"config": {"protocol": "paper", "order": "reversed"}}) == "reversed"
    assert views.pass_order_name({"config": {"protocol": "paper", "curriculum": "docl", "order": "draw"}}) == "draw"
    # a run made before the order was recorded shuffled every pass, whatever its curriculum
    assert views.pass_order_name({"config": {"protocol": "paper", "curriculum": "docl"}}) == "shuffle"
    assert views.pass_order_name({"config": {"protocol": "paper", "curriculum": "sgd"}}) == "shuffle"
    for order, words in (("draw", "trained in the selection's own order"),
                         ("shuffle", "shuffled: a fresh random order"), ("reversed", "reversed: the draw reversed")):
        text = views.pass_order_caption(order, -0.5, 100, "epoch", 3, 64, "flipped labels")
        assert words in text and "ρ = -0.50" in text and "clearly come earlier" in text and "flipped labels" in text
    assert "no clear trend" in views.pass_order_caption("draw", 0.1, 100)  # 2/√99 ≈ 0.20
    assert "undefined" in views.pass_order_caption("shuffle", math.nan, 2)


def test_selection_frame_reads_the_column_of_a_real_run(tmp_path):
    """A short paper-protocol run: each subset epoch's positions are 0..k−1 over exactly the selected samples."""
    from docl_core.config import RunConfig
    from docl_core.protocol import PaperSchedule
    from docl_core.trainer import train_run
    from docl_core.store import RunReader
    cfg = RunConfig(dataset="blobs", curriculum="docl", protocol="paper", label_noise=0.2, probe_size=0,
                    device="cpu", log_estimators=[], schedule=PaperSchedule(epochs=3))
    train_run(cfg, tmp_path / "docl-s0")
    run = RunReader(tmp_path / "docl-s0")
    bs = run.meta["config"]["batch_size"]
    for t in run.round_ids[1:]:
        sel = views.selection_frame(run, t, run.dataset())
        inpass = sel["pass_position"] >= 0
        assert (inpass == sel["selected"]).all()
        assert sorted(sel.loc[inpass, "pass_position"]) == list(range(int(inpass.sum())))
        frame = views.pass_order(sel, bs)
        assert len(frame) == math.ceil(inpass.sum() / bs) and frame["n"].sum() == inpass.sum()
        assert frame["noisy_share"].between(0, 1).all()
        assert -1 <= views.pass_order_rho(sel) <= 1
