"""The curricula's names, display labels and colours, shared by the engine, the figures and the app.

Kept apart from curricula.py (which needs torch) so that the dashboard can name and colour runs
without importing torch.
"""
from dataclasses import dataclass
from typing import Optional

CURRICULA = ("sgd", "random", "spl", "mcl", "docl-nr", "docl")

# One colour and one display name per curriculum, used by every figure in the app.
CURRICULUM_COLORS = {
    "sgd": "#2b2b2b",        # near-black: the paper's baseline, every sample every epoch
    "random": "#8c8c8c",     # grey: the baseline
    "spl": "#e8862a",        # orange: easy first
    "mcl": "#7b3f9e",        # purple: hard and diverse
    "docl-nr": "#74b3e0",    # light blue: DoCL without the random pool
    "docl": "#1450b4",       # strong blue: DoCL
}
CURRICULUM_LABELS = {"sgd": "SGD", "random": "Random", "spl": "SPL", "mcl": "MCL", "docl-nr": "DoCL-NR", "docl": "DoCL"}

# The curricula that select by the DoCL score (make_curriculum(name).needs_scores): for the others
# the per-round score pass is logging for the dashboard, not a cost of the method.
SELECTS_BY_SCORE = frozenset({"docl-nr", "docl"})


@dataclass(frozen=True)
class Score:
    """One per-sample score: its samples-frame column, how pages name it, which end means "hard"."""

    name: str          # as the CLI and the API take it (--score, --estimator, scores(method=...))
    column: str        # its column in samples/round=NNNN.parquet
    short: str         # in legends, axes, pickers
    long: str          # in titles and captions
    hard: str          # "high": a large value is a hard sample; "low": a small one
    needs_model: bool  # measured on the model at the round's weights (False: read off training's log)
    kind: str          # "estimator" (a DoCL score a_i), "sample" (a per-sample statistic) or "data map"


# THE registry of scores: every list, label and direction in the package and the app derives from it
# (config.ESTIMATORS and SAMPLE_SCORES, the Scores / Sample / atlas / Embedding / New-run labels).
SCORES = {s.name: s for s in (
    Score("exact", "score_exact", "exact score", "exact score a_i = r_i·v_i", "high", True, "estimator"),
    Score("byproduct", "score_byproduct", "our byproduct score",
          "byproduct score (our estimate from training's outputs)", "high", False, "estimator"),
    Score("fast", "score_fast", "fast score", "fast score (finite differences, an approximation)", "high", True,
          "estimator"),
    Score("paper", "score_paper", "authors' byproduct score",
          "authors' byproduct score (teacher logits recorded in training)", "high", False, "estimator"),
    Score("none", "score_none", "no score", "no score (a uniform draw: the score's ablation)", "high", False,
          "estimator"),
    Score("loss", "loss", "loss", "loss ℓ_i at the round's weights", "high", True, "sample"),
    Score("el2n", "el2n", "EL2N", "EL2N ‖softmax(f) − onehot(y)‖ (Paul et al. 2021)", "high", True, "sample"),
    Score("grand", "grand", "GraNd", "GraNd ‖∇θ ℓ_i‖, the per-sample gradient norm (Paul et al. 2021)", "high",
          True, "sample"),
    Score("margin", "margin", "margin", "margin f_y − max_{c≠y} f_c (low: hard)", "low", True, "sample"),
    Score("entropy", "entropy", "entropy", "entropy −Σ_c p_c log p_c of the prediction", "high", True, "sample"),
    Score("forgetting", "forgetting", "forgetting", "forgetting events, correct → wrong (Toneva et al. 2019)",
          "high", False, "sample"),
    Score("aum", "aum", "AUM", "area under the margin over presentations (Pleiss et al. 2020; low: hard)", "low",
          False, "sample"),
    Score("confidence", "confidence", "confidence", "confidence: mean p(given label) over the rounds so far "
          "(data maps)", "low", False, "data map"),
    Score("variability", "variability", "variability", "variability: std of p(given label) over the rounds so far "
          "(data maps)", "high", False, "data map"),
    Score("correctness", "correctness", "correctness", "correctness: share of the rounds so far predicted right "
          "(data maps)", "low", False, "data map"),
)}
ESTIMATOR_NAMES = tuple(n for n, s in SCORES.items() if s.kind == "estimator")
SAMPLE_SCORE_NAMES = tuple(n for n, s in SCORES.items() if s.kind != "estimator")
BY_COLUMN = {s.column: s for s in SCORES.values()}

# The `score` curriculum selects by any logged score, easy or hard first: each (score, direction) is
# its own curriculum in tables and legends ("score-el2n-hard"), so two such runs are never pooled.
SCORE_LABELS = {n: s.short for n, s in SCORES.items()}


# Under the paper protocol a subset pass trains in the selection's own order ("draw", the default;
# sgd: "shuffle"); a run in another order is its own curriculum in tables and legends: "docl@shuffle",
# "random@reversed", and "sgd@draw", the order-only arm (all N every epoch, ordered by DoCL's draw).
ORDER_LABELS = {"shuffle": "shuffled", "reversed": "reversed order", "draw": "draw order"}
SGD_ORDERED_LABEL = "SGD in DoCL's draw order"
LEGACY_ORDER = "shuffle"  # paper runs made before the order was a choice shuffled every pass


def default_order(curriculum: str) -> str:
    """The paper protocol's default order for a curriculum: sgd has no draw, so it shuffles."""
    return "shuffle" if curriculum == "sgd" else "draw"


def run_order(config: dict) -> Optional[str]:
    """A run's subset-pass order from its config: "draw", "shuffle" or "reversed" under the paper
    protocol (a run made before the order was recorded: LEGACY_ORDER), None under steps."""
    if config.get("protocol") != "paper":
        return None
    return str(config.get("order") or LEGACY_ORDER)


def run_curriculum(config: dict) -> str:
    """The name a run is compared under: its curriculum, or for a `score` run the score and the
    direction it selects by, "score-<score>-<hard|easy>" (the default run folder name's stem);
    a paper run in another order than its default gets "@<order>" ("docl@shuffle")."""
    cur = config.get("curriculum") or "custom"
    if cur == "score":
        cur = f"score-{config.get('score') or config.get('estimator') or 'exact'}-{config.get('prefer') or 'hard'}"
    order = run_order(config)
    if order is not None and order != default_order(config.get("curriculum") or ""):
        cur = f"{cur}@{order}"
    return cur


def curriculum_display(name: str) -> str:
    """"DoCL", "SGD", …; a score run's name reads "EL2N, hard first"; an order variant
    "DoCL, shuffled" (sgd@draw: "SGD in DoCL's draw order")."""
    if "@" in name:
        base, order = name.rsplit("@", 1)
        if base == "sgd" and order == "draw":
            return SGD_ORDERED_LABEL
        return f"{curriculum_display(base)}, {ORDER_LABELS.get(order, order)}"
    if name.startswith("score-") and name.count("-") >= 2:
        score, prefer = name[len("score-"):].rsplit("-", 1)
        return f"{SCORE_LABELS.get(score, score)}, {prefer} first"
    return CURRICULUM_LABELS.get(name, name)


def arm_of(run_name: str) -> str:
    """A run folder's arm: its name without the trailing -s<seed> (`docl-s3` → `docl`,
    `docl-none-s0` → `docl-none`, `docl-no-mixup-s2` → `docl-no-mixup`); other names as they are.
    The one parser of run folders: the study, `docl summary` and the reports all call it."""
    stem, sep, seed = run_name.rpartition("-s")
    return stem if sep and stem and seed.isdigit() else run_name
