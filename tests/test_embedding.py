"""The 2-D map of penultimate features (docl_core.embedding) and the Embedding page.

The PCA basis is checked against scikit-learn's PCA on fresh random features; the tracker and the
built-in trainer (both protocols, a regression run too) write embedding/round=NNNN.parquet on one
fixed basis; a model without `features` writes none and says why; the page (AppTest) draws a
scatter whose colours follow the chosen column on synthetic, trained, own-loop and paper runs,
and a friendly note where a run has no map (the bundled demo before regeneration, older runs).
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from streamlit.testing.v1 import AppTest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from docl_core.config import RunConfig, Schedule  # noqa: E402
from docl_core import views  # noqa: E402
from docl_core.embedding import PCABasis, embedding_matrices, tsne_map, variance_shares  # noqa: E402
from docl_core.protocol import PaperSchedule  # noqa: E402
from docl_core.store import RunReader, RunWriter  # noqa: E402
from docl_core.tracker import DynamicsTracker  # noqa: E402
from docl_core.trainer import train_run  # noqa: E402
from synthetic_runs import SyntheticSpec, write_experiment  # noqa: E402

MAIN = str(REPO / "app" / "main.py")


class FeatureNet(nn.Module):
    """A user's model that offers penultimate features."""

    def __init__(self, d_in=10, width=32, classes=3):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(d_in, width), nn.ReLU())
        self.head = nn.Linear(width, classes)

    def features(self, x):
        return self.body(x)  # (B, width)

    def forward(self, x):
        return self.head(self.features(x))  # (B, C)


def own_loop(run_dir: Path, model: nn.Module, epochs: int = 3, resume: bool = False, **kw) -> DynamicsTracker:
    g = torch.Generator().manual_seed(0)
    X = torch.randn(240, 10, generator=g)
    y = (X[:, 0] > 0).long() + (X[:, 1] > 0).long()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    tracker = DynamicsTracker(run_dir, model, X, y, probe_size=6, eval_sets={"test": (X, y)}, resume=resume, **kw)
    for _ in range(epochs):
        for ids in torch.randperm(len(X), generator=g).split(60):
            out = model(X[ids])
            loss = nn.functional.cross_entropy(out, y[ids])
            opt.zero_grad()
            loss.backward()
            opt.step()
            tracker.on_batch(ids, out, lr=0.1)
        tracker.end_round()
    return tracker


# ----------------------------------------------------------------------------- the basis


def test_pca_basis_matches_sklearn_on_random_features():
    from sklearn.decomposition import PCA
    g = torch.Generator().manual_seed(1)
    F = torch.randn(500, 12, generator=g) @ torch.randn(12, 12, generator=g) + 3.0  # correlated, offset
    basis = PCABasis.fit(F, fit_round=0, k=5)
    ref = PCA(n_components=5).fit(F.double().numpy())
    np.testing.assert_allclose(basis.explained_variance_ratio, ref.explained_variance_ratio_, rtol=1e-6)
    # the same directions up to sign
    np.testing.assert_allclose(np.abs(basis.components @ ref.components_.T), np.eye(5), atol=1e-6)
    coords, on_map = basis.project(F)
    Z = ref.transform(F.double().numpy())
    np.testing.assert_allclose(np.abs(coords), np.abs(Z), rtol=1e-4, atol=1e-4)
    assert on_map == pytest.approx(ref.explained_variance_ratio_[:2].sum(), rel=1e-6)
    again = PCABasis.from_arrays(basis.arrays())
    np.testing.assert_array_equal(again.project(F)[0], coords)


def test_variance_shares_are_shares_of_the_full_features():
    """variance_shares recovers a round's full feature variance from its stored coordinates and
    embedding_var_2d, so a view's axes get their true share of it: checked against the (N, D)
    features themselves, at the fit round (where it is the basis's own ratio) and at a later round
    that grew a direction off the basis (where the refit's share within the stored components,
    views.refit_axes' "share", would claim far more)."""
    g = torch.Generator().manual_seed(2)
    F0 = torch.randn(400, 16, generator=g) @ torch.randn(16, 16, generator=g)  # (N, D) the fit round
    basis = PCABasis.fit(F0, fit_round=0, k=4)
    c0, v0 = basis.project(F0)
    shares, _ = variance_shares(c0, v0, c0[:, :2])
    np.testing.assert_allclose(shares, basis.explained_variance_ratio[:2], rtol=1e-4)
    F1 = F0 + 6 * torch.randn(400, 1, generator=g) * torch.randn(1, 16, generator=g)  # a new, large direction
    c1, v1 = basis.project(F1)
    fit = views.refit_axes(c1)
    shares, stored = variance_shares(c1, v1, views.project(c1, fit))
    F1c = F1.double().numpy() - F1.double().numpy().mean(0)
    total = (F1c ** 2).sum()
    dirs = fit["axes"] @ basis.components  # (2, D): the refit axes in feature space, orthonormal
    np.testing.assert_allclose(shares, ((F1c @ dirs.T) ** 2).sum(0) / total, rtol=1e-4)
    assert stored == pytest.approx(((F1c @ basis.components.T) ** 2).sum() / total, rel=1e-4)
    assert v1 <= shares.sum() <= stored < 0.5 < fit["share"].sum()  # the within-components share flatters
    assert np.isnan(variance_shares(c1, float("nan"), c1[:, :2])[0]).all()  # var_2d unknown: no share claimed


def test_tsne_map_shape_and_determinism():
    rng = np.random.default_rng(0)
    comps = np.concatenate([rng.normal(0, 0.3, (40, 6)), rng.normal(4, 0.3, (40, 6))])
    a = tsne_map(comps, init=comps[:, :2], seed=0, perplexity=10)
    b = tsne_map(comps, init=comps[:, :2], seed=0, perplexity=10)
    assert a.shape == (80, 2) and np.isfinite(a).all()
    np.testing.assert_array_equal(a, b)
    # the two blobs stay apart
    assert np.linalg.norm(a[:40].mean(0) - a[40:].mean(0)) > 3 * a[:40].std()


# ----------------------------------------------------------------------------- writers


def test_tracker_writes_a_map_per_round_on_one_fixed_basis(tmp_path):
    tr = own_loop(tmp_path / "exp" / "run-0", FeatureNet())
    tr.close()
    r = RunReader(tmp_path / "exp" / "run-0")
    assert r.embedding_rounds() == [0, 1, 2]
    info = r.meta["embedding"]
    assert info["method"] == "pca" and info["fit_round"] == 0 and info["feature_dim"] == 32
    assert len(info["explained_variance_ratio"]) == 8 and sum(info["explained_variance_ratio"]) <= 1 + 1e-9
    e = r.embedding(2)
    assert list(e.columns[:3]) == ["sample_id", "x", "y"] and len(e) == 240
    # the stored coordinates are the basis applied to that round's features (the final weights here)
    basis = PCABasis.from_arrays(r.embedding_basis())
    with torch.no_grad():
        want, share = basis.project(tr.model.features(tr.X))
    np.testing.assert_allclose(e[["x", "y"]].to_numpy(), want[:, :2], rtol=1e-5, atol=1e-5)
    rounds = r.rounds()
    assert rounds["embedding_var_2d"].iloc[-1] == pytest.approx(share, rel=1e-5)
    M = embedding_matrices(r)
    assert M["x"].shape == (3, 240) and np.isfinite(M["x"]).all()


def test_resume_keeps_the_basis(tmp_path):
    run = tmp_path / "exp" / "run-0"
    model = FeatureNet()
    own_loop(run, model, epochs=2).close("interrupted")
    before = RunReader(run).embedding_basis()
    tr = own_loop(run, model, epochs=1, resume=True)
    tr.close()
    r = RunReader(run)
    assert r.embedding_rounds() == [0, 1, 2]
    for k, v in before.items():
        np.testing.assert_array_equal(r.embedding_basis()[k], v)
    assert r.meta["embedding"]["fit_round"] == 0


def test_model_without_features_writes_no_map_and_says_why(tmp_path):
    model = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 3))
    own_loop(tmp_path / "r", model, epochs=1).close()
    r = RunReader(tmp_path / "r")
    assert r.embedding_rounds() == [] and not (tmp_path / "r" / "embedding").exists()
    assert r.meta["embedding"]["method"] == "none"
    assert "embedding_var_2d" not in r.rounds()


def test_embedding_off(tmp_path):
    own_loop(tmp_path / "r", FeatureNet(), epochs=1, embedding=False).close()
    assert RunReader(tmp_path / "r").embedding_rounds() == []


def test_stale_embedding_temps_are_removed_on_restart(tmp_path):
    run = tmp_path / "r"
    (run / "embedding").mkdir(parents=True)
    stale = run / "embedding" / ".round=0003.parquet.abc.tmp"
    stale.write_bytes(b"half a file")
    RunWriter(run).start({"name": "r"})
    assert not stale.exists()


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    """Built-in trainer runs: steps (moons), paper (moons, rounds are epochs) and a regression (sine)."""
    root = tmp_path_factory.mktemp("trained")
    torch.set_num_threads(1)
    out = {}
    out["steps"] = train_run(RunConfig(dataset="moons", curriculum="docl", rounds=3, seed=1, probe_size=4, device="cpu",
                                       schedule=Schedule(k_start=0.3, warmup_epochs=1)), root / "steps" / "docl-s1")
    out["paper"] = train_run(RunConfig(dataset="moons", curriculum="docl", protocol="paper", seed=1, probe_size=4,
                                       device="cpu", schedule=PaperSchedule(epochs=3, episodes=[0, 1])),
                             root / "paper" / "docl-s1")
    out["regression"] = train_run(RunConfig(dataset="sine", curriculum="docl", rounds=3, seed=1, probe_size=4,
                                            device="cpu", schedule=Schedule(k_start=0.3, warmup_epochs=1)),
                                  root / "sine" / "docl-s1")
    return out


@pytest.mark.parametrize("kind", ["steps", "paper", "regression"])
def test_trainer_writes_the_map_for_every_round(trained, kind):
    r = RunReader(trained[kind])
    assert r.embedding_rounds() == r.round_ids and len(r.round_ids) == 3
    assert r.meta["embedding"]["fit_round"] == 0
    n = r.meta["num_train"]
    for t in r.round_ids:
        e = r.embedding(t)
        assert len(e) == n and np.isfinite(e[["x", "y"]].to_numpy()).all()
    if kind == "paper":
        assert r.meta["round_unit"] == "epoch"


# ----------------------------------------------------------------------------- the page


def open_page(root: Path, monkeypatch) -> AppTest:
    monkeypatch.setenv("DOCL_RUNS", str(root))
    at = AppTest.from_file(MAIN, default_timeout=120)
    at.run()
    at.switch_page("app_pages/embedding.py")
    at.run()
    return at


def ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert at.title[0].value == "Embedding"


def scatter_spec(at: AppTest) -> dict:
    charts = at.get("plotly_chart")
    assert len(charts) == 1, "one scatter"
    return json.loads(charts[0].proto.spec)


def values(v) -> list:
    """A plotly JSON array: a list, or plotly 6's typed array {"dtype", "bdata"} (base64)."""
    if isinstance(v, dict) and "bdata" in v:
        import base64
        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"])).tolist()
    return list(v) if isinstance(v, (list, tuple)) else [v]


def n_points(spec: dict) -> int:
    return sum(len(values(tr["x"])) for tr in spec["data"])


def marker_colors(spec: dict) -> list:
    return [json.dumps(values(tr["marker"].get("color"))) for tr in spec["data"]]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    return write_experiment(tmp_path_factory.mktemp("runs") / "images", SyntheticSpec(
        n=200, rounds=5, seeds=(0,), curricula=("random", "docl"), running=False, failed=False))


def test_page_colours_follow_the_chosen_column(synthetic, monkeypatch):
    at = open_page(synthetic, monkeypatch)
    ok(at)
    seen = {}
    for col in at.radio(key="emb_color").options:
        at.radio(key="emb_color").set_value(col).run()
        ok(at)
        spec = scatter_spec(at)
        seen[col] = (len(spec["data"]), marker_colors(spec))
        assert n_points(spec) == 200
    assert len({json.dumps(v) for v in seen.values()}) == len(seen), "every column colours differently"
    assert seen["class"][0] == 4 and seen["noisy label"][0] == 2 and seen["selected"][0] == 2
    # the fixed axes stay fixed across rounds
    at.radio(key="emb_method").set_value("PCA (fixed axes)").run()
    at.radio(key="emb_color").set_value(at.radio(key="emb_color").options[0]).run()   # the driving score
    ranges = []
    for t in (0, 4):
        at.select_slider(key="emb_round").set_value(t).run()
        ok(at)
        lay = scatter_spec(at)["layout"]
        ranges.append((lay["xaxis"]["range"], lay["yaxis"]["range"]))
    assert ranges[0] == ranges[1]
    assert at.select_slider(key="emb_round").label == "Round"
    at.radio(key="emb_emph").set_value("size").run()
    ok(at)
    sizes = values(scatter_spec(at)["data"][0]["marker"]["size"])
    assert len(sizes) == 200 and len(set(sizes)) > 10


def test_page_tsne_on_demand(synthetic, monkeypatch):
    at = open_page(synthetic, monkeypatch)
    at.radio(key="emb_method").set_value("t-SNE (this round)").run()
    ok(at)
    spec = scatter_spec(at)
    assert spec["layout"]["xaxis"]["title"]["text"] == "t-SNE 1"
    assert n_points(spec) == 200


def test_page_on_a_live_run_and_play(tmp_path, monkeypatch):
    exp = write_experiment(tmp_path / "live", SyntheticSpec(n=100, rounds=6, seeds=(0,), curricula=("docl",),
                                                            running=True, failed=False))
    at = open_page(exp, monkeypatch)
    at.sidebar.selectbox(key="focus_run").set_value("docl-s1-live").run()
    ok(at)
    assert at.select_slider(key="emb_round").options == ["0", "1", "2"]  # its committed rounds
    assert at.select_slider(key="emb_round").value == 1  # another run keeps the round one was looking at
    assert n_points(scatter_spec(at)) == 100
    at.sidebar.selectbox(key="focus_run").set_value("docl-s0").run()
    at.select_slider(key="emb_round").set_value(1).run()
    at.toggle(key="emb_play").set_value(True).run()
    ok(at)
    assert at.select_slider(key="emb_round").value == 2  # Play stepped one round on


def test_page_on_a_regression_run(tmp_path, monkeypatch):
    exp = write_experiment(tmp_path / "curve", SyntheticSpec(n=120, rounds=4, kind="curve1d", seeds=(0,),
                                                             curricula=("docl",), running=False, failed=False))
    at = open_page(exp, monkeypatch)
    ok(at)
    assert "class" not in at.radio(key="emb_color").options
    at.radio(key="emb_color").set_value("loss").run()
    ok(at)
    assert scatter_spec(at)["data"][0]["marker"]["colorscale"]


@pytest.mark.parametrize("kind", ["steps", "paper", "regression"])
def test_page_on_trained_runs(trained, monkeypatch, kind):
    at = open_page(trained[kind].parent, monkeypatch)
    ok(at)
    a = marker_colors(scatter_spec(at))
    at.radio(key="emb_color").set_value("times selected").run()
    ok(at)
    assert marker_colors(scatter_spec(at)) != a
    assert at.select_slider(key="emb_round").label == ("Epoch" if kind == "paper" else "Round")
    assert any("they hold" in m.value and "% of the features' variance" in m.value for m in at.markdown)


def test_page_opens_on_the_shown_epochs_axes_and_reports_their_share(trained, monkeypatch):
    """The page opens on axes refitted on the epoch shown (not on epoch 0's, which hold little of a
    later epoch's variance), and every axis title gives its share of that epoch's full feature
    variance, as computed from the files; the fixed axes stay one click away, titled the same way."""
    run_dir = trained["paper"]
    at = open_page(run_dir.parent, monkeypatch)
    ok(at)
    assert at.radio(key="emb_method").value == "PCA (refit on this round)"
    at.select_slider(key="emb_round").set_value(2).run()
    ok(at)
    r = RunReader(run_dir)
    coords = r.embedding(2).sort_values("sample_id")[["x", "y", *(f"pc{j}" for j in range(2, 8))]].to_numpy()
    var2d = float(r.rounds().set_index("round").loc[2, "embedding_var_2d"])
    shares, stored = variance_shares(coords, var2d, views.project(coords, views.refit_axes(coords)))
    lay = scatter_spec(at)["layout"]
    assert lay["xaxis"]["title"]["text"] == f"refit axis 1 ({100 * shares[0]:.0f} % of epoch 2's feature variance)"
    assert lay["yaxis"]["title"]["text"] == f"refit axis 2 ({100 * shares[1]:.0f} % of epoch 2's feature variance)"
    note = " ".join(m.value for m in at.markdown)
    assert f"at epoch 2 they hold {100 * shares.sum():.0f} % of the features' variance" in note
    assert f"components {100 * stored:.0f} %" in note and f"fixed axes of epoch 0 {100 * var2d:.0f} %" in note
    assert var2d <= shares.sum() + 1e-9 <= stored + 1e-9 <= 1 + 1e-9  # within the stored components: the best 2-D
    at.radio(key="emb_method").set_value("PCA (fixed axes)").run()
    ok(at)
    fixed, _ = variance_shares(coords, var2d, coords[:, :2])
    lay = scatter_spec(at)["layout"]
    assert lay["xaxis"]["title"]["text"] == f"PC1 of epoch 0 ({100 * fixed[0]:.0f} % of epoch 2's variance)"
    assert any(f"they hold {100 * var2d:.0f} % of the features' variance" in c.value for c in at.caption)


def test_page_on_an_own_loop_run_with_features(tmp_path, monkeypatch):
    own_loop(tmp_path / "mine" / "run-0", FeatureNet()).close()
    at = open_page(tmp_path / "mine", monkeypatch)
    ok(at)
    assert n_points(scatter_spec(at)) == 240


def test_page_on_the_readme_loop_run_says_no_features(readme_loop_runs, monkeypatch):
    at = open_page(readme_loop_runs, monkeypatch)
    ok(at)
    assert not at.get("plotly_chart")
    assert any("features(x)" in i.value for i in at.info)


def test_page_on_a_run_without_embedding_files(synthetic, tmp_path, monkeypatch):
    old = tmp_path / "old"
    shutil.copytree(synthetic, old)
    for run in old.iterdir():
        shutil.rmtree(run / "embedding", ignore_errors=True)
        meta = json.loads((run / "run.json").read_text())
        meta.pop("embedding", None)
        (run / "run.json").write_text(json.dumps(meta))
    at = open_page(old, monkeypatch)
    ok(at)
    assert any("No map for this run yet" in i.value for i in at.info)


def test_page_on_the_bundled_demo(monkeypatch):
    demo = REPO / "assets" / "demo" / "clean-digits"
    if not (demo / "docl-s0" / "run.json").is_file():
        pytest.skip("no bundled demo here (python -m docl_core demo)")
    at = open_page(demo, monkeypatch)
    ok(at)
    if RunReader(demo / "docl-s0").embedding_rounds():
        assert at.get("plotly_chart")
    else:
        assert any("No map for this run yet" in i.value for i in at.info)


def test_streamlit_config_hides_the_deploy_button():
    """Issue 32, item 5's other half: Streamlit's toolbar is minimal (no Deploy button) in every mode,
    as Streamlit itself reads the project's .streamlit/config.toml."""
    import subprocess
    code = ("from streamlit import config; config.get_config_options(force_reparse=True); "
            "print(config.get_option('client.toolbarMode'))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "minimal", out.stderr[-500:]
