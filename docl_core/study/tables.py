"""From run folders to the numbers of the report: final accuracies, paired differences,
convergence, computation, noisy-label shares, ablations and the byproduct's fidelity.

Everything here reads run folders only (rounds.parquet, samples frames), so a report can be
regenerated from a finished study without training anything.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..names import arm_of
from .stats import convergence, paired, share_vs_base
from .suites import Setting, Suite


def read_rounds(folder: Path, arms: bool = False) -> pd.DataFrame:
    """All rounds of the complete runs in a folder (empty frame when there are none). arms: the
    `curriculum` column names the arm from the folder name (<arm>-s<seed>: `docl-none` is DoCL's
    recipe without its score, `sgd-decay` our decayed-α baseline; suites.ARMS)."""
    from ..store import ExperimentReader, RunStoreError
    try:
        exp = ExperimentReader(folder)
    except RunStoreError:
        return pd.DataFrame(columns=["run", "curriculum", "seed", "round"])
    ok = {r.dir.name for r in exp.runs if r.status == "complete"}
    df = exp.rounds()
    df = df[df["run"].isin(ok)].copy()
    if arms and len(df):
        df["curriculum"] = df["run"].map(arm_of)
    if "epoch" not in df:
        df["epoch"] = df["round"]
    return df


def failed_runs(folder: Path, running: bool = False) -> list[str]:
    """Runs that ended without completing (failed, interrupted); running=True: those still running."""
    from ..store import ExperimentReader, RunStoreError
    try:
        runs = ExperimentReader(folder).runs
    except RunStoreError:
        return []
    return sorted(r.dir.name for r in runs if r.status != "complete" and (r.status == "running") == running)


def finals(rounds: pd.DataFrame) -> pd.DataFrame:
    return rounds.sort_values("round").groupby("run").tail(1).reset_index(drop=True)


def metric(rounds: pd.DataFrame) -> tuple[str, bool, float]:
    """(column, higher is better, scale to report) of the test metric."""
    if "test_acc" in rounds and rounds["test_acc"].notna().any():
        return "test_acc", True, 100.0
    return "test_mse", False, 1.0


def wide(final: pd.DataFrame, col: str, scale: float, by: str = "curriculum") -> pd.DataFrame:
    """seed × arm frame of a final metric."""
    return final.pivot_table(index="seed", columns=by, values=col) * scale


def summary(final: pd.DataFrame, curricula, col: str, scale: float) -> dict:
    """{curriculum: (mean, std, n)} of the final metric."""
    out = {}
    for c in curricula:
        v = final.loc[final["curriculum"] == c, col].to_numpy(float) * scale
        out[c] = (float(v.mean()) if len(v) else np.nan, float(v.std(ddof=1)) if len(v) > 1 else np.nan, len(v))
    return out


def differences(final: pd.DataFrame, curricula, against, col: str, scale: float, higher: bool) -> dict:
    """{(curriculum, baseline): paired result} for every curriculum against each baseline."""
    return pairs(final, [(c, b) for b in against for c in curricula if c != b], col, scale, higher)


def check_equal_steps(final: pd.DataFrame, name: str) -> int:
    """Every run of a steps setting ends at the same cumulative step count (it is the protocol's promise)."""
    per_run = final["steps"].astype(int)
    if per_run.nunique() != 1:
        raise AssertionError(f"{name}: runs took different numbers of gradient steps: "
                             + ", ".join(f"{r}={s}" for r, s in zip(final["run"], per_run)))
    return int(per_run.iloc[0])


def computation(rounds: pd.DataFrame, curricula) -> pd.DataFrame:
    """Per curriculum, means over seeds: samples seen (× N), the curriculum's own time (training,
    selection, episode starts) and the whole wall time of its rounds (logging measurements included)."""
    rows = []
    for c in curricula:
        sub = rounds[rounds["curriculum"] == c]
        if not len(sub):
            continue
        own = [col for col in ("train_time_s", "select_time_s", "episode_time_s") if col in sub]
        per_run = sub.groupby("run").agg(seen=("epoch_equiv", "max"), steps=("steps", "max"),
                                         wall=("round_time_s", "sum"))
        per_run["own"] = sub.groupby("run")[own].sum().sum(axis=1)
        rows.append({"curriculum": c, "seen": per_run["seen"].mean(), "steps": per_run["steps"].mean(),
                     "own_s": per_run["own"].mean(), "wall_s": per_run["wall"].mean(), "n": len(per_run)})
    return pd.DataFrame(rows)


def noisy_shares(rounds: pd.DataFrame, curricula) -> dict:
    """{curriculum: share_vs_base}: flipped labels among the selected (epochs that select k < N),
    against the training set's share (the warm start's, or the first round's at k = N), by seed."""
    if "noisy_selected" not in rounds or not (rounds["noisy_selected"] > 0).any():
        return {}
    n = rounds["k"].max()
    full = rounds[rounds["k"] == n]
    base = (full.groupby("seed")["noisy_selected"].first() / n)
    out = {}
    for c in curricula:
        part = rounds[(rounds["curriculum"] == c) & (rounds["k"] < n)]
        if not len(part):
            continue
        g = part.groupby("seed")
        share = g["noisy_selected"].sum() / g["k"].sum()
        out[c] = share_vs_base(share, base.reindex(share.index))
    return out


def sgd_convergence(rounds: pd.DataFrame, curriculum: str = "sgd") -> dict:
    sub = rounds[rounds["curriculum"] == curriculum]
    return convergence(sub[["seed", "epoch", "test_acc"]]) if len(sub) and "test_acc" in sub else {}


def ablation(suite: Suite, out: Path, s: Setting, variants, curricula, main_final: pd.DataFrame) -> dict:
    """Final test accuracy of each curriculum × variant, its paired difference to the same
    curriculum's full recipe, and DoCL − Random under each variant."""
    r = read_rounds(out / "ablation" / s.name)
    f = finals(r) if len(r) else r
    if not len(main_final) or "test_acc" not in main_final:  # a partial study: no report runs yet
        main_final = pd.DataFrame(columns=["run", "curriculum", "seed", "test_acc", "epoch_equiv"])
    if len(f):
        f["variant"] = [arm_of(run)[len(c) + 1:] for run, c in zip(f["run"], f["curriculum"])]
    full = main_final[main_final["curriculum"].isin(curricula)].assign(variant="full recipe")
    both = pd.concat([full, f], ignore_index=True) if len(f) else full
    rows, vs_random = [], {}
    for v in ["full recipe", *variants]:
        for c in curricula:
            sub = both[(both["curriculum"] == c) & (both["variant"] == v)]
            if not len(sub):
                continue
            acc = sub.set_index("seed")["test_acc"] * 100
            ref = full[full["curriculum"] == c].set_index("seed")["test_acc"] * 100
            d = paired(pd.DataFrame({"v": acc, "full": ref}), "v", "full") if v != "full recipe" else {}
            rows.append({"variant": v, "curriculum": c, "mean": acc.mean(), "std": acc.std(ddof=1), "n": len(acc),
                         "seen": sub["epoch_equiv"].mean(), "diff": d})
        a = both[(both["variant"] == v) & (both["curriculum"] == "docl")].set_index("seed")["test_acc"] * 100
        b = both[(both["variant"].isin([v] if v != "no-centrality" else ["full recipe"]))
                 & (both["curriculum"] == "random")].set_index("seed")["test_acc"] * 100
        if len(a) and len(b):
            vs_random[v] = {**paired(pd.DataFrame({"docl": a, "random": b}), "docl", "random"), "higher": True}
    return {"rows": rows, "vs_random": vs_random}


def fidelity_frames(suite: Suite, out: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-epoch fidelity of the report's DoCL/DoCL-NR runs at episode starts, per setting;
    per-epoch fidelity of the dedicated runs, with a `variant` and a `group` column)."""
    from ..fidelity import experiment_fidelity
    main = []
    for s in suite.by_protocol("paper"):
        if (out / s.name).is_dir():
            runs = [p.name for p in (out / s.name).iterdir() if p.name.startswith(("docl-s", "docl-nr-s"))]
            f = experiment_fidelity(out / s.name, runs=runs) if runs else pd.DataFrame()
            if len(f):
                main.append(f.assign(setting=s.name))
    ded = []
    for fr in suite.fidelity:
        folder = out / "fidelity" / fr.setting
        if folder.is_dir():
            f = experiment_fidelity(folder)
            if len(f):
                f = f[f["protocol"] == fr.protocol]
                f = f.assign(setting=fr.setting,
                             variant=[arm_of(r)[len(c) + 1:] for r, c in zip(f["run"], f["curriculum"])])
                ded.append(f.assign(group=[f"{suite.setting(fr.setting).title} ({fr.protocol}): {v}"
                                           for v in f["variant"]]))
    cat = lambda xs: pd.concat(xs, ignore_index=True) if xs else pd.DataFrame()  # noqa: E731
    return cat(main), cat(ded).drop_duplicates(["setting", "run", "round"]) if ded else pd.DataFrame()


def class_balance(folder: Path, rounds: pd.DataFrame, curricula) -> dict:
    """{curriculum: (largest class's share of the last epoch's subset, total-variation distance between
    that subset's class histogram and the training set's)}, means over seeds (given labels)."""
    out = {}
    last = rounds.sort_values("round").groupby("run").tail(1)
    for c in curricula:
        top, tv = [], []
        for run, t in last.loc[last["curriculum"] == c, ["run", "round"]].itertuples(index=False):
            f = folder / run / "samples" / f"round={int(t):04d}.parquet"
            if not f.exists():
                continue
            df = pd.read_parquet(f, columns=["label", "selected"])
            base = df["label"].value_counts(normalize=True)
            share = df.loc[df["selected"], "label"].value_counts(normalize=True)
            if len(share):
                top.append(float(share.max()))
                tv.append(0.5 * float(share.reindex(base.index, fill_value=0).sub(base).abs().sum()))
        if top:
            out[c] = (float(np.mean(top)), float(np.mean(tv)))
    return out


def with_best(final: pd.DataFrame, rounds: pd.DataFrame) -> pd.DataFrame:
    """Finals with `best_acc`: the best epoch of max(student, teacher) test accuracy, the authors'
    report (the last epoch's student, `test_acc`, is ours)."""
    if not len(final) or "test_acc" not in rounds:
        return final
    from ..store import best_of_student_and_teacher
    best = best_of_student_and_teacher(rounds, "test").groupby(rounds["run"]).max()
    return final.assign(best_acc=final["run"].map(best))


def sampling_spread(rounds: pd.DataFrame, arm: str) -> dict:
    """Medians over an arm's selecting epochs of max/min p and of the effective sample count 1/Σp²
    as a share of N: how far the recipe's draw is from uniform (ratio 1 and share 1: uniform)."""
    sub = rounds[rounds["curriculum"] == arm]
    if "sampling_p_ratio" not in sub or not sub["sampling_p_ratio"].notna().any():
        return {}
    sel = sub[sub["sampling_p_ratio"].notna()]
    n = float(rounds["k"].max())
    return {"ratio": float(sel["sampling_p_ratio"].median()), "ratio_max": float(sel["sampling_p_ratio"].max()),
            "ess": float((sel["sampling_ess"] / n).median()), "epochs": len(sel)}


def selection_percentiles(folder: Path, rounds: pd.DataFrame, curricula) -> dict:
    """{curriculum: {"loss": mean percentile of S_t's losses among all N, "exact": the same for the exact
    score where it was logged, "epochs": frames read}} over the selecting epochs (k < N) of every seed:
    50 is the training set's middle; above 50, S_t is harder (higher loss, higher a_t) than the set."""
    out = {}
    n = rounds["k"].max() if len(rounds) else 0
    for c in curricula:
        part = rounds[(rounds["curriculum"] == c) & (rounds["k"] < n)]
        acc = {"loss": [], "exact": []}
        for run, t in part[["run", "round"]].itertuples(index=False):
            f = folder / run / "samples" / f"round={int(t):04d}.parquet"
            if not f.exists():
                continue
            df = pd.read_parquet(f)
            if "selected" not in df or not df["selected"].any():
                continue
            for key, col in (("loss", "loss"), ("exact", "score_exact")):
                if col in df and df[col].notna().all() and df[col].nunique() > 1:
                    pct = df[col].rank(pct=True) * 100
                    acc[key].append(float(pct[df["selected"]].mean()))
        if acc["loss"]:
            out[c] = {"loss": float(np.mean(acc["loss"])),
                      "exact": float(np.mean(acc["exact"])) if acc["exact"] else float("nan"),
                      "epochs": len(acc["loss"]), "exact_epochs": len(acc["exact"])}
    return out


def at_equal_samples(rounds: pd.DataFrame, a: str = "docl", b: str = "sgd") -> pd.DataFrame:
    """seed × {a, b} frame: a's last-epoch test accuracy and b's at the first epoch where b had seen
    as many samples as a saw in its whole run (b's accuracy at a's budget of samples)."""
    rows = {}
    for seed, g in rounds[rounds["curriculum"] == a].groupby("seed"):
        g = g.sort_values("round")
        seen, acc = float(g["samples_seen"].iloc[-1]), float(g["test_acc"].iloc[-1])
        h = rounds[(rounds["curriculum"] == b) & (rounds["seed"] == seed)].sort_values("round")
        reach = h[h["samples_seen"] >= seen]
        if len(reach):
            rows[seed] = {a: acc * 100, b: float(reach["test_acc"].iloc[0]) * 100,
                          "epoch": int(reach["epoch"].iloc[0])}
    return pd.DataFrame.from_dict(rows, orient="index")


def resemblance(folder: Path, rounds: pd.DataFrame, arm: str = "docl") -> pd.DataFrame:
    """At an arm's episode starts (the epochs with a full pass), per run and epoch: the Spearman ρ of
    the score that drove the selection with every other logged score, and the score whose top or
    bottom k overlaps the selected set most (docl_core.atlas.selection_resemblance)."""
    from ..atlas import AtlasError, selection_resemblance
    starts = rounds[(rounds["curriculum"] == arm) & rounds.get("full_pass", pd.Series(False, index=rounds.index))
                    .fillna(False).astype(bool)]
    frames = []
    for run, g in starts.groupby("run"):
        try:
            r = selection_resemblance(folder / run)
        except (AtlasError, OSError, ValueError):
            continue
        if len(r):
            frames.append(r[r["round"].isin(set(g["round"]))].assign(run=run))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def pairs(final: pd.DataFrame, pairs_wanted, col: str, scale: float, higher: bool = True) -> dict:
    """{(a, b): paired result} of a − b for the arm pairs given (those with runs on both sides)."""
    w = wide(final, col, scale) if len(final) else pd.DataFrame()
    return {(a, b): {**paired(w, a, b, higher), "higher": higher} for a, b in pairs_wanted
            if a in w and b in w}


def pass_profile(folder: Path, rounds: pd.DataFrame, arms, noisy: pd.Series) -> pd.DataFrame:
    """Per run of the given arms, over its epochs after the warm start that recorded a pass (a
    subset pass, or an ordered sgd epoch): the flipped-label share of the pass's first and last quarter (%) and the
    Spearman correlation of position in the pass with the driving score. noisy: (N,) bool by sample id.
    → one row per run: arm, seed, first_noisy, last_noisy, rho, epochs."""
    rows = []
    flips = noisy.to_numpy(bool)
    from ..views import pass_order_rho
    rounds = rounds[rounds["curriculum"].isin(arms)]
    if "episode" in rounds:  # the warm start's pass is a shuffle of all N, not a selection's order
        rounds = rounds[rounds["episode"] > 0]
    for (run, arm, seed), part in rounds.groupby(["run", "curriculum", "seed"]):
        first, last, rho = [], [], []
        for t in part["round"]:
            f = folder / run / "samples" / f"round={int(t):04d}.parquet"
            if not f.exists():
                continue
            try:
                df = pd.read_parquet(f, columns=["sample_id", "score", "pass_position"])
            except (KeyError, ValueError, OSError):  # a run from before the order was recorded
                continue
            inside = df[df["pass_position"] >= 0].sort_values("pass_position")
            m = len(inside)
            if m < 8:
                continue
            q = m // 4
            ids = inside["sample_id"].to_numpy()
            first.append(flips[ids[:q]].mean() * 100)
            last.append(flips[ids[-q:]].mean() * 100)
            r = pass_order_rho(inside)  # NaN for a constant score (no score at all)
            if np.isfinite(r):
                rho.append(r)
        if first:
            rows.append({"run": run, "arm": arm, "seed": seed, "first_noisy": float(np.mean(first)),
                         "last_noisy": float(np.mean(last)), "rho": float(np.mean(rho)) if rho else np.nan,
                         "epochs": len(first)})
    return pd.DataFrame(rows, columns=["run", "arm", "seed", "first_noisy", "last_noisy", "rho", "epochs"])
