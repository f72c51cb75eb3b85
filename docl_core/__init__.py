"""docl: a training-dynamics lab for curriculum learning (DoCL, Zhou, Wang and Bilmes, 2021)."""
from .dynamics import (ByproductEstimator, Dynamics, docl_scores, kernel_block, kernel_eigenvalues,
                       kernel_scores, mean_gradient, score_contributions)
from .store import ExperimentReader, RunReader, RunStoreError, RunWriter
from .tracker import DynamicsTracker
from .config import RunConfig, Schedule
from .data import Dataset, load_dataset
from .models import build_model
from .curricula import make_curriculum
from .trainer import Trainer, train_run

__version__ = "0.1.0"
__all__ = ["RunConfig", "Schedule", "Dataset", "load_dataset", "build_model", "make_curriculum", "Trainer",
           "train_run", "DynamicsTracker", "ByproductEstimator", "Dynamics", "docl_scores", "kernel_block", "kernel_eigenvalues",
           "kernel_scores", "mean_gradient", "score_contributions", "ExperimentReader", "RunReader",
           "RunStoreError", "RunWriter"]
