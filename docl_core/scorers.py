"""Per-sample scorers behind one interface: what the tracker logs, each a small object with one job.

Every scorer answers the same calls:

    observe(ids, outputs, lr, pace)   a training mini-batch: ids (B,), its outputs (B, C), its learning rate
    end_pass()                        a pass over the data ended
    measure(at) -> {name: (N,)}       measure at the current weights (`at`: a `Measuring`)
    end_round(output)                 the round was written with these outputs (N, C)
    state() / load_state(state)       what a checkpoint keeps (plain tensors and numbers)

`SCORERS` maps every score name of names.SCORES but "loss" (the measurement's own, outputs.py) to the
class that gives it; `make_scorers(names, ...)` builds one object per class (one per estimator for
the gradient ones). Each score's meaning, label and which end is hard live in names.SCORES.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import torch
import torch.nn as nn

from .distributed import SINGLE, DistContext
from .dynamics import ByproductEstimator, docl_scores, mean_gradient
from .grand import grad_norms
from .outputs import at_label, margin, output_scores, probabilities
from .recipe import PaperByproduct


@dataclass
class Measuring:
    """What scorers measure on: the model at the round's weights, this rank's shard of the training
    set (X, y), all N labels, and what the estimators measured before the others (output, speed)."""

    model: nn.Module
    X: torch.Tensor                       # (n, ...) this rank's shard
    y: torch.Tensor                       # (n,) or (n, C) its labels or targets
    labels: torch.Tensor                  # (N,) or (N, C) every sample's
    task: str
    batch_size: int = 512                 # samples per scoring forward
    dist: DistContext = field(default_factory=lambda: SINGLE)
    gbar: Optional[dict[str, torch.Tensor]] = None  # ḡ over all N, computed once on first use
    output: Optional[torch.Tensor] = None  # (N, C) at these weights once the estimators are done (while
                                           # they run: this rank's rows, all-gathered by the Measurer)
    speed: Optional[torch.Tensor] = None   # (N, C) v_i from the exact (else the fast) estimator, likewise
    grad_norm: float = float("nan")        # ‖ḡ‖
    want_features: bool = False            # whether the exact estimator should keep the head's inputs
    features: Optional[torch.Tensor] = None  # (n, D) this rank's head inputs from the exact pass, if kept

    @property
    def n(self) -> int:
        return len(self.labels)

    def mean_gradient(self) -> dict[str, torch.Tensor]:
        """ḡ, once: each rank's shard mean scaled to its share of the global mean, then all-reduced."""
        if self.gbar is None:
            self.gbar = mean_gradient(self.model, self.X, self.y, self.task, self.batch_size)
            if self.dist.active:
                parts = list(self.gbar.values())
                for g in parts:
                    g.mul_(len(self.X) / self.n)  # shard mean → shard's share of the global mean
                self.dist.all_reduce_sum_(parts)
        return self.gbar

    def nan(self) -> torch.Tensor:
        """(N,) NaN in the data's dtype: a score not measured this time."""
        return torch.full((self.n,), float("nan"), dtype=self.X.dtype, device=self.X.device)


class Scorer:
    """One or more per-sample scores (`names`). `costly`: it runs a pass of its own over the data,
    so a round may leave it out (its columns are then NaN)."""

    names: tuple[str, ...] = ()
    costly = False

    def __init__(self, y: torch.Tensor, num_outputs: int, task: str):
        self.y, self.num_outputs, self.task = y, num_outputs, task

    def observe(self, ids: torch.Tensor, outputs: torch.Tensor, lr: float, pace: float) -> None:
        pass

    def end_pass(self) -> None:
        pass

    def measure(self, at: Measuring) -> dict[str, torch.Tensor]:
        return {}

    def end_round(self, output: torch.Tensor) -> None:
        pass

    def state(self) -> dict[str, Any]:
        return {}

    def load_state(self, state: dict[str, Any]) -> None:
        pass


class GradientScore(Scorer):
    """`exact` (forward-mode, a_i = g_i · ḡ) or `fast` (central differences along ḡ): dynamics.docl_scores.
    The exact one, else the first measured, also gives the measurement's outputs and speeds."""

    costly = True

    def __init__(self, y, num_outputs, task, name: str = "exact", eps: Optional[float] = None):
        super().__init__(y, num_outputs, task)
        self.names, self.eps = (name,), eps

    def measure(self, at: Measuring) -> dict[str, torch.Tensor]:
        name = self.names[0]
        dyn = docl_scores(at.model, at.X, at.y, at.task, batch_size=at.batch_size, estimator=name,
                          gbar=at.mean_gradient(), eps=self.eps, features=at.want_features)
        if at.speed is None or name == "exact":
            at.speed, at.output, at.grad_norm = dyn.speed, dyn.output, dyn.grad_norm  # this rank's rows
        if dyn.features is not None:
            at.features = dyn.features
        return {name: at.dist.all_gather_rows(dyn.score)}


class Byproduct(Scorer):
    """Our byproduct estimate from training's outputs (dynamics.ByproductEstimator); samples never
    estimated get the largest estimate, so a byproduct-driven curriculum explores them."""

    names = ("byproduct",)

    def __init__(self, y, num_outputs, task, ema: float = 0.9):
        super().__init__(y, num_outputs, task)
        self.estimator = ByproductEstimator(y, num_outputs, task, ema=ema)

    @property
    def last_output(self) -> torch.Tensor:
        """(N, C) each sample's outputs when training last saw it."""
        return self.estimator.last_output

    def observe(self, ids, outputs, lr, pace):
        self.estimator.update(ids, outputs, lr)

    def measure(self, at):
        s = self.estimator.score.clone()
        have = self.estimator.observed > 0
        s[~have] = s[have].max() if bool(have.any()) else torch.tensor(0.0)
        return {"byproduct": s.to(at.X.dtype)}

    def state(self):
        b = self.estimator
        return {"byproduct": {"last_output": b.last_output.cpu(), "lr_since": b.lr_since.cpu(),
                              "seen": b.seen.cpu(), "score": b.score.cpu(), "observed": b.observed.cpu()}}

    def load_state(self, state):
        for k, v in state.get("byproduct", {}).items():
            setattr(self.estimator, k, v.to(self.y.device))


class PaperScore(Scorer):
    """The authors' byproduct estimate (recipe.PaperByproduct): logits recorded per mini-batch, the
    update applied at the end of each pass, its pace counted from `pace`."""

    names = ("paper",)

    def __init__(self, y, num_outputs, task):
        super().__init__(y, num_outputs, task)
        self.estimator = PaperByproduct(y, num_outputs, task)

    def observe(self, ids, outputs, lr, pace):
        self.estimator.record(ids, outputs, pace)

    def end_pass(self):
        self.estimator.end_pass()

    def measure(self, at):
        return {"paper": self.estimator.score.clone().to(at.X.dtype)}

    def state(self):
        return {"paper": self.estimator.state_dict()}  # closes an open pass first

    def load_state(self, state):
        if "paper" in state:
            self.estimator.load_state_dict(state["paper"])


class NoScore(Scorer):
    """`none`: a constant 0, the ablation where no score drives the selection (a uniform draw)."""

    names = ("none",)

    def measure(self, at):
        return {"none": torch.zeros(at.n, dtype=at.X.dtype, device=at.X.device)}


class OutputScores(Scorer):
    """EL2N, margin and entropy, read off the measurement's outputs (outputs.output_scores)."""

    names = ("el2n", "margin", "entropy")

    def measure(self, at):
        return output_scores(at.output, at.labels, self.task)


class Presentations(Scorer):
    """Forgetting events and the area under the margin over training's presentations (`PresentationLog`)."""

    names = ("forgetting", "aum", "presentations")

    def __init__(self, y, num_outputs, task):
        super().__init__(y, num_outputs, task)
        self.log = PresentationLog(y, task)

    def observe(self, ids, outputs, lr, pace):
        self.log.record(ids, outputs)

    def measure(self, at):
        return self.log.scores()

    def state(self):
        return {"presentations": self.log.state_dict()}

    def load_state(self, state):
        if "presentations" in state:  # checkpoints from before the score atlas start afresh
            self.log.load_state_dict(state["presentations"])


class GradNorms(Scorer):
    """GraNd ‖∇θ ℓ_i‖ (grand.grad_norms: per-layer hooks, no per-sample gradients), on each rank's shard."""

    names = ("grand",)
    costly = True

    def measure(self, at):
        return {"grand": at.dist.all_gather_rows(grad_norms(at.model, at.X, at.y, at.task, at.batch_size))}


class DataMap(Scorer):
    """Data-map confidence, variability (population std) and correctness of p(given label) over the
    rounds written so far and the one measured (Swayamdipta et al. 2020). Measured when read, against
    the rounds committed by then; NaN for regression."""

    names = ("confidence", "variability", "correctness")

    def __init__(self, y, num_outputs, task):
        super().__init__(y, num_outputs, task)
        self.sums = torch.zeros(3, len(y), dtype=torch.float64)  # (3, N) Σ p, Σ p², Σ correct
        self.rounds = 0

    def _p_and_correct(self, output: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = output.detach().double()
        yl = self.y.long().to(out.device)
        return at_label(probabilities(out), yl).cpu(), (out.argmax(1) == yl).double().cpu()

    def measure(self, at):
        return self.of(at.output)

    def of(self, output: torch.Tensor) -> dict[str, torch.Tensor]:
        """The data map (N,) each, float64 on the CPU, with `output` (N, C) as the latest round."""
        if self.task != "classification":
            nan = torch.full((len(self.y),), float("nan"), dtype=torch.float64)
            return {"confidence": nan, "variability": nan.clone(), "correctness": nan.clone()}
        p, correct = self._p_and_correct(output)
        n = self.rounds + 1
        conf = (self.sums[0] + p) / n
        var = ((self.sums[1] + p * p) / n - conf * conf).clamp_min(0).sqrt()
        return {"confidence": conf, "variability": var, "correctness": (self.sums[2] + correct) / n}

    def end_round(self, output):
        if self.task != "classification":
            return
        p, correct = self._p_and_correct(output)
        self.sums += torch.stack([p, p * p, correct])
        self.rounds += 1

    def state(self):
        return {"map_sums": self.sums.clone(), "map_rounds": self.rounds}

    def load_state(self, state):
        if "map_sums" in state:
            self.sums, self.rounds = state["map_sums"].clone(), int(state["map_rounds"])


class PresentationLog:
    """Forgetting events and the area under the margin (AUM), accumulated per presentation: each row
    of outputs a training loop passes to `on_batch` presents one sample (Toneva et al. 2019 count a
    forgetting event when a sample predicted right at one presentation is wrong at its next; Pleiss
    et al. 2020 average the margin f_y − max_{c≠y} f_c over presentations). A sample presented but
    never predicted right is, as in Toneva et al., more forgettable than any learned one: its
    forgetting is its own number of presentations plus the most presentations any sample has had
    (a learned sample's events number at most half of its own presentations), so it ranks above
    every learned sample, and among the never-learned ones the longer-presented first.
    Classification only: for regression both stay NaN. Ids within one batch are distinct (one
    presentation each)."""

    def __init__(self, y: torch.Tensor, task: str):
        n, dev = y.shape[0], y.device  # kept on the labels' device: no host sync per batch
        self.y, self.task = y, task
        self.count = torch.zeros(n, dtype=torch.long, device=dev)          # (N,) presentations so far
        self.forgetting = torch.zeros(n, dtype=torch.long, device=dev)     # (N,) correct → wrong transitions
        self.last_correct = torch.zeros(n, dtype=torch.bool, device=dev)   # (N,) right at the last presentation
        self.learned = torch.zeros(n, dtype=torch.bool, device=dev)        # (N,) right at some presentation
        self.margin_sum = torch.zeros(n, dtype=torch.float64, device=dev)  # (N,) Σ margins over presentations

    def record(self, ids: torch.Tensor, outputs: torch.Tensor) -> None:
        """ids (B,) presented with their outputs (B, C), as the loop computed them."""
        ids = ids.to(self.y.device)
        if self.task == "classification":
            out = outputs.detach().to(self.y.device, torch.float32)
            y = self.y[ids].long()
            correct = out.argmax(1) == y
            self.forgetting[ids] += ((self.count[ids] > 0) & self.last_correct[ids] & ~correct).long()
            self.last_correct[ids] = correct
            self.learned[ids] |= correct
            self.margin_sum[ids] += margin(out, y).double()
        self.count[ids] += 1

    def scores(self) -> dict[str, torch.Tensor]:
        """forgetting (N,) (0 before any presentation; presentations + the most presentations of
        any sample if never learned), aum (N,) (NaN before any), presentations (N,)."""
        seen = self.count > 0
        if self.task != "classification":
            nan = torch.full(self.count.shape, float("nan"), dtype=torch.float64, device=self.count.device)
            return {"forgetting": nan, "aum": nan.clone(), "presentations": self.count.clone()}
        aum = torch.where(seen, self.margin_sum / self.count.clamp_min(1), torch.full_like(self.margin_sum, float("nan")))
        never = seen & ~self.learned
        forgetting = torch.where(never, self.count + self.count.max(), self.forgetting)
        return {"forgetting": forgetting, "aum": aum, "presentations": self.count.clone()}

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {k: getattr(self, k).cpu().clone()
                for k in ("count", "forgetting", "last_correct", "learned", "margin_sum")}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for k, v in state.items():
            setattr(self, k, v.to(self.y.device).clone())
        if "learned" not in state:  # a checkpoint from before `learned`: right at the last presentation, or forgot
            self.learned = self.last_correct | (self.forgetting > 0)


# every score of names.SCORES but "loss" (the measurement's own) → the class that gives it
SCORERS: dict[str, type[Scorer]] = {
    "exact": GradientScore, "fast": GradientScore, "byproduct": Byproduct, "paper": PaperScore, "none": NoScore,
    "el2n": OutputScores, "margin": OutputScores, "entropy": OutputScores,
    "forgetting": Presentations, "aum": Presentations, "grand": GradNorms,
    "confidence": DataMap, "variability": DataMap, "correctness": DataMap,
}


def make_scorers(names, y: torch.Tensor, num_outputs: int, task: str, byproduct_ema: float = 0.9,
                 eps: Optional[float] = None) -> dict[str, Scorer]:
    """name → scorer for each score in `names` (any of SCORERS), in that order; the names one class
    gives share one object (el2n, margin and entropy: one OutputScores), estimators get one each."""
    made: dict[Any, Scorer] = {}
    out: dict[str, Scorer] = {}
    for name in names:
        if name not in SCORERS:
            raise ValueError(f"unknown score {name!r}: use {', '.join(SCORERS)}")
        cls = SCORERS[name]
        key = (cls, name) if cls is GradientScore else cls
        if key not in made:
            kw = {"name": name, "eps": eps} if cls is GradientScore else \
                {"ema": byproduct_ema} if cls is Byproduct else {}
            made[key] = cls(y, num_outputs, task, **kw)
        out[name] = made[key]
    return out
