"""The curricula's names, display labels and colours, shared by the engine, the figures and the app.

Kept apart from curricula.py (which needs torch) so that the dashboard can name and colour runs
without importing torch.
"""
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


# The `score` curriculum selects by any logged score, easy or hard first: each (score, direction) is
# its own curriculum in tables and legends ("score-el2n-hard"), so two such runs are never pooled.
# Short labels of the scores a run can select by (the atlas uses the same ones); other names read as they are.
SCORE_LABELS = {"el2n": "EL2N", "grand": "GraNd", "aum": "AUM", "exact": "a (exact)", "paper": "a (paper)",
                "byproduct": "a (byproduct)", "fast": "a (fast)", "none": "no score"}


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
