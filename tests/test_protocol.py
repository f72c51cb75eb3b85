"""The paper protocol: schedule arithmetic against hand tables, the authors' score against an
independent recomputation, `sgd` against a hand-written loop, and one test per switch."""
import math

import numpy as np
import pandas as pd
import pytest
import torch

from docl_core import recipe
from docl_core.cli import main
from docl_core.config import RunConfig
from docl_core.data import load_dataset
from docl_core.models import build_model
from docl_core.protocol import PaperProtocol, PaperSchedule, scaled_boundaries
from docl_core.store import RunReader
from docl_core.train_pass import paper_pass
from docl_core.trainer import Trainer, train_run

# ----------------------------------------------------------------------------- schedule arithmetic


def test_boundaries_are_the_authors_scaled_to_the_budget():
    assert scaled_boundaries(300) == [0, 5, 10, 15, 20, 30, 40, 60, 90, 140, 210, 300]
    # by hand: b·20/300 = 0, .33, .67, 1, 1.33, 2, 2.67, 4, 6, 9.33, 14, 20, rounded half up, deduplicated
    assert scaled_boundaries(20) == [0, 1, 2, 3, 4, 6, 9, 14, 20]
    # b·60/300 = 0, 1, 2, 3, 4, 6, 8, 12, 18, 28, 42, 60
    assert scaled_boundaries(60) == [0, 1, 2, 3, 4, 6, 8, 12, 18, 28, 42, 60]
    assert PaperSchedule(epochs=12, episodes=[0, 2, 4, 8]).boundaries() == [0, 2, 4, 8, 12]
    assert PaperSchedule(epochs=8, episodes=[3, 5]).boundaries() == [0, 3, 5, 8]


def test_budgets_sizes_and_rates_per_episode_match_a_hand_table():
    proto = PaperProtocol(PaperSchedule(epochs=300), n=1000, batch_size=128, full_data=False, prunes=True)
    # episode: (k0 = ⌊0.2·1.1^i·N⌋, subset = ⌊0.5·1.1^i·k0⌋, lr_max, lr_min, mod = 0.1·1.5^i, mixup α)
    hand = {
        1: (220, 121, 0.1 / 0.9, 5e-4, 0.15, 0.9),
        2: (242, 146, 0.1 / 0.9 ** 2, 5e-4, 0.225, 0.81),
        3: (266, 177, 0.1 / 0.9 ** 3, 5e-4, 0.3375, 0.729),
        4: (292, 213, 0.1 / 0.9 ** 4, 5e-4, 0.50625, 0.6561),
        5: (322, 259, 0.1 / 0.9 ** 3, 4e-4, 0.759375, 0.59049),   # exploring ends: lr_max × 0.9, lr_min × 0.8
        6: (354, 313, 0.1 / 0.9 ** 2, 3.2e-4, 1.1390625, 0.531441),
    }
    for i, (k0, subset, lr_max, lr_min, mod, alpha) in hand.items():
        ep = proto.episodes[i]
        assert proto.sizes(ep) == (k0, subset), i
        assert ep.lr_max == pytest.approx(lr_max) and ep.lr_min == pytest.approx(lr_min), i
        assert ep.mod == pytest.approx(mod) and ep.mixup_alpha == pytest.approx(alpha), i
    # the last of the 11 episodes (epochs 210–300): k = 0.2·1.1^10 = 0.519 < 0.9, ratio 0.5·1.1^10 → 1
    last = proto.episodes[-1]
    assert (last.index, last.start, last.end) == (10, 210, 300)
    assert proto.sizes(last) == (518, 518)
    assert last.lr_max == pytest.approx(0.1 / 0.9 ** 4 * 0.9 ** 6) and last.lr_min == pytest.approx(5e-4 * 0.8 ** 6)
    assert last.mixup_alpha == pytest.approx(0.9 ** 10)
    warm = proto.episodes[0]
    assert (warm.lr_max, warm.lr_min, warm.mixup_alpha, warm.k) == (0.1, 5e-4, 0.2, 0.2)


def test_k_is_capped_and_select_ratio_reaches_one():
    proto = PaperProtocol(PaperSchedule(epochs=300, episodes=list(range(0, 40))), n=1000, batch_size=100,
                          full_data=False, prunes=True)
    last = proto.episodes[-1]
    assert last.k == pytest.approx(0.9) and last.select_ratio == 1.0
    assert proto.sizes(last) == (900, 900)


def test_learning_rate_per_minibatch():
    # N = 1000, batch 100: 10 mini-batches per full pass. Every pass hands its counter on minus
    # one (docs/protocol.md), so pass j of an episode starts at the sum of (length − 1) before it.
    proto = PaperProtocol(PaperSchedule(epochs=6, episodes=[0, 2, 4]), n=1000, batch_size=100,
                          full_data=False, prunes=True)
    w0, w1 = proto.plan(0), proto.plan(1)
    # the warm start (L₀ = 2 epochs) ramps over ceil(N/B)·(L₀ + 1) = 30 mini-batches
    assert w0.warm and w0.episode_batches == 30 and (w0.step_offset, w1.step_offset) == (0, 9)
    assert w0.lr(0) == pytest.approx(5e-4)                               # linear warm start
    assert w0.lr(10) == pytest.approx(5e-4 + (0.1 - 5e-4) * 10 / 30)
    assert w1.lr(9 + 9) == pytest.approx(5e-4 + (0.1 - 5e-4) * 18 / 30)  # its last: 0.6 of the way
    # episode 1 (epochs 2, 3): k0 = 220, subset 121 → 2 mini-batches per epoch; one full pass first
    e2, e3 = proto.plan(2), proto.plan(3)
    assert (e2.full_pass, e2.full_batches, e2.batches_per_epoch, e2.step_offset, e2.subset_offset) == \
        (True, 10, 2, 0, 9)
    assert (e3.full_pass, e3.step_offset, e3.subset_offset, e3.episode_batches) == (False, 10, 10, 14)
    lr_max, lr_min = 0.1 / 0.9, 5e-4
    for c in (0, 7, 14):
        want = lr_min + 0.5 * (lr_max - lr_min) * (1 + math.cos(math.pi * c / 14))
        assert e3.lr(c) == pytest.approx(want)
    # sgd: every epoch is one pass over all N, no extra full pass
    sgd = PaperProtocol(PaperSchedule(epochs=6, episodes=[0, 2, 4]), n=1000, batch_size=100,
                        full_data=True, prunes=False)
    p = sgd.plan(3)
    assert (p.full_pass, p.subset_size, p.batches_per_epoch, p.step_offset, p.episode_batches) == \
        (False, 1000, 10, 9, 20)


def test_the_baseline_keeps_its_mixup_alpha_after_the_warm_start():
    # docs/protocol.md: α updates sit inside `if use_curriculum`; the baseline keeps α = 1.0
    sched = PaperSchedule(epochs=300)
    proto = PaperProtocol(sched, n=1000, batch_size=128, full_data=True, prunes=False)
    alphas = [ep.baseline_alpha for ep in proto.episodes]
    assert alphas == [0.2] + [1.0] * 10                                  # warm start: α_min
    curriculum = [ep.mixup_alpha for ep in proto.episodes]
    assert curriculum == pytest.approx([0.2] + [max(0.2, 0.9 ** i) for i in range(1, 11)])
    decayed = PaperProtocol(PaperSchedule(epochs=300, baseline_alpha_decay=True), n=1000, batch_size=128,
                            full_data=True, prunes=False)
    assert [ep.baseline_alpha for ep in decayed.episodes] == pytest.approx(curriculum)


@pytest.mark.parametrize("bad, message", [
    (dict(episodes=[0, 4, 2]), "strictly increase"),
    (dict(epochs=4, episodes=[0, 2, 6]), "past the last epoch"),
    (dict(epochs=1), "--epochs ≥ 2"),
    (dict(k_growth=-1.1), "k_growth must be ≥ 0"),
    (dict(mixup_alpha=float("nan")), "finite number"),
])
def test_bad_schedules_get_one_line_errors(bad, message):
    with pytest.raises(ValueError, match=message):
        PaperSchedule(**bad).validate()


# ----------------------------------------------------------------------------- the authors' score


def _recompute_paper_score(stream, y, n, C, ema=0.5, scale=0.4, power=0.1):
    """The authors' formula with plain numpy loops over a recorded stream of passes:
    each pass is a list of (ids, logits, lr) mini-batches."""
    last = np.zeros((n, C))
    has = np.zeros(n, bool)
    pace = np.zeros(n)
    score = np.zeros(n)
    est = np.zeros(n, bool)
    for batches in stream:
        visit = {}
        lr_sum = 0.0
        for ids, logits, lr in batches:
            lr_sum += lr
            for i, z in zip(ids, logits):
                visit[int(i)] = np.asarray(z, dtype=np.float64)
        for i in range(n):
            pace[i] += lr_sum
        updated = [i for i in visit if has[i]]
        rc = {i: pace[i] ** power for i in updated}
        total = sum(rc.values())
        for i in updated:
            z = visit[i]
            q = np.exp(scale * (z - z.max()))
            q /= q.sum()
            r = -q
            r[y[i]] += 1.0
            raw = float(np.dot(r, z - last[i]))
            if not est[i]:
                score[i] = raw
            else:
                score[i] = ema * score[i] + (1 - ema) * raw / ((len(updated) / total) * rc[i])
            est[i] = True
        for i, z in visit.items():
            last[i] = z
            has[i] = True
            pace[i] = 0.0
    return score


def test_paper_score_matches_an_independent_recomputation(tmp_path, monkeypatch):
    stream, current = [], []
    real_record, real_end = recipe.PaperByproduct.record, recipe.PaperByproduct.end_pass

    def record(self, ids, logits, lr):
        current.append((ids.cpu().numpy().copy(), logits.detach().double().cpu().numpy().copy(), float(lr)))
        return real_record(self, ids, logits, lr)

    def end_pass(self):
        if current:
            stream.append(list(current))
            current.clear()
        return real_end(self)

    monkeypatch.setattr(recipe.PaperByproduct, "record", record)
    monkeypatch.setattr(recipe.PaperByproduct, "end_pass", end_pass)
    cfg = RunConfig(dataset="moons", curriculum="docl", protocol="paper", seed=1, probe_size=0, device="cpu",
                    log_estimators=[], schedule=PaperSchedule(epochs=4, episodes=[0, 1, 2, 3]))
    run = RunReader(train_run(cfg, tmp_path / "r"))
    ds = load_dataset("moons", seed=1)
    y = ds.y_train.numpy()
    # frame of epoch e = the state the selection read: after the warm pass (epoch 0), and at every
    # episode start after that epoch's full pass (docs/protocol.md: full pass, then selection)
    passes_before = {1: 2, 2: 4, 3: 6}
    assert len(stream) == 7
    for e, p in passes_before.items():
        want = _recompute_paper_score(stream[:p], y, len(y), 2)
        got = run.samples(e)["score_paper"].to_numpy()
        np.testing.assert_allclose(got, want, rtol=2e-4, atol=1e-6)
        assert np.abs(want).max() > 0
    # the full pass's mini-batches count 4 × their learning rate of pace (the authors' large batch)
    lrs = run.rounds()["lr"]
    assert max(lr for _, _, lr in stream[1]) == pytest.approx(4 * lrs.iloc[1], rel=1e-6)


# ----------------------------------------------------------------------------- sgd as a hand-written loop


def test_sgd_is_plain_minibatch_sgd_under_the_episode_learning_rates(tmp_path):
    E, bounds, bs, seed = 4, [0, 1, 2], 64, 5
    cfg = RunConfig(dataset="moons", curriculum="sgd", protocol="paper", seed=seed, probe_size=0, device="cpu",
                    batch_size=bs, log_estimators=[], weight_decay=2e-4,
                    schedule=PaperSchedule(epochs=E, episodes=bounds, mixup=False, mean_teacher=False))
    run = RunReader(train_run(cfg, tmp_path / "sgd"))
    ds = load_dataset("moons", seed=seed)
    torch.manual_seed(seed)
    model = build_model(None, ds)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=2e-4)
    X, Y, n = ds.x_train, ds.y_train, len(ds.x_train)
    per = math.ceil(n / bs)
    b = [0, 1, 2, E]
    lr_max, lr_min = 0.1, 5e-4
    for ep in range(3):
        if ep >= 1:
            lr_max /= 0.9                                  # exploring episodes raise the peak
        # the warm start's ramp is planned over L₀ + 1 epochs; each pass hands on its counter − 1
        total = per * (b[ep + 1] - b[ep] + (1 if ep == 0 else 0))
        counter = 0
        for _ in range(b[ep], b[ep + 1]):
            if _ > b[ep]:
                counter -= 1
            order = torch.randperm(n, generator=gen)
            for s in range(0, n, bs):
                f = counter / total
                lr = lr_min + (lr_max - lr_min) * f if ep == 0 else \
                    lr_min + 0.5 * (lr_max - lr_min) * (1 + math.cos(math.pi * f))
                for g in opt.param_groups:
                    g["lr"] = lr
                idx = order[s:s + bs]
                model.train()
                loss = torch.nn.functional.cross_entropy(model(X[idx]), Y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                counter += 1
    model.eval()
    with torch.no_grad():
        acc = float((model(ds.x_test).argmax(1) == ds.y_test).float().mean())
    rounds = run.rounds()
    assert list(rounds["k"]) == [n] * E and list(rounds["samples_seen"]) == [n * (e + 1) for e in range(E)]
    assert rounds["test_acc"].iloc[-1] == pytest.approx(acc, abs=1e-6)
    ckpt = torch.load(run.dir / "checkpoint.pt", weights_only=True)["model"]
    for name, w in model.state_dict().items():
        torch.testing.assert_close(ckpt[name], w, rtol=1e-5, atol=1e-6, msg=name)


# ----------------------------------------------------------------------------- one test per switch

BASE = ["run", "--dataset", "moons", "--protocol", "paper", "--epochs", "5", "--episodes", "0,1,3",
        "--probe-size", "0", "--log-estimators", "", "--device", "cpu", "--no-progress", "--seed", "2"]


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("switch")
    assert main([*BASE, "--out", str(out), "--name", "default"]) == 0
    return RunReader(out / "default")


def _switched(tmp_path, *flags):
    assert main([*BASE, "--out", str(tmp_path), "--name", "s", *flags]) == 0
    return RunReader(tmp_path / "s")


def test_switch_no_mixup(tmp_path, default_run, monkeypatch):
    alphas = []
    real = recipe.mixup_batch
    monkeypatch.setattr("docl_core.train_pass.mixup_batch", lambda x, a, g: (alphas.append(a), real(x, a, g))[1])
    r = _switched(tmp_path, "--no-mixup")
    a, b = default_run.rounds(), r.rounds()
    assert set(alphas) == {0.0} and (b["mixup_alpha"] == 0).all() and (a["mixup_alpha"] > 0).all()
    for col in ("k", "pool_size", "lr", "full_pass", "samples_seen", "steps"):
        assert list(a[col]) == list(b[col]), col


def test_switch_no_mean_teacher(tmp_path, default_run):
    r = _switched(tmp_path, "--no-mean-teacher")
    a, b = default_run.rounds(), r.rounds()
    assert "teacher_test_acc" in a and "teacher_test_acc" not in b
    for col in ("k", "pool_size", "lr", "full_pass", "samples_seen", "steps", "mixup_alpha"):
        assert list(a[col]) == list(b[col]), col
    assert not np.allclose(default_run.samples(4)["score_paper"], r.samples(4)["score_paper"])


def test_switch_no_episode_full_pass(tmp_path, default_run):
    r = _switched(tmp_path, "--no-episode-full-pass")
    a, b = default_run.rounds(), r.rounds()
    n = int(a["k"].iloc[0])
    assert list(a["full_pass"]) == [False, True, False, True, False] and not b["full_pass"].any()
    assert list(a["k"]) == list(b["k"]) and list(a["pool_size"]) == list(b["pool_size"])
    # the two episode starts lose one pass over all N each
    assert list(a["samples_seen"] - b["samples_seen"]) == [0, n, n, 2 * n, 2 * n]


@pytest.mark.parametrize("diversity", ["none", "facility"])
def test_switch_diversity(tmp_path, default_run, diversity):
    r = _switched(tmp_path, "--diversity", diversity)
    a, b = default_run.rounds(), r.rounds()
    assert list(a["pool_size"]) == list(b["pool_size"])
    if diversity == "none":   # nothing prunes the pool: train on all k0 drawn
        assert list(b["k"][1:]) == list(b["pool_size"][1:])
    else:                     # facility keeps the same subset size as centrality, other samples
        assert list(b["k"]) == list(a["k"])
        assert any(not (default_run.samples(t)["selected"] == r.samples(t)["selected"]).all() for t in (1, 2, 3))
    assert r.meta["config"]["diversity"] == diversity
    assert list(a["lr"][:2]) == list(b["lr"][:2])


def test_switch_no_random_subsample(tmp_path, default_run):
    r = _switched(tmp_path, "--no-random-subsample")
    a, b = default_run.rounds(), r.rounds()
    for col in ("k", "pool_size", "lr", "samples_seen"):
        assert list(a[col]) == list(b[col]), col
    assert not (default_run.samples(2)["selected"] == r.samples(2)["selected"]).all()


def test_paper_switches_under_steps_are_refused(tmp_path, capsys):
    assert main(["run", "--dataset", "moons", "--no-mixup", "--out", str(tmp_path), "--no-progress"]) == 2
    assert "--no-mixup applies to --protocol paper only" in capsys.readouterr().err
    assert main(["run", "--dataset", "moons", "--protocol", "paper", "--rounds", "3", "--out", str(tmp_path),
                 "--no-progress"]) == 2
    assert "--rounds applies to --protocol steps only" in capsys.readouterr().err


# ----------------------------------------------------------------------------- the run store under paper


def test_paper_runs_record_epochs_and_resume_mid_episode(tmp_path, monkeypatch):
    cfg = RunConfig(dataset="moons", curriculum="docl", protocol="paper", seed=4, probe_size=4, device="cpu",
                    schedule=PaperSchedule(epochs=6, episodes=[0, 1, 4]))
    full = RunReader(train_run(cfg, tmp_path / "full"))
    rounds = full.rounds()
    assert list(rounds["epoch"]) == list(range(6)) and list(rounds["episode"]) == [0, 1, 1, 1, 2, 2]
    assert full.meta["round_unit"] == "epoch" and full.meta["config"]["protocol"] == "paper"
    assert np.isfinite(full.samples(1)["score_exact"]).all()          # episode start: exact logged
    assert full.samples(2)["score_exact"].isna().all()                # mid-episode: not logged
    trainer = Trainer(cfg, tmp_path / "cut")
    real, calls = trainer.tracker.end_round, {"n": 0}

    def interrupted(*a, **kw):
        calls["n"] += 1
        if calls["n"] == 4:   # killed during epoch 3, mid-episode
            raise KeyboardInterrupt
        return real(*a, **kw)

    monkeypatch.setattr(trainer.tracker, "end_round", interrupted)
    with pytest.raises(KeyboardInterrupt):
        trainer.run()
    train_run(cfg, tmp_path / "cut", resume=True)
    cols = ["sample_id", "score", "selected", "loss"]
    pd.testing.assert_frame_equal(full.samples_all(columns=cols), RunReader(tmp_path / "cut").samples_all(columns=cols))


def test_random_and_docl_train_on_subsets_of_the_same_size(tmp_path):
    sizes = {}
    for c in ("random", "spl", "docl"):
        assert main([*BASE, "--out", str(tmp_path), "--curriculum", c]) == 0
        sizes[c] = list(RunReader(tmp_path / f"{c}-s2").rounds()["k"])
    assert sizes["random"] == sizes["docl"] == sizes["spl"]
    assert sizes["docl"][1] < sizes["docl"][0]  # pruned below the pool, not all N


def test_large_batch_pass_steps_at_each_groups_start_as_a_hand_loop(tmp_path):
    """docs/protocol.md: the full pass sums 4 mini-batches' mean square losses per step, clips to
    norm 10 and steps at the *start* of each group, so its first step applies the gradient the
    previous pass left (at the learning rate last set) and the last group's gradient stays unapplied;
    the cosine runs per mini-batch over the episode's planned mini-batches. Hand loop, no mixup or teacher."""
    import copy
    cfg = RunConfig(dataset="moons", curriculum="docl", protocol="paper", seed=3, probe_size=0, device="cpu",
                    log_estimators=[], batch_size=64,
                    schedule=PaperSchedule(epochs=4, episodes=[0, 1, 2, 3], mixup=False, mean_teacher=False))
    tr = Trainer(cfg, tmp_path / "r")
    n, bs = tr.N, 64
    g = torch.Generator().manual_seed(11)
    for p in tr.model.parameters():
        p.grad = torch.randn(p.shape, generator=g)                # what a previous pass left
    for group in tr.opt.param_groups:
        group["lr"] = 0.0123                                       # the learning rate last set
    model = copy.deepcopy(tr.model)
    for p, q in zip(model.parameters(), tr.model.parameters()):
        p.grad = q.grad.clone()
    gen = torch.Generator()
    gen.set_state(tr.gen.get_state())
    plan = tr.protocol.plan(1).epoch_plan
    assert plan.full_pass and plan.step_offset == 0
    tr.train_pass(paper_pass(cfg, plan, torch.arange(n), full=True, order="shuffle", gen=tr.gen, task=tr.ds.task,
                             full_data=tr.curriculum.full_data))

    # by hand: episode 1 has lr_max 0.1/0.9, lr_min 5e-4 over ceil(N/B) + per mini-batches
    k0 = math.floor(0.2 * 1.1 * n)
    per = math.ceil(math.floor(0.5 * 1.1 * k0) / bs)
    total = math.ceil(n / bs) + per
    lr_max, lr_min = 0.1 / 0.9, 5e-4
    opt = torch.optim.SGD(model.parameters(), lr=0.0123, momentum=0.9, nesterov=True, weight_decay=5e-4)
    X, Y = tr.X, tr.y
    order = torch.randperm(n, generator=gen)
    params = list(model.parameters())
    model.train()
    for b, s in enumerate(range(0, n, bs)):
        if b % 4 == 0:
            norm = math.sqrt(sum(float((p.grad ** 2).sum()) for p in params))
            if norm > 10:
                for p in params:
                    p.grad.mul_(10 / (norm + 1e-6))
            opt.step()
            opt.zero_grad()
        for group in opt.param_groups:
            group["lr"] = lr_min + 0.5 * (lr_max - lr_min) * (1 + math.cos(math.pi * b / total))
        idx = order[s:s + bs]
        prob = torch.softmax(model(X[idx]), dim=1)
        loss = (0.5 * ((prob * prob).sum(1) + 1) - prob.gather(1, Y[idx].view(-1, 1)).squeeze(1)).mean()
        loss.backward()
    for (name, w), p, q in zip(model.named_parameters(), model.parameters(), tr.model.parameters()):
        torch.testing.assert_close(q.detach(), p.detach(), rtol=1e-5, atol=1e-6, msg=name)
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-5, atol=1e-6, msg=f"{name}: the last group's gradient")
    assert any(float(p.grad.abs().sum()) > 0 for p in tr.model.parameters())
