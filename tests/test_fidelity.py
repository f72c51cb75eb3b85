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
                    log_every="epoch", log_estimators=["exact"], schedule=PaperSchedule(epochs=4))
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
    # at the interval's start: frame t+1's byproduct against frame t's exact; the exact against itself
    for t in (0, 1, 2):
        now, nxt = (pd.read_parquet(run / "samples" / f"round={u:04d}.parquet").set_index("sample_id").sort_index()
                    for u in (t, t + 1))
        assert f["spearman_start"].iloc[t] == pytest.approx(
            brute_spearman(nxt["score_paper"], now["score_exact"]), nan_ok=True)
        assert f["exact_persistence"].iloc[t] == pytest.approx(
            brute_spearman(now["score_exact"], nxt["score_exact"]), nan_ok=True)
    assert f[["spearman_start", "exact_persistence"]].iloc[:3].notna().all().all()
    assert f[["spearman_start", "exact_persistence"]].iloc[-1].isna().all()  # no frame after the last
    both = fidelity.experiment_fidelity(tmp_path)
    assert set(both["run"]) == {"docl-s0"} and (both["protocol"] == "paper").all()


# ----------------------------------------------------------------------------- timing: frame t+1 against frame t

E0 = np.array([1.0, 2, 3, 4, 5, 6])
E1 = np.array([2.0, 1, 3, 4, 5, 6])      # against E0: Σd² = 2, ρ = 1 − 6·2 / (6·35) = 33/35
P3 = np.array([3.0, 1, 2, 6, 4, 5])      # against E0: d = (2, −1, −1, 2, −1, −1), Σd² = 12, ρ = 23/35
NAN = np.full(6, np.nan)


def write_run(run_dir, frames, protocol="paper"):
    """A hand-written run folder: frames[t] = (byproduct, exact) per round, 6 samples, the first 3 selected.
    Odd rounds store their rows in reversed sample order, so the frames must be matched by sample_id."""
    from docl_core.store import RunWriter
    w = RunWriter(run_dir)
    w.start({"name": run_dir.name, "config": {"curriculum": "docl", "seed": 0, "protocol": protocol,
                                               "paper": {"momentum": 0.9, "lr_max": 0.1}}})
    for t, (byp, exact) in enumerate(frames):
        df = pd.DataFrame({"sample_id": np.arange(6), "score_paper": byp, "score_exact": exact,
                           "selected": np.arange(6) < 3})
        if t % 2:
            df = df.iloc[::-1].reset_index(drop=True)
        w.write_round(t, {"epoch": t, "episode": t // 2, "lr": 0.1 / (t + 1)}, df)
    w.finish()
    return run_dir


def test_fidelity_at_the_interval_start_on_a_hand_written_run(tmp_path):
    run = write_run(tmp_path / "docl-s0", [
        (-E0, E0),          # 0: same frame ρ = −1; frame 1's byproduct is 10·E0 (ρ_start = +1), E1 (33/35)
        (10 * E0, E1),      # 1: same frame 33/35; frame 2's byproduct is −E1 (ρ_start = −1), no exact there
        (-E1, NAN),         # 2: byproduct only (exact not logged): no row
        (P3, E0),           # 3: same frame 23/35; frame 4: byproduct E0 (+1), exact −E0 (persistence −1)
        (E0, -E0),          # 4: the last round: no frame t+1
    ])
    f = fidelity.round_fidelity(run).set_index("round")
    assert list(f.index) == [0, 1, 3, 4]          # rows: rounds with both scores, as before
    expect = {0: (-1.0, 1.0, 33 / 35), 1: (33 / 35, -1.0, np.nan), 3: (23 / 35, 1.0, -1.0), 4: (-1.0, np.nan, np.nan)}
    for t, (same, start, persistence) in expect.items():
        assert f.loc[t, "spearman_all"] == pytest.approx(same)
        assert f.loc[t, "spearman_start"] == pytest.approx(start, nan_ok=True), t
        assert f.loc[t, "exact_persistence"] == pytest.approx(persistence, nan_ok=True), t
    # the hand-chosen values are what brute force says
    assert brute_spearman(E0, E1) == pytest.approx(33 / 35) and brute_spearman(P3, E0) == pytest.approx(23 / 35)
    both = fidelity.experiment_fidelity(tmp_path)
    assert {"spearman_start", "exact_persistence"} <= set(both.columns) and len(both) == 4


def test_fidelity_at_the_interval_start_is_nan_where_the_next_frame_lacks_the_column(tmp_path):
    half = E0.copy()
    half[2] = np.nan
    run = write_run(tmp_path / "docl-s0", [
        (E0, E0),           # 0: frame 1's byproduct has a NaN: ρ_start NaN; its exact is fine: persistence +1
        (half, E0),         # 1: the byproduct has a NaN: no row (as before)
        (E0, E0),           # 2: frame 3's exact has a NaN: persistence NaN; its byproduct reversed: ρ_start −1
        (-E0, half),        # 3: no row
    ])
    f = fidelity.round_fidelity(run).set_index("round")
    assert list(f.index) == [0, 2]
    assert np.isnan(f.loc[0, "spearman_start"]) and f.loc[0, "exact_persistence"] == pytest.approx(1.0)
    assert f.loc[2, "spearman_start"] == pytest.approx(-1.0) and np.isnan(f.loc[2, "exact_persistence"])
    # a frame t+1 that lacks the column altogether, or a missing frame file, reads as NaN too
    (run / "samples" / "round=0003.parquet").unlink()
    f = fidelity.round_fidelity(run).set_index("round")
    assert np.isnan(f.loc[2, "spearman_start"]) and np.isnan(f.loc[2, "exact_persistence"])
    pd.DataFrame({"sample_id": np.arange(6), "score_exact": E0, "selected": np.arange(6) < 3}).to_parquet(
        run / "samples" / "round=0003.parquet")
    f = fidelity.round_fidelity(run).set_index("round")
    assert np.isnan(f.loc[2, "spearman_start"]) and f.loc[2, "exact_persistence"] == pytest.approx(1.0)


def _fid(start, persistence, same=0.3):
    """A dedicated-runs frame as study.tables.fidelity_frames gives it: one group, 4 epochs."""
    n = 4
    return pd.DataFrame({"setting": "s", "group": "Blobs (steps): default", "variant": "default",
                         "protocol": "steps", "run": "docl-default-s0", "curriculum": "docl", "seed": 0,
                         "round": range(n), "epoch": range(n), "lr": 0.1, "momentum": 0.9,
                         "spearman_all": same, "spearman_selected": same, "overlap_topk": 0.5, "jaccard_topk": 0.3,
                         "spearman_start": start, "exact_persistence": persistence})


@pytest.mark.parametrize("start,persistence,words", [
    (-0.42, 0.81, "the estimator, not the score's own drift, is at fault"),
    (0.77, 0.81, "about as good as a one-epoch-old score can be"),
    (0.31, 0.81, "0.50 below the exact score's own persistence"),
    (0.02, 0.04, "barely survives one epoch"),
    (0.73, -0.75, "reverses over one epoch"),
])
def test_report_reads_the_timing_from_the_medians(start, persistence, words):
    from docl_core.study.report import fidelity_section
    text = "\n".join(fidelity_section(None, pd.DataFrame(), _fid(start, persistence), {}, lambda *a, **k: None))
    row = next(ln for ln in text.splitlines() if ln.startswith("| Blobs (steps): default |"))
    assert f"| {start:+.2f} | {persistence:+.2f} |" in row
    assert words in text and f"ρ = {start:+.2f}" in text
    others = {"the estimator, not the score's own drift, is at fault", "about as good as a one-epoch-old score",
              "below the exact score's own persistence", "barely survives one epoch", "reverses over one epoch"}
    assert not any(w in text for w in others if w not in words)
