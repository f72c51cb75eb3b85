"""--precision: autocast on the training forwards only; exact scores stay in float32.

The exact score is one JVP along ḡ: under bf16 autocast its matmuls would round to 8 bits of
mantissa, so the trainer measures outside autocast. These tests pin what bf16 would cost the
score (CPU autocast, the same code path as CUDA's) and that runs under bf16 and fp16 train
in low precision while scoring in float32.
"""
import torch

from docl_core.config import PaperSchedule, RunConfig
from docl_core.data import load_dataset
from docl_core.dynamics import docl_scores, per_sample_loss
from docl_core.models import build_model
from docl_core.trainer import Trainer


def _trained(name: str):
    ds = load_dataset("digits", seed=0)
    torch.manual_seed(0)
    model = build_model(name, ds)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    g = torch.Generator().manual_seed(0)
    for _ in range(40):
        b = torch.randperm(len(ds.x_train), generator=g)[:64]
        loss = per_sample_loss(model(ds.x_train[b]), ds.y_train[b], "classification").mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model, ds.x_train[:512], ds.y_train[:512]


def _ranks(v: torch.Tensor) -> torch.Tensor:
    return v.argsort().argsort().double()


def test_exact_score_under_bf16_autocast_against_fp32():
    """The error bf16 would bring, measured (digits after 40 SGD steps, 512 samples, torch 2.13
    CPU autocast): MLP 1.0e-2 relative (max |Δ| / max |a|), Spearman 0.989; CNN 2.8e-2, 0.999.
    Enough to reorder near-ties of a selection, hence fp32 scoring. Bounds: error between 1e-4
    (bf16 really engaged) and 0.1, Spearman ≥ 0.95."""
    for name in ("mlp", "cnn"):
        model, X, y = _trained(name)
        exact = docl_scores(model, X, y, "classification", estimator="exact").score
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = docl_scores(model, X, y, "classification", estimator="exact").score
        assert exact.dtype == torch.float32
        rel = float((exact.double() - low.double()).abs().max() / exact.double().abs().max())
        rho = float(torch.corrcoef(torch.stack([_ranks(exact), _ranks(low)]))[0, 1])
        assert 1e-4 <= rel <= 0.1 and rho >= 0.95, (name, rel, rho)


def test_low_precision_runs_train_in_it_and_score_in_fp32(tmp_path):
    """bf16 and fp16 (with loss scaling) paper runs on digits, 3 epochs: every training forward
    of the student runs under autocast, every measurement outside it, and the run completes
    with finite float32 scores, recording its precision."""
    for precision in ("bf16", "fp16"):
        cfg = RunConfig(dataset="digits", model="cnn", protocol="paper", probe_size=0, device="cpu",
                        log_estimators=["exact"], precision=precision, schedule=PaperSchedule(epochs=3))
        trainer = Trainer(cfg, tmp_path / precision)
        seen = {"train": [], "measure": []}
        trainer.model.register_forward_hook(
            lambda m, i, o: seen["train"].append(o.dtype) if m.training else None)
        measure = trainer.tracker.measure

        def spy(*a, **kw):
            seen["measure"].append(torch.is_autocast_enabled("cpu"))
            m = measure(*a, **kw)
            assert m.scores["exact"].dtype == torch.float32 and bool(torch.isfinite(m.scores["exact"]).all())
            return m
        trainer.tracker.measure = spy
        trainer.run()
        low = torch.bfloat16 if precision == "bf16" else torch.float16
        assert seen["train"] and set(seen["train"]) == {low}, set(seen["train"])
        assert seen["measure"] and not any(seen["measure"])
        assert trainer.tracker.meta["config"]["precision"] == precision
        assert trainer.tracker.meta["status"] == "complete"
        assert (trainer.scaler is not None) == (precision == "fp16")


def test_bench_gpu_runs_tiny_on_cpu_and_refuses_absent_cuda():
    import subprocess
    import sys
    from pathlib import Path
    bench = str(Path(__file__).resolve().parent.parent / "benchmarks" / "bench_gpu.py")
    out = subprocess.run([sys.executable, bench, "--tiny", "--device", "cpu"], capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr
    assert "wrn-28-10  bf16" in out.stdout and "two --deterministic plain epochs: wrn-16-4: identical" in out.stdout
    if not torch.cuda.is_available():
        bad = subprocess.run([sys.executable, bench, "--device", "cuda"], capture_output=True, text=True, timeout=120)
        assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "CUDA is not available" in bad.stderr
