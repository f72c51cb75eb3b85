"""docl: a training-dynamics lab for curriculum learning (DoCL, Zhou, Wang and Bilmes, 2021)."""
from .dynamics import (ByproductEstimator, Dynamics, docl_scores, kernel_block, kernel_eigenvalues,
                       kernel_scores, mean_gradient, score_contributions)
from .store import ExperimentReader, RunReader, RunStoreError, RunWriter
from .tracker import DynamicsTracker

__version__ = "0.1.0"
__all__ = ["DynamicsTracker", "ByproductEstimator", "Dynamics", "docl_scores", "kernel_block", "kernel_eigenvalues",
           "kernel_scores", "mean_gradient", "score_contributions", "ExperimentReader", "RunReader",
           "RunStoreError", "RunWriter"]
