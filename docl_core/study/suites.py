"""What a study runs, as data: settings, knob grids, ablations and fidelity runs, grouped in suites.

To add a setting, add one `Setting(...)` line to a suite below; everything else (tuning, runs,
tables, figures, the reading) follows from it. A `Setting` expresses either protocol:

    Setting("digits-noise20", "digits, 20% flipped", "digits", label_noise=0.2, epochs=20)   # paper
    Setting("digits-steps", "digits (steps)", "digits", protocol="steps", rounds=10,
            overrides={"k_start": 0.2, "lr": 0.05})                                        # steps

`overrides` and tuned knobs are field names of `Schedule` (steps), `PaperSchedule` (paper:
rates and the switches mixup, mean_teacher, episode_full_pass, random_subsample) or the run-level
fields diversity, estimator, log_estimators, log_every; `Setting.config` routes each to its place.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field, fields, replace
from typing import Optional

from ..config import RunConfig, Schedule
from ..protocol import PaperSchedule

_SCHEDULE = {f.name for f in fields(Schedule)}
_PAPER = {f.name for f in fields(PaperSchedule)} - {"epochs"}
_RUN = {"diversity", "estimator", "log_estimators", "log_every", "model", "weight_decay", "batch_size", "order"}


@dataclass(frozen=True)
class Setting:
    """One column of a table: a dataset, its label noise, a protocol and its budget."""

    name: str                        # folder name under OUT, and the key everywhere
    title: str                       # column header in RESULTS.md
    dataset: str                     # built-in name (docl_core.data.DATASETS)
    label_noise: float = 0.0         # fraction of train labels flipped (classification)
    protocol: str = "paper"          # paper: the authors' episodes | steps: equal-step rounds
    epochs: int = 20                 # paper: total epochs E
    rounds: int = 10                 # steps: curriculum rounds
    overrides: dict = field(default_factory=dict)   # Schedule / PaperSchedule / run fields, all curricula
    curricula: Optional[tuple[str, ...]] = None     # None: the suite's for this protocol
    seeds: Optional[int] = None      # report seeds 0..seeds-1; None: the suite's

    def config(self, curriculum: str, seed: int, knobs: Optional[dict] = None) -> RunConfig:
        """The run's config: setting overrides, the arm's own switches (ARMS), then knobs (tuned
        values or an ablation's switches). `curriculum` is a curriculum or an arm of ARMS."""
        paper = self.protocol == "paper"
        curriculum, arm_knobs = ARMS.get(curriculum, (curriculum, {}))
        sched, pap, run = {}, {}, {}
        for key, value in {**self.overrides, **arm_knobs, **(knobs or {})}.items():
            if key in _RUN:
                run[key] = list(value) if key == "log_estimators" else value
            elif paper and key in _PAPER:
                pap[key] = value
            elif not paper and key in _SCHEDULE:
                sched[key] = value
            else:
                raise ValueError(f"setting {self.name}: unknown knob {key!r} for protocol {self.protocol}: use a "
                                 "Schedule (steps), PaperSchedule (paper) or run-level field")
        if "log_estimators" not in run:  # the score's agreement with exact is read where it drives selection
            scored = curriculum in ("docl", "docl-nr") and run.get("estimator") != "none"
            run["log_estimators"] = (["exact"] if scored else []) if paper else []
        cfg = RunConfig(dataset=self.dataset, curriculum=curriculum, protocol=self.protocol, seed=seed,
                        rounds=self.rounds, label_noise=self.label_noise, probe_size=0, device="cpu",
                        schedule=PaperSchedule(epochs=self.epochs, **pap) if paper else Schedule(**sched), **run)
        cfg.validate()
        return cfg


@dataclass(frozen=True)
class Ablation:
    """The recipe with one ingredient changed, on one setting, for a few curricula."""

    setting: str                                     # a Setting.name of the suite
    variants: dict                                   # variant name → knobs (switches) over the tuned ones
    curricula: tuple[str, ...] = ("docl", "random")
    seeds: Optional[int] = None                      # None: the setting's report seeds


@dataclass(frozen=True)
class FidelityRun:
    """Dedicated runs that log the exact score every epoch beside the authors' byproduct."""

    setting: str                                     # a Setting.name of the suite (dataset, noise, budget)
    protocol: str = "paper"
    curriculum: str = "docl"
    variants: dict = field(default_factory=lambda: {"default": {}})  # name → knobs (lr, momentum sweep)
    seeds: tuple[int, ...] = (0, 1)


@dataclass(frozen=True)
class Suite:
    name: str
    settings: tuple[Setting, ...]
    curricula: dict = field(default_factory=lambda: dict(CURRICULA))   # protocol → curricula
    seeds: int = 5                                   # report seeds 0 .. seeds-1
    tuning_seeds: tuple[int, ...] = (100,)           # distinct from every report seed
    grids: dict = field(default_factory=lambda: dict(GRIDS))            # protocol → curriculum → grid
    ablations: tuple[Ablation, ...] = ()
    fidelity: tuple[FidelityRun, ...] = ()
    results_name: Optional[str] = None               # file under docs/; None: RESULTS-<name>.md
    arm_seeds: dict = field(default_factory=dict)    # arm → report seeds, where fewer than the setting's

    def curricula_of(self, s: Setting) -> tuple[str, ...]:
        return s.curricula or self.curricula[s.protocol]

    def seeds_of(self, s: Setting, arm: Optional[str] = None) -> int:
        n = s.seeds or self.seeds
        return min(n, self.arm_seeds[arm]) if arm in self.arm_seeds else n

    def setting(self, name: str) -> Setting:
        for s in self.settings:
            if s.name == name:
                return s
        raise ValueError(f"suite {self.name}: no setting named {name!r}")

    def by_protocol(self, protocol: str) -> list[Setting]:
        return [s for s in self.settings if s.protocol == protocol]


# Arms that are a curriculum with switches: folder and table name → (curriculum, knobs). Their runs
# live in <setting>/<arm>-s<seed>, and the tables read the arm from the folder name.
ARMS = {"sgd-decay": ("sgd", {"baseline_alpha_decay": True}),   # our earlier baseline: α decays like DoCL's
        "docl-none": ("docl", {"estimator": "none"}),          # DoCL's recipe, uniform pool: what the score adds
        # the order-only arm: all N every epoch (SGD), each epoch ordered by a weighted draw from DoCL's score
        "sgd-draw": ("sgd", {"order": "draw"})}
ARM_LABELS = {"sgd-decay": "SGD (α decays)", "docl-none": "DoCL (no score)", "sgd-draw": "SGD in DoCL's order"}
ARM_COLORS = {"sgd-decay": "#8c8c8c", "docl-none": "#9ecae1", "sgd-draw": "#b07d2b"}
# The ordering ablation: each subset curriculum's same selections trained in a fresh random order or
# in its draw reversed (the default, "draw", is the arm itself). An order arm takes its base arm's
# tuned knobs (TUNED_AS), so only the order differs.
ORDER_VARIANTS = ("shuffle", "reversed")
ORDER_LABELS = {"shuffle": "shuffled", "reversed": "reversed"}
TUNED_AS: dict = {}
for _base, _label in (("docl", "DoCL"), ("docl-none", "DoCL (no score)"), ("random", "Random")):
    _cur, _knobs = ARMS.get(_base, (_base, {}))
    for _o in ORDER_VARIANTS:
        ARMS[f"{_base}-{_o}"] = (_cur, {**_knobs, "order": _o})
        ARM_LABELS[f"{_base}-{_o}"] = f"{_label}, {ORDER_LABELS[_o]}"
        TUNED_AS[f"{_base}-{_o}"] = _base
TUNED_AS["sgd-draw"] = "docl"  # ordered by the draw DoCL's tuned score scale makes
ORDER_ARMS = ("sgd", "sgd-draw", "random", "random-shuffle", "random-reversed", "docl", "docl-shuffle",
              "docl-reversed", "docl-none", "docl-none-shuffle", "docl-none-reversed")

CURRICULA = {"paper": ("sgd", "sgd-decay", "random", "spl", "mcl", "docl-nr", "docl", "docl-none"),
             # sgd takes more steps than k_t under steps, so it stays out of that equal-step table
             "steps": ("random", "spl", "mcl", "docl-nr", "docl")}

# Knobs tuned per setting (field → values); the first value of each grid is the default and wins
# ties. Under paper with the authors' centrality, λ is not used (the rule is top-k of mod·p + c),
# so MCL's knob is mod, the weight of its loss-probability against centrality.
GRIDS = {
    "paper": {"mcl": {"mod": [0.1, 1.0]},
              "docl-nr": {"score_scale": [0.1, 1.0]},
              "docl": {"score_scale": [0.1, 1.0]}},
    "steps": {"mcl": {"lam_start": [1.0, 0.1]},
              "docl-nr": {"lam_start": [1.0, 0.1]},
              "docl": {"lam_start": [1.0, 0.1], "temperature": [1.0, 0.5]}},
}

# the recipe's ingredients, each turned off in turn (docs/protocol.md)
RECIPE_SWITCHES = {"no-mixup": {"mixup": False}, "no-mean-teacher": {"mean_teacher": False},
                   "no-full-pass": {"episode_full_pass": False}, "no-centrality": {"diversity": "none"}}

# learning rate and momentum against the byproduct's fidelity (paper protocol)
LR_SWEEP = {"default": {}, "lr0.03": {"lr_max": 0.03}, "lr0.3": {"lr_max": 0.3}, "momentum0": {"momentum": 0.0}}


def _paper_settings(dataset: str, title: str, epochs: int) -> tuple[Setting, ...]:
    return tuple(Setting(f"{dataset}{'-noise%d' % (n * 100) if n else ''}",
                         f"{title}{', %d%% flipped' % (n * 100) if n else ''}", dataset, label_noise=n,
                         epochs=epochs) for n in (0.0, 0.2, 0.4))


SUITES = {
    # The study behind docs/RESULTS.md: E = 100 epochs, the budget at which the authors' own script
    # separates DoCL from its baseline on MNIST-1D (the report checks that SGD has flattened). SPL,
    # MCL, DoCL-NR and our decayed-α baseline run 3 seeds (the allowed cut; never below 3),
    # SGD, Random, DoCL and DoCL without its score run 5.
    # MNIST-1D 20 % also holds the ordering ablation, on 10 seeds: the order suite's runs, which
    # --reuse-from runs/study-order copies instead of training them again.
    "paper": Suite(
        "paper",
        tuple(replace(s, seeds=10, curricula=(*CURRICULA["paper"], *(a for a in ORDER_ARMS
                                                                   if a not in CURRICULA["paper"])))
              if s.name == "mnist1d-noise20" else s
              for s in _paper_settings("mnist1d", "MNIST-1D", 100) + _paper_settings("digits", "digits", 100)),
        arm_seeds={"spl": 3, "mcl": 3, "docl-nr": 3, "sgd-decay": 3},
        ablations=(Ablation("mnist1d-noise20", RECIPE_SWITCHES, seeds=3),),
        fidelity=(FidelityRun("mnist1d-noise20", variants=LR_SWEEP, seeds=(0,)),),
        results_name="RESULTS.md"),
    # The second regime, equal gradient steps for every curriculum (exact scores, facility location,
    # no mixup or mean teacher): docs/RESULTS-steps.md.
    "steps": Suite(
        "steps",
        (Setting("digits-noise20-steps", "digits, 20% flipped", "digits", label_noise=0.2, protocol="steps"),
         Setting("mnist1d-noise20-steps", "MNIST-1D, 20% flipped", "mnist1d", label_noise=0.2, protocol="steps")),
        seeds=3,
        fidelity=(FidelityRun("digits-noise20-steps", protocol="steps", variants={"default": {}, "lr0.2": {"lr": 0.2}}),)),
    # Does the answer change as training gets longer? MNIST-1D, 20% flipped, E = 30, 100 and 300
    # (300: the authors' boundaries unscaled). Run with --reuse-from the paper study's folder: its
    # E = 100 runs (and tuning runs) are copied, not retrained.
    "budget": Suite(
        "budget",
        tuple(Setting(f"mnist1d-noise20{'' if e == 100 else f'-e{e}'}", f"MNIST-1D, 20% flipped, E = {e}",
                      "mnist1d", label_noise=0.2, epochs=e) for e in (30, 100, 300)),
        curricula={"paper": ("sgd", "random", "docl"), "steps": ()},
        grids={"paper": {"docl": {"score_scale": [0.1, 1.0]}}}),
    # The order in which a subset pass is trained (docs/protocol.md, 'Space'): MNIST-1D, 20% flipped,
    # E = 100, 10 seeds (5 leave a 0.8-point interval): DoCL, DoCL without its score and Random, each
    # in draw, shuffled and reversed order, and the order-only arm (SGD ordered by DoCL's draw).
    # docs/RESULTS-order.md.
    "order": Suite(
        "order",
        (Setting("mnist1d-noise20", "MNIST-1D, 20% flipped", "mnist1d", label_noise=0.2, epochs=100),),
        curricula={"paper": ORDER_ARMS, "steps": ()},
        seeds=10,
        grids={"paper": {"docl": {"score_scale": [0.1, 1.0]}}}),
    # For tests: the ordering ablation's arms on blobs, 4 epochs, 2 seeds, no tuning.
    "order-quick": Suite(
        "order-quick",
        (Setting("blobs-noise20", "blobs, 20% flipped", "blobs", label_noise=0.2, epochs=4),),
        curricula={"paper": ORDER_ARMS, "steps": ()}, seeds=2, grids={"paper": {}, "steps": {}}),
    # For tests and a first look (a few minutes on 2 cores): both protocols, a tiny ablation
    # and fidelity section, 2 seeds.
    "quick": Suite(
        "quick",
        (Setting("blobs-noise20", "blobs, 20% flipped", "blobs", label_noise=0.2, epochs=4),
         Setting("blobs-noise20-steps", "blobs, 20% flipped", "blobs", label_noise=0.2, protocol="steps",
                 rounds=2, overrides={"k_start": 0.3, "k_growth": 1.5})),
        curricula={"paper": ("sgd", "random", "docl", "docl-none"), "steps": ("random", "docl")},
        seeds=2,
        grids={"paper": {"docl": {"score_scale": [0.1, 1.0]}}, "steps": {"docl": {"temperature": [1.0, 0.5]}}},
        ablations=(Ablation("blobs-noise20", {"no-mixup": {"mixup": False}}),),
        fidelity=(FidelityRun("blobs-noise20", variants={"default": {}, "lr0.3": {"lr_max": 0.3}}, seeds=(0,)),
                  FidelityRun("blobs-noise20-steps", protocol="steps", seeds=(0,)))),
}


def grid_points(grid: dict) -> list[dict]:
    """All combinations of a {knob: values} grid, default (first values) first."""
    keys = list(grid)
    return [dict(zip(keys, vals)) for vals in itertools.product(*(grid[k] for k in keys))]


def knob_tag(knobs: dict) -> str:
    short = {"lam_start": "lam", "temperature": "tau", "k_start": "k0", "score_scale": "scale", "lr_max": "lr"}
    return "-".join(f"{short.get(k, k)}{v:g}" if isinstance(v, (int, float)) and not isinstance(v, bool)
                    else f"{short.get(k, k)}-{v}" for k, v in knobs.items()) or "default"


def with_seeds(suite: Suite, seeds: Optional[int]) -> Suite:
    """The suite with another number of report seeds (settings that fix their own keep theirs)."""
    if seeds is None:
        return suite
    if seeds < 2:
        raise ValueError("--seeds must be ≥ 2 (a spread and a confidence interval need two)")
    return replace(suite, seeds=seeds)
SUITES["main"] = SUITES["paper"]  # the CLI's default suite name (docl_core/cli.py) runs the paper study
