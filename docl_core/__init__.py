"""docl: a training-dynamics lab for curriculum learning (DoCL, Zhou, Wang and Bilmes, 2021).

The names below are imported on first use (PEP 562), not with the package: `from docl_core import
views` (what the dashboard reads runs with) must not pay torch's start-up of several seconds, which
`docl_core.dynamics` and the trainer need. `from docl_core import Trainer` works as before.
"""
from __future__ import annotations

import importlib

_EXPORTS = {  # public name → the submodule that defines it
    "ByproductEstimator": "dynamics", "Dynamics": "dynamics", "docl_scores": "dynamics",
    "kernel_block": "dynamics", "kernel_eigenvalues": "dynamics", "kernel_scores": "dynamics",
    "mean_gradient": "dynamics", "score_contributions": "dynamics",
    "ExperimentReader": "store", "RunReader": "store", "RunStoreError": "store", "RunWriter": "store",
    "DynamicsTracker": "tracker", "RunConfig": "config", "Schedule": "config",
    "Dataset": "data", "load_dataset": "data", "build_model": "models", "make_curriculum": "curricula",
    "Trainer": "trainer", "train_run": "trainer",
    "scores": "api", "sample_scores": "api", "features": "api", "select": "api",
}

__version__ = "0.1.0"
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value  # once: later look-ups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
