"""The seed's Table 1 (Zhou, Wang and Bilmes, AISTATS 2021): test accuracy (%) of five curricula
on nine datasets, networks trained from scratch, no intervals or seeds given. Typed once here;
Compare's claim panel and the study report both read it.

    DATASETS                  the nine columns, in the paper's order
    ACCURACY[curriculum]      (9,) accuracies in DATASETS order (random is the paper's mini-batch SGD)
    by_dataset() -> dict      dataset → (5,) accuracies in CURRICULA order
"""
from __future__ import annotations

DATASETS = ("CIFAR10", "CIFAR100", "Food-101", "ImageNet", "SVHN", "FMNIST", "Birdsnap", "Aircraft", "Cars")
CURRICULA = ("random", "spl", "mcl", "docl-nr", "docl")
ACCURACY = {"random": (96.18, 79.64, 83.56, 75.04, 96.48, 95.22, 64.23, 74.71, 78.73),
            "spl": (93.55, 80.25, 81.36, 73.23, 96.15, 92.09, 63.26, 68.95, 77.61),
            "mcl": (96.60, 80.99, 84.18, 75.09, 96.93, 95.07, 65.76, 75.28, 76.98),
            "docl-nr": (96.40, 81.42, 84.75, 75.62, 96.80, 95.50, 66.59, 79.72, 81.48),
            "docl": (97.43, 83.23, 87.45, 79.54, 97.36, 95.89, 71.37, 82.40, 86.26)}


def by_dataset() -> dict[str, tuple[float, ...]]:
    """dataset → its row of Table 1: (random, spl, mcl, docl-nr, docl) accuracies (%)."""
    return {d: tuple(ACCURACY[c][i] for c in CURRICULA) for i, d in enumerate(DATASETS)}
