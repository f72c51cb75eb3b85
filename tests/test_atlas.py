"""The score atlas: per-sample scores of the data-pruning literature against plain oracles, the
`score` curriculum against brute force, and the atlas computations and page on real and synthetic runs."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn as nn

from docl_core import DynamicsTracker, RunReader
from docl_core.outputs import output_scores
from docl_core.scorers import PresentationLog
from docl_core.tracker import per_sample_grad_norms


def _data(n=60, d=5, c=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g)
    y = torch.randint(0, c, (n,), generator=g)
    return X, y


def _model(d=5, c=3, seed=0, bn=True):
    torch.manual_seed(seed)
    layers = [nn.Linear(d, 16)] + ([nn.BatchNorm1d(16)] if bn else []) + [nn.Tanh(), nn.Linear(16, c)]
    return nn.Sequential(*layers)


# ----------------------------------------------------------------------------- EL2N, margin, entropy


def test_el2n_margin_entropy_against_hand_computation():
    g = torch.Generator().manual_seed(11)
    out = torch.randn(40, 4, generator=g, dtype=torch.float64) * 3
    y = torch.randint(0, 4, (40,), generator=g)
    s = output_scores(out, y, "classification")
    for i in range(40):
        f = out[i].tolist()
        z = max(f)
        e = [math.exp(v - z) for v in f]
        p = [v / sum(e) for v in e]
        onehot = [1.0 if c == int(y[i]) else 0.0 for c in range(4)]
        el2n = math.sqrt(sum((p[c] - onehot[c]) ** 2 for c in range(4)))
        margin = f[int(y[i])] - max(f[c] for c in range(4) if c != int(y[i]))
        entropy = -sum(q * math.log(q) for q in p)
        assert abs(float(s["el2n"][i]) - el2n) < 1e-12
        assert abs(float(s["margin"][i]) - margin) < 1e-12
        assert abs(float(s["entropy"][i]) - entropy) < 1e-12


def test_regression_scores():
    out, y = torch.randn(7, 2, dtype=torch.float64), torch.randn(7, 2, dtype=torch.float64)
    s = output_scores(out, y, "regression")
    torch.testing.assert_close(s["el2n"], (out - y).norm(dim=1))
    assert torch.isnan(s["margin"]).all() and torch.isnan(s["entropy"]).all()


# ----------------------------------------------------------------------------- forgetting and AUM


def _plain_forgetting_and_aum(batches, y, n):
    """Forgetting counts and AUM by a plain loop over the recorded presentations; a sample presented
    but never predicted right counts its presentations plus the most presentations of any sample
    (Toneva et al.: never learned ranks above every learned sample)."""
    last, count, forgets, margins = [None] * n, [0] * n, [0] * n, [[] for _ in range(n)]
    ever = [False] * n
    for ids, out in batches:
        for row, i in enumerate(ids.tolist()):
            f = out[row].tolist()
            lab = int(y[i])
            pred = max(range(len(f)), key=lambda c: (f[c], -c))  # argmax, first on ties
            correct = pred == lab
            if last[i] is True and not correct:
                forgets[i] += 1
            last[i] = correct
            ever[i] = ever[i] or correct
            count[i] += 1
            margins[i].append(f[lab] - max(f[c] for c in range(len(f)) if c != lab))
    aum = [sum(m) / len(m) if m else float("nan") for m in margins]
    most = max(count)
    forgets = [count[i] + most if count[i] and not ever[i] else forgets[i] for i in range(n)]
    return forgets, aum, count


def test_forgetting_and_aum_against_a_plain_loop():
    n, c = 30, 4
    g = torch.Generator().manual_seed(3)
    y = torch.randint(0, c, (n,), generator=g)
    log = PresentationLog(y, "classification")
    batches = []
    for _ in range(25):  # random batches of distinct ids; outputs lean to the label so both states occur
        ids = torch.randperm(n, generator=g)[:int(torch.randint(1, 12, (1,), generator=g))]
        out = torch.randn(len(ids), c, generator=g)
        out[torch.arange(len(ids)), y[ids]] += 0.8
        batches.append((ids, out))
        log.record(ids, out)
    forgets, aum, count = _plain_forgetting_and_aum(batches, y, n)
    s = log.scores()
    assert s["forgetting"].tolist() == forgets
    assert s["presentations"].tolist() == count
    np.testing.assert_allclose(s["aum"].numpy(), np.array(aum), rtol=1e-6, atol=1e-6, equal_nan=True)
    assert sum(forgets) > 0  # the sequence exercised forgetting at all
    never = [i for i in range(n) if count[i] and forgets[i] == count[i] + max(count)]
    learned = [i for i in range(n) if count[i] and i not in never]
    assert never and learned  # both kinds occurred, and every never-learned sample ranks above every learned one
    assert min(s["forgetting"][never].tolist()) > max(s["forgetting"][learned].tolist())


def test_a_checkpoint_from_before_learned_still_resumes():
    y = torch.tensor([0, 1, 2])
    a = PresentationLog(y, "classification")
    a.record(torch.tensor([0, 1, 2]), torch.eye(3)[[0, 0, 2]])  # 0 and 2 right, 1 wrong
    old = {k: v for k, v in a.state_dict().items() if k != "learned"}
    b = PresentationLog(y, "classification")
    b.load_state_dict(old)
    assert torch.equal(b.scores()["forgetting"], a.scores()["forgetting"])
    assert b.scores()["forgetting"].tolist() == [0, 2, 0]  # sample 1: 1 presentation + at most 1


def test_presentations_survive_a_checkpoint():
    y = torch.tensor([0, 1, 2, 1])
    a = PresentationLog(y, "classification")
    a.record(torch.tensor([0, 1]), torch.eye(3)[[0, 1]])
    b = PresentationLog(y, "classification")
    b.load_state_dict(a.state_dict())
    for k in ("forgetting", "presentations"):
        assert torch.equal(a.scores()[k], b.scores()[k])


# ----------------------------------------------------------------------------- GraNd


@pytest.mark.parametrize("bn", [True, False])
def test_grand_against_per_sample_autograd_float64(bn):
    X, y = _data()
    model = _model(bn=bn).double()
    X = X.double()
    with torch.no_grad():  # a trained-looking BatchNorm: non-trivial running statistics
        for m in model.modules():
            if isinstance(m, nn.BatchNorm1d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    model.train()
    got = per_sample_grad_norms(model, X, y, "classification", batch_size=7, memory_budget_bytes=10 ** 9)
    assert model.training  # mode restored
    model.eval()
    want = []
    for i in range(len(X)):
        loss = nn.functional.cross_entropy(model(X[i:i + 1]), y[i:i + 1])
        grads = torch.autograd.grad(loss, [p for p in model.parameters()])
        want.append(torch.sqrt(sum((g ** 2).sum() for g in grads)))
    torch.testing.assert_close(got, torch.stack(want), rtol=1e-10, atol=1e-12)
    assert all(p.grad is None for p in model.parameters())


# ----------------------------------------------------------------------------- the tracker's frames


def _loop(model, X, y, tracker, epochs=3, seed=1):
    opt = torch.optim.SGD(model.parameters(), lr=0.2)
    torch.manual_seed(seed)
    recorded = []
    for _ in range(epochs):
        for ids in torch.randperm(len(X)).split(16):
            out = model(X[ids])
            loss = nn.functional.cross_entropy(out, y[ids])
            opt.zero_grad()
            loss.backward()
            opt.step()
            recorded.append((ids.clone(), out.detach().clone()))
            tracker.on_batch(ids, out, lr=0.2)
        tracker.end_round()
    return recorded


def test_tracker_frames_carry_the_atlas_columns(tmp_path):
    X, y = _data(n=64)
    model = _model()
    tracker = DynamicsTracker(tmp_path / "e" / "r", model, X, y, probe_size=0, log_grad_norms=True)
    recorded = _loop(model, X, y, tracker)
    tracker.close()
    r = RunReader(tmp_path / "e" / "r")
    frames = [r.samples(t) for t in r.round_ids]
    s = frames[-1]
    for col in ("el2n", "margin", "entropy", "forgetting", "presentations", "aum", "grand",
                "confidence", "variability", "correctness"):
        assert col in s.columns, col
    # EL2N is the residual norm under cross-entropy
    np.testing.assert_allclose(s["el2n"], s["residual_norm"], rtol=1e-5, atol=1e-6)
    # forgetting and AUM from the outputs on_batch received
    forgets, aum, count = _plain_forgetting_and_aum(recorded, y, len(X))
    assert s["forgetting"].tolist() == forgets and s["presentations"].tolist() == count
    np.testing.assert_allclose(s["aum"], aum, rtol=1e-5, atol=1e-5)
    # the data map over the rounds so far, as the Data map page computes it over all rounds
    P = np.stack([f["p_true"].to_numpy() for f in frames]).astype(np.float64)
    C = np.stack([f["correct"].to_numpy() for f in frames]).astype(np.float64)
    np.testing.assert_allclose(s["confidence"], P.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(s["variability"], P.std(0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(s["correctness"], C.mean(0), atol=1e-6)
    np.testing.assert_allclose(frames[0]["variability"], 0, atol=1e-6)
    # GraNd at the final weights
    want = per_sample_grad_norms(model, X, y).numpy()
    np.testing.assert_allclose(s["grand"], want, rtol=1e-4, atol=1e-6)


def test_grand_is_opt_in(tmp_path):
    X, y = _data(n=32)
    model = _model()
    tracker = DynamicsTracker(tmp_path / "e" / "r", model, X, y, probe_size=0)
    _loop(model, X, y, tracker, epochs=1)
    tracker.close()
    s = RunReader(tmp_path / "e" / "r").samples(0)
    assert "grand" not in s.columns and "el2n" in s.columns


# ----------------------------------------------------------------------------- the score curriculum


def _round_state(n, k, score, paper=False, pool=None, seed=0):
    from docl_core.curricula import RoundState
    g = torch.Generator().manual_seed(seed)
    return RoundState(t=0, k=k, lam=0.0, temperature=10.0 if paper else 1.0, pool_factor=1e6,
                      loss=torch.rand(n, generator=g), score=score, features=None,
                      generator=torch.Generator().manual_seed(seed), pool=pool)


@pytest.mark.parametrize("paper", [False, True])
@pytest.mark.parametrize("name,prefer", [("el2n", "hard"), ("el2n", "easy"), ("margin", "hard"),
                                         ("aum", "easy"), ("exact", "hard"), ("forgetting", "easy")])
def test_score_curriculum_picks_against_brute_force(name, prefer, paper):
    """With the pool the whole set and no diversity, the machinery keeps the k most preferred samples."""
    from docl_core.config import SAMPLE_SCORES
    from docl_core.curricula import make_curriculum
    n, k = 23, 7
    g = torch.Generator().manual_seed(hash((name, prefer, paper)) % 1000)
    values = torch.randn(n, generator=g, dtype=torch.float64)
    values[3] = float("nan")  # not measured yet: explored first
    cur = make_curriculum("score", diversity="none", protocol="paper" if paper else "steps", score=name,
                          prefer=prefer)
    picked = cur.select(_round_state(n, k, values, paper=paper, pool=n)).indices.tolist()
    hard_high = SAMPLE_SCORES.get(name, "high") == "high"
    want_high = hard_high == (prefer == "hard")
    finite = [i for i in range(n) if not math.isnan(float(values[i]))]
    ranked = sorted(finite, key=lambda i: float(values[i]), reverse=want_high)
    assert sorted(picked) == sorted([3] + ranked[:k - 1])


@pytest.mark.parametrize("prefer", ["hard", "easy"])
def test_score_curriculum_is_docls_machinery(prefer):
    """Driven by an estimator, `score` draws exactly what DoCL draws with ±a (pool, prune, generator)."""
    from docl_core.curricula import make_curriculum
    n, k = 40, 8
    a = torch.randn(n, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    for paper in (False, True):
        protocol = "paper" if paper else "steps"
        docl = make_curriculum("docl", diversity="none", protocol=protocol).select(
            _round_state(n, k, a if prefer == "hard" else -a, paper=paper, pool=20))
        score = make_curriculum("score", diversity="none", protocol=protocol, score="exact", prefer=prefer).select(
            _round_state(n, k, a, paper=paper, pool=20))
        assert docl.indices.tolist() == score.indices.tolist()


def test_trainer_selects_by_the_logged_score(tmp_path):
    """End to end: under the steps protocol, with the pool the whole set and no diversity, each round
    selects the k lowest EL2N of the state its samples frame logged."""
    from docl_core.config import RunConfig, Schedule
    from docl_core.trainer import train_run
    cfg = RunConfig(dataset="moons", curriculum="score", score="el2n", prefer="easy", diversity="none",
                    rounds=2, probe_size=0, device="cpu",
                    schedule=Schedule(pool_factor=1000.0, k_start=0.3, warmup_epochs=1))
    r = RunReader(train_run(cfg, tmp_path / "score-s0"))
    assert r.meta["config"]["score"] == "el2n" and r.meta["config"]["prefer"] == "easy"
    for t in r.round_ids:
        s = r.samples(t)
        k = int(s["selected"].sum())
        assert k == cfg.schedule.k(t, len(s))
        lowest = set(s.sort_values("el2n", kind="stable")["sample_id"].head(k))
        assert set(s.loc[s["selected"], "sample_id"]) == lowest


# ----------------------------------------------------------------------------- docl_core.atlas

import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from docl_core import atlas  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "assets" / "demo"


def _plain_spearman(a, b):
    """Pearson correlation of average ranks, by plain loops."""
    def ranks(v):
        order = sorted(range(len(v)), key=lambda i: v[i])
        r, i = [0.0] * len(v), 0
        while i < len(order):
            j = i
            while j + 1 < len(order) and v[order[j + 1]] == v[order[i]]:
                j += 1
            for q in range(i, j + 1):
                r[order[q]] = (i + j) / 2 + 1
            i = j + 1
        return r
    ra, rb = ranks(a), ranks(b)
    ma, mb = sum(ra) / len(ra), sum(rb) / len(rb)
    num = sum((x - ma) * (y - mb) for x, y in zip(ra, rb))
    den = math.sqrt(sum((x - ma) ** 2 for x in ra) * sum((y - mb) ** 2 for y in rb))
    return num / den


def test_spearman_and_overlap_against_plain_loops():
    rng = np.random.default_rng()
    n, k = 37, 9
    a = rng.normal(size=n)
    b = np.round(a + rng.normal(size=n), 1)  # ties
    b[4] = np.nan
    ok = np.isfinite(b)
    assert abs(atlas.spearman(a, b) - _plain_spearman(list(a[ok]), list(b[ok]))) < 1e-12
    sel = np.zeros(n, dtype=bool)
    sel[rng.choice(n, k, replace=False)] = True
    frame = pd.DataFrame({"el2n": a, "margin": b, "selected": sel})
    ov = atlas.selection_overlap(frame, ["el2n", "margin"]).set_index("score")
    top_a = sorted(range(n), key=lambda i: (-a[i], i))[:k]
    bottom_b = sorted([i for i in range(n) if ok[i]], key=lambda i: (b[i], i))[:k]
    assert ov.loc["el2n", "top"] == sum(sel[i] for i in top_a) / k
    assert ov.loc["margin", "bottom"] == sum(sel[i] for i in bottom_b) / k
    assert ov.loc["margin", "hard_end"] == ov.loc["margin", "bottom"]  # small margin is hard
    assert ov.loc["el2n", "chance"] == k / n
    with pytest.raises(atlas.AtlasError, match="no sample was selected"):
        atlas.selection_overlap(frame.assign(selected=False), ["el2n"])
    with pytest.raises(atlas.AtlasError, match="every sample was selected"):
        atlas.selection_overlap(frame.assign(selected=True), ["el2n"])
    with pytest.raises(atlas.AtlasError, match="no scores"):
        atlas.rank_correlations(frame, [])


def test_driving_column():
    c = lambda **kw: {"config": kw}  # noqa: E731
    assert atlas.driving_column(c(curriculum="docl", estimator="paper")) == "score_paper"
    assert atlas.driving_column(c(curriculum="mcl", estimator="exact")) == "loss"
    assert atlas.driving_column(c(curriculum="score", estimator="exact", score="aum")) == "aum"
    assert atlas.driving_column(c(curriculum="score", estimator="exact", score=None)) == "score_exact"
    assert atlas.driving_column(c(curriculum="random", estimator="exact")) is None
    assert atlas.driving_column({}) is None


@pytest.fixture(scope="module")
def atlas_exp(tmp_path_factory) -> Path:
    """A tiny real experiment with the atlas's columns: docl and score (AUM, easy first) on moons."""
    from docl_core.config import RunConfig, Schedule
    from docl_core.trainer import train_run
    exp = tmp_path_factory.mktemp("atlas") / "moons"
    exact = {"score": "aum", "prefer": "easy", "diversity": "none", "schedule": Schedule(pool_factor=1000.0)}
    for cur, kw in (("docl", {}), ("score", exact)):  # one experiment each: the app splits other settings
        train_run(RunConfig(dataset="moons", curriculum=cur, rounds=3, probe_size=0, device="cpu",
                            log_grad_norms=True, **kw), exp / cur / f"{cur}-s0")
    return exp


def test_selection_resemblance_on_a_run_with_every_column(atlas_exp):
    res = atlas.selection_resemblance(atlas_exp / "score" / "score-s0")
    assert list(res["round"]) == [0, 1, 2] and (res["driving"] == "aum").all()
    assert "forgetting" in RunReader(atlas_exp / "score" / "score-s0").samples(2).columns  # constant early: no ranking
    for c in ("el2n", "margin", "entropy", "grand", "confidence", "score_exact", "loss"):
        assert f"rho_{c}" in res and f"overlap_{c}" in res, c
    assert (res["resembles"] != "aum").all()  # its own score left out
    # easy first by AUM with the pool the whole set and no diversity: S is AUM's top k
    assert (res["overlap_aum"] == 1.0).all()
    assert (res["rho_margin"] > 0.5).all()
    with_own = atlas.selection_resemblance(atlas_exp / "score" / "score-s0", exclude_driving=False)
    assert (with_own["overlap"] >= res["overlap"]).all()
    assert atlas.most_resembled(res) in set(res["resembles"])


def test_old_runs_get_el2n_and_the_data_map_derived():
    """The bundled demo predates the atlas's columns: EL2N is its residual norm, the data map comes
    from p_true and correct over the rounds so far, as the Data map page computes it."""
    from docl_core import views
    run = DEMO / "noisy-digits" / "docl-s0"
    r = RunReader(run)
    if "el2n" in r.samples(0).columns:
        pytest.skip("the demo was regenerated with the atlas's columns")
    t = 4
    f = atlas.round_scores(r, t)
    np.testing.assert_allclose(f["el2n"], f["residual_norm"])
    P = np.stack([r.samples(s, ["p_true"])["p_true"].to_numpy() for s in r.round_ids if s <= t])
    C = np.stack([r.samples(s, ["correct"])["correct"].to_numpy() for s in r.round_ids if s <= t])
    dm = views.data_map(P, C)
    np.testing.assert_allclose(f["confidence"], dm["confidence"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(f["variability"], dm["variability"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(f["correctness"], dm["correctness"], atol=1e-9)
    assert f["noisy"].sum() > 0
    res = atlas.selection_resemblance(run)
    assert len(res) and (res["driving"] == "score_paper").all() and res["resembles"].notna().all()
    with pytest.raises(atlas.AtlasError, match="no committed round 999"):
        atlas.round_scores(r, 999)


def test_sgd_has_no_selection_to_resemble():
    run = DEMO / "noisy-digits" / "sgd-s0"
    assert len(atlas.selection_resemblance(run)) == 0


# ----------------------------------------------------------------------------- the page


def _open(root, monkeypatch, run=None, presentation=False):
    from streamlit.testing.v1 import AppTest
    monkeypatch.setenv("DOCL_RUNS", str(root))
    at = AppTest.from_file(str(REPO / "app" / "main.py"), default_timeout=120)
    if presentation:
        at.session_state["presentation"] = True
    at.run()
    at.switch_page("app_pages/atlas.py")
    at.run()
    if run:
        at.sidebar.selectbox(key="focus_run").set_value(run).run()
    return at


def _ok(at):
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def _titles(at):
    import json
    out = []
    for el in at.get("plotly_chart"):
        title = json.loads(el.proto.spec)["layout"].get("title", {})
        out.append(title.get("text", "") if isinstance(title, dict) else str(title))
    return out


def test_page_on_a_run_with_every_column(atlas_exp, monkeypatch):
    at = _open(atlas_exp / "score", monkeypatch)
    _ok(at)
    assert at.title[0].value == "Score atlas"
    titles = _titles(at)
    assert any(t.startswith("Spearman rank correlation between scores") for t in titles)
    assert any(t.startswith("Where the") for t in titles)
    assert "Which score the selection resembles, round by round" in titles
    at.selectbox(key="at_x").set_value("grand").run()
    at.selectbox(key="at_y").set_value("entropy").run()
    _ok(at)
    assert any(t.startswith("entropy against GraNd") for t in _titles(at))
    assert any("AUM" in m.value for m in at.markdown)


def test_page_on_the_demo_and_in_presentation_mode(monkeypatch):
    at = _open(DEMO / "noisy-digits", monkeypatch, run="docl-s0", presentation=True)
    _ok(at)
    assert any("S overlaps most with" in i.value for i in at.info)  # the takeaway as a callout
    assert any("Leaving its own score aside" in i.value for i in at.info)
    assert "Rank correlation" not in " ".join(_titles(at))  # the secondary chart is left out
    at.slider(key="at_round").set_value(0).run()  # the warm start: every sample trained
    _ok(at)
    assert any("every sample was selected" in i.value for i in at.info)


def test_page_on_synthetic_runs(monkeypatch):
    sys.path.insert(0, str(REPO / "tests"))
    from synthetic_runs import SyntheticSpec, write_experiment
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        exp = write_experiment(Path(d) / "images", SyntheticSpec(n=120, rounds=4, seeds=(0,)))
        at = _open(exp, monkeypatch, run="docl-s0")
        _ok(at)
        assert any(t.startswith("Spearman") for t in _titles(at))
        curve = write_experiment(Path(d) / "curve", SyntheticSpec(
            n=60, rounds=3, kind="curve1d", seeds=(0,), curricula=("random", "docl"), running=False, failed=False))
        at = _open(curve, monkeypatch, run="random-s0")
        _ok(at)  # regression, no driving score: a short message or charts, never a traceback


def test_score_runs_are_curricula_named_by_score_and_direction(tmp_path, monkeypatch):
    """Two `score` runs with different scores or directions get their own default folders and are
    two curricula, in one setting with DoCL: compared side by side, never pooled, never split off."""
    from docl_core.cli import main
    from docl_core.names import curriculum_display, run_curriculum
    from docl_core.store import ExperimentReader
    base = ["run", "--dataset", "moons", "--rounds", "2", "--probe-size", "0", "--device", "cpu", "--no-progress",
            "--out", str(tmp_path)]
    assert main([*base, "--curriculum", "score", "--score", "el2n", "--prefer", "hard"]) == 0
    assert main([*base, "--curriculum", "score", "--score", "forgetting", "--prefer", "easy"]) == 0
    assert main([*base, "--curriculum", "docl"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == [
        "docl-s0", "score-el2n-hard-s0", "score-forgetting-easy-s0"]
    exp = ExperimentReader(tmp_path)
    assert sorted(r.curriculum for r in exp.runs) == ["docl", "score-el2n-hard", "score-forgetting-easy"]
    assert curriculum_display("score-el2n-hard") == "EL2N, hard first"
    assert curriculum_display("score-forgetting-easy") == "forgetting, easy first"
    assert run_curriculum({"curriculum": "score", "score": "aum", "prefer": "easy"}) == "score-aum-easy"
    assert run_curriculum({"curriculum": "spl"}) == "spl"
    from streamlit.testing.v1 import AppTest
    monkeypatch.setenv("DOCL_RUNS", str(tmp_path))
    at = AppTest.from_file(str(REPO / "app" / "main.py"), default_timeout=120)
    at.run()
    at.run()  # the full Compare page (its first view draws the key chart only)
    assert not at.exception and not at.error, [e.value for e in at.exception] + [e.value for e in at.error]
    assert not [s for s in at.sidebar.selectbox if s.label == "Setting"]  # one setting, not three
    assert set(at.sidebar.multiselect(key="f_curricula").value) == {"docl", "score-el2n-hard", "score-forgetting-easy"}
    import json
    legend = {tr.get("name") for el in at.get("plotly_chart") for tr in json.loads(el.proto.spec)["data"]}
    assert {"EL2N, hard first", "forgetting, easy first", "DoCL"} <= legend
