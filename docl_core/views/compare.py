"""Compare's frames and words: accuracy curves, the final table, timings, seed-paired differences
with t-intervals, the verdicts and the headline built from them, and the paper's Table 1 beside them."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

import numpy as np
import pandas as pd

from .. import table1
from ..stats import MIN_SEEDS, VERDICTS, paired_ci, t_quantile, verdict  # noqa: F401 (views re-exports MIN_SEEDS, t_quantile)

def accuracy_curves(rounds: pd.DataFrame, metric: str = "test_acc", x: str = "round") -> pd.DataFrame:
    """Mean and std of `metric` over seeds, per curriculum and round.

    Args:
        rounds: ExperimentReader.rounds() (columns round, run, curriculum, seed, metrics).
        x: "round" or "steps" (cumulative gradient steps; averaged over seeds per round).
    Returns: curriculum, round, x, mean, std, lo, hi, seeds.
    """
    cols = ["curriculum", "round", "x", "mean", "std", "lo", "hi", "seeds"]
    if metric not in rounds.columns or not len(rounds):
        return pd.DataFrame(columns=cols)
    df = rounds.dropna(subset=[metric])
    if not len(df):
        return pd.DataFrame(columns=cols)
    xcol = x if x in df.columns else "round"
    g = df.groupby(["curriculum", "round"])
    out = g.agg(x=(xcol, "mean"), mean=(metric, "mean"), std=(metric, "std"), seeds=(metric, "size"))
    out = out.reset_index()
    out["std"] = out["std"].fillna(0.0)
    out["lo"], out["hi"] = out["mean"] - out["std"], out["mean"] + out["std"]
    return out[cols]


def final_accuracy_table(rounds: pd.DataFrame, summary: pd.DataFrame) -> pd.DataFrame:
    """Table-1 style: final test/validation accuracy (mean ± std over seeds) per curriculum; for
    regression runs (no accuracy logged) the final test/validation MSE instead.

    "Final" is the last committed round of each complete run; running and failed runs are left
    out unless no run is complete yet (then every run's last committed round is used).
    Columns: curriculum, runs, two "mean ± std" text columns each with a float "<name> mean"
    twin, rounds.
    """
    has_acc = "test_acc" in rounds.columns and rounds["test_acc"].notna().any()
    has_loss = "test_loss" in rounds.columns and rounds["test_loss"].notna().any()
    if has_acc or not has_loss:
        metrics = (("test_acc", "test acc (%)"), ("val_acc", "val acc (%)"))
        scale, digits = 100.0, 2
    else:
        metrics = (("test_loss", "test MSE"), ("val_loss", "val MSE"))
        scale, digits = 1.0, 4
    if not len(rounds) or metrics[0][0] not in rounds.columns:
        return pd.DataFrame(columns=["curriculum", "runs", *[n for _, n in metrics], "rounds"])
    complete = set(summary.loc[summary["status"] == "complete", "run"])
    use = rounds[rounds["run"].isin(complete)] if complete else rounds
    last = use.sort_values("round").groupby("run").tail(1)
    rows = []
    for cur, g in last.groupby("curriculum", sort=False):
        row = {"curriculum": cur, "runs": len(g)}
        for col, name in metrics:
            v = scale * g[col].dropna() if col in g else pd.Series(dtype=float)
            row[name] = _pm(v, digits)
            row[name + " mean"] = float(v.mean()) if len(v) else float("nan")
        row["rounds"] = int(g["round"].max()) + 1
        rows.append(row)
    return pd.DataFrame(rows)


def _pm(v: pd.Series, digits: int = 2) -> str:
    if not len(v):
        return "–"
    if len(v) == 1:
        return f"{v.iloc[0]:.{digits}f}"
    return f"{v.mean():.{digits}f} ± {v.std():.{digits}f}"


TIMING_PHASES = ("score", "select", "train", "eval")  # rounds.parquet's <phase>_time_s columns, wall clock


def timing_table(rounds: pd.DataFrame) -> pd.DataFrame:
    """Wall-clock seconds per round in each phase, per curriculum: the median over every committed
    round of every seed, with the 25th and 75th percentiles as its spread (a mean would let a few
    rounds slowed by other jobs on the machine speak for all of them).

    `used` says whether the phase's result drives the selection: the score pass of a curriculum
    that does not select by score (Random, SGD, SPL, MCL) is logging for the dashboard, not a cost of
    the method. Columns: curriculum, phase, seconds (median), q25, q75, rounds, used.
    """
    from docl_core.names import CURRICULA, SELECTS_BY_SCORE  # torch-free: the dashboard's first page
    cols = [f"{p}_time_s" for p in TIMING_PHASES if f"{p}_time_s" in rounds]
    out_cols = ["curriculum", "phase", "seconds", "q25", "q75", "rounds", "used"]
    if not cols or not len(rounds):
        return pd.DataFrame(columns=out_cols)
    long = rounds.melt(id_vars="curriculum", value_vars=cols, var_name="phase", value_name="s").dropna(subset=["s"])
    g = long.groupby(["curriculum", "phase"], sort=False)["s"]
    out = pd.DataFrame({"seconds": g.median(), "q25": g.quantile(0.25), "q75": g.quantile(0.75),
                        "rounds": g.size()}).reset_index()
    out["phase"] = out["phase"].str.replace("_time_s", "", regex=False)

    def selects_by_score(name: str) -> bool:  # a user's own curriculum name: assume its scores are used
        return name in SELECTS_BY_SCORE or name not in CURRICULA
    out["used"] = [ph != "score" or selects_by_score(c) for c, ph in zip(out["curriculum"], out["phase"])]
    return out[out_cols]


def reference_curriculum(curricula: Sequence[str], protocol: str = "steps") -> Optional[str]:
    """The curriculum every other one is paired against: the paper's Random (sgd) under the paper
    protocol when present, else random, else the first."""
    names = list(curricula)
    for want in (("sgd", "random") if protocol == "paper" else ("random", "sgd")):
        if want in names:
            return want
    return names[0] if names else None


def paired_differences(rounds: pd.DataFrame, metric: str, reference: str, final: bool = False,
                       level: float = 0.95, complete: Optional[Iterable[str]] = None,
                       sign: float = 1.0) -> pd.DataFrame:
    """sign · (metric(curriculum) − metric(reference)), paired by seed, with a t-interval over seeds
    (sign = −1 for a loss, so that positive always means better).

    final=False: one row per curriculum and round (seeds that have both runs at that round);
    final=True: one row per curriculum, from each run's last committed round (only runs in
    `complete`, when given). The `verdict` column says "beats", "trails", "no clear difference"
    or "too few seeds" (fewer than MIN_SEEDS pairs): stats.verdict, the words the study report and
    `docl summary` use, so a winner only when the interval excludes 0 over ≥ MIN_SEEDS seeds.
    Columns: curriculum, round, seeds, mean, lo, hi, verdict.
    """
    cols = ["curriculum", "round", "seeds", "mean", "lo", "hi", "verdict"]
    if metric not in rounds or not len(rounds):
        return pd.DataFrame(columns=cols)
    df = rounds.dropna(subset=[metric])
    if complete is not None:
        keep = set(complete)
        df = df[df["run"].isin(keep)] if keep & set(df["run"]) else df
    if final:
        df = df.sort_values("round").groupby("run").tail(1).assign(round=-1)
    # one value per (curriculum, seed, round): a second run with the same seed is averaged in
    wide = df.groupby(["curriculum", "seed", "round"])[metric].mean().unstack("curriculum")
    if reference not in wide:
        return pd.DataFrame(columns=cols)
    rows = []
    for cur in wide.columns:
        if cur == reference:
            continue
        diff = (sign * (wide[cur] - wide[reference])).dropna()
        for t, d in diff.groupby(level="round"):
            mean, lo, hi, n = paired_ci(d.to_numpy(np.float64), level)
            rows.append({"curriculum": cur, "round": int(t), "seeds": n, "mean": mean, "lo": lo, "hi": hi,
                         "verdict": verdict(lo, hi, True, n)})
    return pd.DataFrame(rows, columns=cols)


def winner(final: pd.DataFrame, means: dict, reference: str) -> Optional[str]:
    """The curriculum that earns a ★, or None. final: paired_differences(..., final=True); means:
    curriculum → final mean (higher is better). The best-mean curriculum among those clearly better
    than the reference; the reference itself when every other one is clearly worse."""
    if not len(final):
        return None
    better = final[final["verdict"] == "beats"]["curriculum"].tolist()
    if better:
        return max(better, key=lambda c: means.get(c, -np.inf))
    if (final["verdict"] == "trails").all():
        return reference
    return None


# The seed's Table 1, typed once in docl_core/table1.py (views re-exports both names)
TABLE1_DATASETS, TABLE1 = table1.DATASETS, table1.ACCURACY


def paper_claim(final: pd.DataFrame, means: dict, reference: str, label: Callable[[str], str],
                unit: str = "points", scale: float = 100.0) -> dict:
    """Table 1's claim beside what an experiment's runs show (the Compare panel).

    final: paired_differences(..., final=True) against `reference`; means: curriculum → final mean.
    Returns `claim` (the paper, from TABLE1), `here` (this experiment: DoCL's paired verdict against
    the reference and its place by final mean) and `agrees` (True / False / None when DoCL is absent)."""
    gain = np.subtract(TABLE1["docl"], TABLE1["random"])
    lo, hi = int(np.argmin(gain)), int(np.argmax(gain))
    best_everywhere = all(TABLE1["docl"][i] == max(v[i] for v in TABLE1.values()) for i in range(len(gain)))
    claim = (f"Table 1: DoCL has the highest test accuracy on {'all' if best_everywhere else 'some'} "
             f"{len(gain)} datasets, {gain[lo]:+.2f} ({TABLE1_DATASETS[lo]}) to {gain[hi]:+.2f} "
             f"({TABLE1_DATASETS[hi]}) points above random mini-batch SGD, with no intervals or seeds given.")
    rows = final.set_index("curriculum") if len(final) else pd.DataFrame()
    if "docl" not in means:
        return {"claim": claim, "here": "This experiment has no DoCL run to set beside it.", "agrees": None}
    order = sorted(means, key=lambda c: -means[c])
    place = f"{order.index('docl') + 1} of {len(order)} by final mean"
    if "docl" not in rows.index:
        return {"claim": claim, "here": f"This experiment: DoCL is {place}; it is the reference, so nothing is "
                                        "paired against it.", "agrees": None}
    r = rows.loc["docl"]
    n = int(r["seeds"])
    verb = {"beats": "beats", "trails": "trails", "no clear difference": "shows no clear difference to",
            "too few seeds": "cannot yet be compared with"}[r["verdict"]]
    interval = (f" (95 % interval {scale * r['lo']:+.2f} to {scale * r['hi']:+.2f}, {n} seeds)"
                if r["verdict"] != "too few seeds" else f" ({n} paired seed{'s' if n != 1 else ''})")
    here = (f"This experiment: DoCL {verb} {label(reference)}, {scale * r['mean']:+.2f} {unit}{interval}, "
            f"and is {place}.")
    agrees = None if r["verdict"] == "too few seeds" else (r["verdict"] == "beats" and order[0] == "docl")
    return {"claim": claim, "here": here, "agrees": agrees}


def and_list(names: list[str]) -> str:
    """['A', 'B', 'C'] → 'A, B and C' (a sentence's list of names)."""
    names = list(names)
    if len(names) <= 1:
        return names[0] if names else ""
    return ", ".join(names[:-1]) + " and " + names[-1]


_and = and_list


def compare_headline(final: pd.DataFrame, star: Optional[str], label: Callable[[str], str], reference: str) -> str:
    """Compare's headline, from the same paired verdicts as its bullets (paired_differences(...,
    final=True) and winner): who is best, who else beats the reference, who trails it, and where
    the interval contains zero or the seeds are too few. Every curriculum is named once."""
    if not len(final):
        return ""
    by = {v: [label(c) for c in final.loc[final["verdict"] == v, "curriculum"]]
          for v in VERDICTS}
    ref = label(reference)
    if len(by["too few seeds"]) == len(final):
        return f"**No verdict yet**: too few paired seeds against {ref} (need ≥ {MIN_SEEDS})."
    s = lambda names: "s" if len(names) == 1 else ""  # noqa: E731 (verb agreement)
    details = []
    if star is not None and star != reference:
        head = (f"**{label(star)} is best**: the highest final mean among the curricula whose 95 % interval "
                f"against {ref} lies above zero")
        also = [n for n in by["beats"] if n != label(star)]
        if also:
            details.append(f"{_and(also)} also beat{s(also)} {ref} (the curricula are not paired against each other)")
    elif star == reference:
        head = f"**{ref} is best**: every other curriculum's 95 % interval against it lies below zero"
    elif by["trails"]:
        head = f"**No curriculum beats {ref}**"
    else:
        head = f"**No clear winner**: no curriculum's paired interval against {ref} excludes zero"
    if by["trails"] and star != reference:
        details.append(f"{_and(by['trails'])} trail{s(by['trails'])} it (interval below zero)")
    if by["no clear difference"] and (by["trails"] or star is not None):
        details.append(f"{_and(by['no clear difference'])}: no clear difference")
    if by["too few seeds"]:
        details.append(f"{_and(by['too few seeds'])}: too few seeds")
    return head + (": " + "; ".join(details) if details else "") + "."


def verdict_sentence(row: dict, label: Callable[[str], str], reference: str, unit: str = "points",
                     scale: float = 100.0) -> str:
    """'DoCL vs Random: +0.84 points (95 % interval −1.2 to +2.9, 3 seeds): no clear difference.'"""
    name, ref = label(row["curriculum"]), label(reference)
    n = int(row["seeds"])
    head = f"{name} − {ref}: {scale * row['mean']:+.2f} {unit}"
    if row["verdict"] == "too few seeds":
        return (f"{head} with {n} paired seed{'s' if n != 1 else ''}: too few seeds to call a winner "
                f"(need ≥ {MIN_SEEDS}).")
    ci = f"95 % interval {scale * row['lo']:+.2f} to {scale * row['hi']:+.2f}, {n} seeds"
    word = {"beats": f"{name} is better", "trails": f"{name} is worse",
            "no clear difference": "no clear difference"}[row["verdict"]]
    return f"{head} ({ci}): {word}."


def _spans(ts: Sequence[int]) -> str:
    """[1, 2, 3, 7] → '1–3, 7'."""
    out, ts = [], sorted(int(t) for t in ts)
    i = 0
    while i < len(ts):
        j = i
        while j + 1 < len(ts) and ts[j + 1] == ts[j] + 1:
            j += 1
        out.append(f"{ts[i]}" if i == j else f"{ts[i]}–{ts[j]}")  # caller writes the plural
        i = j + 1
    return ", ".join(out)


def lead_sentence(per_round: pd.DataFrame, curriculum: str, label: Callable[[str], str], reference: str,
                  word: str = "round", unit: str = "points", scale: float = 100.0) -> str:
    """Where a curriculum trails and leads the reference over rounds (mean paired difference), e.g.
    'Over rounds, DoCL trails Random in rounds 1–9 (by up to 45.0 points) and leads in rounds 10–11.'"""
    d = per_round[per_round["curriculum"] == curriculum]
    if not len(d):
        return ""
    name, ref = label(curriculum), label(reference)
    behind, ahead = d[d["mean"] < 0], d[d["mean"] > 0]
    parts = []
    def where(d):
        return f"{word}{'s' if len(d) > 1 else ''} {_spans(d['round'])}"
    if len(behind):
        parts.append(f"trails {ref} in {where(behind)} (by up to {scale * -behind['mean'].min():.1f} {unit})")
    if len(ahead):
        parts.append(f"leads in {where(ahead)} (by up to {scale * ahead['mean'].max():.1f} {unit})")
    return f"Over {word}s (mean over paired seeds), {name} " + " and ".join(parts) + "." if parts else ""


DOCS = Path(__file__).resolve().parents[2] / "docs"  # where the study writes RESULTS*.md and .json


def study_answer(dataset: str, label_noise: float, protocol: str, docs: Optional[Path] = None) -> Optional[dict]:
    """The study's setting that asks an experiment's question (same dataset, label noise and
    protocol), from the RESULTS*.json the study writes beside its reports: the main report first,
    then the one with the most seeds. → {report, setting (its JSON entry)} or None."""
    import json
    found = []
    for f in sorted(Path(DOCS if docs is None else docs).glob("RESULTS*.json")):
        try:
            doc = json.loads(f.read_text())
        except (OSError, ValueError):
            continue  # a report being rewritten, or not ours: no answer from it
        for s in doc.get("settings", []):
            if (s.get("dataset") == dataset and s.get("protocol") == protocol
                    and abs(float(s.get("label_noise") or 0) - float(label_noise or 0)) < 1e-9 and s.get("pairs")):
                found.append({"report": doc.get("report", f.with_suffix(".md").name), "setting": s})
    if not found:
        return None
    main_first = lambda a: (a["report"] != "RESULTS.md", -max((a["setting"].get("seeds") or {"": 0}).values()))  # noqa: E731
    return sorted(found, key=main_first)[0]


def study_sentence(answer: Optional[dict], label: Callable[[str], str], epochs: Optional[int], seeds: int,
                   word: str = "epoch") -> str:
    """'This experiment: 16 epochs, 3 seeds. The study asks the same question at 100 epochs over 5
    seeds (docs/RESULTS.md, digits, 20% flipped): DoCL − SGD = +0.21 [−0.40, +0.82] points, no clear
    difference; ...' (the last epoch's student, as the study's first table)."""
    here = f"This experiment: {epochs} {word}s, {seeds} seed{'s' if seeds != 1 else ''}." if epochs else ""
    if not answer:
        return here
    s = answer["setting"]
    pairs = [p for p in s["pairs"] if p["report"] == "last" and p["a"] == "docl" and p["b"] in ("sgd", "random")]
    if not pairs:
        return here
    n = max(p["n"] for p in pairs)
    budget = f"{s['epochs']} {word}s" if s.get("epochs") else "equal gradient steps"
    said = "; ".join(
        f"{label(p['a'])} − {label(p['b'])} = {p['mean']:+.2f} [{p['low']:+.2f}, {p['high']:+.2f}] {s.get('unit', 'points')}"
        f", {p['verdict']}" if p.get("low") is not None else
        f"{label(p['a'])} − {label(p['b'])} = {p['mean']:+.2f} {s.get('unit', 'points')}, {p['verdict']}" for p in pairs)
    return (f"{here} The study asks the same question at {budget} over {n} seeds "
            f"(docs/{answer['report']}, {s['title']}; the last epoch's student, paired by seed): {said}.").strip()
