"""The byproduct-vs-exact fidelity functions against brute force, on random data with ties, and
on a real run that logs both scores every epoch."""
import numpy as np
import pandas as pd
import pytest

from docl_core import fidelity
from docl_core.config import RunConfig
from docl_core.protocol import PaperSchedule
from docl_core.trainer import train_run


def brute_ranks(x):
    """rank_i = #{j: x_j < x_i} + (#{j: x_j = x_i} + 1) / 2: the mean rank of i's tie group."""
    x = np.asarray(x, float)
    return np.array([(x < v).sum() + ((x == v).sum() + 1) / 2 for v in x])


def brute_spearman(a, b):
    ra, rb = brute_ranks(a), brute_ranks(b)
    return float(np.corrcoef(ra, rb)[0, 1])


@pytest.mark.parametrize("seed", range(5))
def test_spearman_matches_brute_force_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 200))
    a = rng.integers(0, 6, n).astype(float)          # many ties
    b = a + rng.integers(-3, 4, n)                   # correlated, ties too
    np.testing.assert_allclose(fidelity.average_ranks(a), brute_ranks(a))
    assert fidelity.spearman(a, b) == pytest.approx(brute_spearman(a, b), abs=1e-12)
    c = rng.normal(size=n)                           # no ties
    assert fidelity.spearman(c, -c) == pytest.approx(-1.0)
    assert fidelity.spearman(c, c ** 3) == pytest.approx(1.0)


def test_spearman_of_a_constant_or_tiny_vector_is_nan():
    assert np.isnan(fidelity.spearman(np.zeros(10), np.arange(10.0)))
    assert np.isnan(fidelity.spearman([1.0], [2.0]))
    assert fidelity.spearman([1.0, np.nan, 2.0, 3.0], [1.0, 5.0, 2.0, 3.0]) == pytest.approx(1.0)


@pytest.mark.parametrize("seed", range(5))
def test_topk_overlap_matches_sets(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(10, 100))
    a, b = rng.integers(0, 5, n).astype(float), rng.normal(size=n)
    k = int(rng.integers(1, n))
    top_a = sorted(range(n), key=lambda i: (-a[i], i))[:k]      # ties: lower index first
    top_b = sorted(range(n), key=lambda i: (-b[i], i))[:k]
    inter = len(set(top_a) & set(top_b))
    ov, jac = fidelity.topk_overlap(a, b, k)
    assert ov == pytest.approx(inter / k) and jac == pytest.approx(inter / len(set(top_a) | set(top_b)))
    assert fidelity.topk_overlap(a, a, k) == (1.0, 1.0)
    assert all(np.isnan(fidelity.topk_overlap(a, b, 0)))


def test_round_fidelity_on_a_run_that_logs_both_every_epoch(tmp_path):
    cfg = RunConfig(dataset="blobs", curriculum="docl", protocol="paper", seed=0, probe_size=0, device="cpu",
                    log_every="epoch", log_estimators=["exact"], paper=PaperSchedule(epochs=4))
    run = train_run(cfg, tmp_path / "docl-s0")
    f = fidelity.round_fidelity(run)
    assert list(f["round"]) == [0, 1, 2, 3]  # every epoch has both scores
    assert f["spearman_all"].dropna().between(-1, 1).all() and f["overlap_topk"].dropna().between(0, 1).all()
    t = int(f["round"].iloc[-1])
    df = pd.read_parquet(run / "samples" / f"round={t:04d}.parquet")
    assert f["spearman_all"].iloc[-1] == pytest.approx(brute_spearman(df["score_paper"], df["score_exact"]), nan_ok=True)
    sel = df["selected"].to_numpy(bool)
    assert f["k"].iloc[-1] == sel.sum()
    assert f["spearman_selected"].iloc[-1] == pytest.approx(
        brute_spearman(df["score_paper"][sel], df["score_exact"][sel]), nan_ok=True)
    both = fidelity.experiment_fidelity(tmp_path)
    assert set(both["run"]) == {"docl-s0"} and (both["protocol"] == "paper").all()
