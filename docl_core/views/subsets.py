"""What S_t holds: a round's selection joined with the dataset, its table, class balance, noise
share, overlaps between curricula, the computed "what was selected" summary, the data map, and the
order of a paper-protocol epoch's subset pass (score and noise share per mini-batch, Spearman ρ)."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import pandas as pd

from ..stats import spearman
from ..store import RunReader, feature_columns

SELECTION_SAMPLE_COLUMNS = ("sample_id", "label", "selected", "score", "score_exact", "loss", "p_true", "output0",
                            "times_selected", "pass_position")
HARDER, EASIER = 0.55, 0.45  # mean percentile of S_t above / below which it is "harder" / "easier"
BALANCED_TV = 0.10           # class shares within this total-variation distance of the training set's: balanced


def selection_frame(reader: RunReader, t: int, dataset: Optional[pd.DataFrame] = None) -> pd.DataFrame:
    """Round t's per-sample frame (sample_id, label, selected, score, loss, ..., and pass_position
    where the run recorded the order of its pass) joined with
    the dataset's clean label, noisy flag, source_row (the sample's row in its file), coordinates
    and, for tabular data, the feature values as read (no thumbnails). A feature named like a
    per-sample column (a CSV column "score") gets " (feature)" appended; runs made before
    source rows were recorded simply lack those columns."""
    df = reader.samples(t, list(SELECTION_SAMPLE_COLUMNS))
    if dataset is not None and len(dataset):
        keep = [c for c in ("sample_id", "clean_label", "noisy", "source_row", "x0", "x1", "target") if c in dataset]
        keep += [c for c in feature_columns(dataset.columns) if c != "thumbnail"]
        train = dataset.loc[dataset["split"] == "train", keep] if "split" in dataset else dataset[keep]
        df = df.merge(train, on="sample_id", how="left", suffixes=("", " (feature)"))
    if "noisy" not in df:
        df["noisy"] = False
    df["noisy"] = df["noisy"].fillna(False).astype(bool)
    return df


def selection_table(sel: pd.DataFrame, class_names: Optional[Sequence[str]] = None,
                    rows: Optional[int] = None) -> pd.DataFrame:
    """The selected samples of a selection_frame, highest score first, for a table: sample_id,
    source_row (the row in the user's file; when recorded), label (a class name; `true label`
    beside it where the given one was flipped), noisy, score, loss, times_selected, then the
    feature values (tabular data). rows caps how many are returned."""
    chosen = sel[sel["selected"].astype(bool)].sort_values(["score", "sample_id"], ascending=[False, True],
                                                           na_position="last")
    if rows is not None:
        chosen = chosen.head(rows)

    def named(v):
        if pd.isna(v):
            return None
        v = int(v)
        return class_names[v] if class_names and 0 <= v < len(class_names) else str(v)
    out = chosen[["sample_id"] + [c for c in ("source_row",) if c in chosen]].copy()
    if "label" in chosen and (chosen["label"] >= 0).any():  # −1: regression, no class label
        out["label"] = chosen["label"].map(named)
        if "clean_label" in chosen and chosen["noisy"].any():
            out["true label"] = [named(c) if n else None for c, n in zip(chosen["clean_label"], chosen["noisy"])]
    for c in ("noisy", "score", "loss", "times_selected"):
        if c in chosen:
            out[c] = chosen[c]
    for c in feature_columns(chosen.columns):
        if c not in SELECTION_SAMPLE_COLUMNS and c != "round":
            out[c] = chosen[c]
    return out.reset_index(drop=True)


def class_balance(sel: pd.DataFrame, class_names: Optional[Sequence[str]] = None) -> pd.DataFrame:
    """Share of each class among the selected samples and in the whole training set (%)."""
    if "label" not in sel or not len(sel):
        return pd.DataFrame(columns=["class", "selected (%)", "all (%)"])
    allc = sel["label"].value_counts(normalize=True)
    selc = sel.loc[sel["selected"].astype(bool), "label"].value_counts(normalize=True)
    labels = sorted(allc.index)
    names = [class_names[int(c)] if class_names and 0 <= int(c) < len(class_names) else str(c) for c in labels]
    return pd.DataFrame({"class": names, "selected (%)": [100 * selc.get(c, 0.0) for c in labels],
                         "all (%)": [100 * allc.get(c, 0.0) for c in labels]})


def noisy_selected_over_time(rounds: pd.DataFrame) -> pd.DataFrame:
    """Share (%) of S_t with noisy labels, per curriculum and round (mean over seeds)."""
    if "noisy_selected" not in rounds or "k" not in rounds or not len(rounds):
        return pd.DataFrame(columns=["curriculum", "round", "noisy share (%)", "noisy selected"])
    df = rounds.assign(share=100 * rounds["noisy_selected"] / rounds["k"].clip(lower=1))
    out = df.groupby(["curriculum", "round"]).agg(share=("share", "mean"),
                                                  count=("noisy_selected", "mean")).reset_index()
    return out.rename(columns={"share": "noisy share (%)", "count": "noisy selected"})


def jaccard_matrix(selected: dict[str, np.ndarray]) -> pd.DataFrame:
    """Pairwise Jaccard overlap |A∩B|/|A∪B| of selected sets, given name → boolean mask (N,)."""
    names = list(selected)
    J = np.eye(len(names))
    for a in range(len(names)):
        for b in range(a + 1, len(names)):
            x, y = selected[names[a]], selected[names[b]]
            n = min(len(x), len(y))
            union = np.logical_or(x[:n], y[:n]).sum()
            J[a, b] = J[b, a] = np.logical_and(x[:n], y[:n]).sum() / union if union else 1.0
    return pd.DataFrame(J, index=names, columns=names)


def _noise_clauses(sel: pd.DataFrame, chosen: pd.DataFrame, noisy_all: pd.Series, base: float, share: float,
                   curriculum: str, kernel: Optional[dict], word: str, out: dict) -> list[str]:
    """subset_summary's flipped-label clauses: S_t's share against chance and, for DoCL, why (fills `out`)."""
    parts: list[str] = []
    k, n = len(chosen), len(sel)
    if base > 0 and k:
        se = np.sqrt(base * (1 - base) / k) * np.sqrt(max(n - k, 0) / max(n - 1, 1))  # finite population
        rel = "above" if share > base + 2 * se else "below" if share < base - 2 * se else "at"
        out["noise_vs_base"] = rel
        verb = {"above": "**more** flipped labels than chance", "below": "**fewer** flipped labels than chance",
                "at": "flipped labels at about the chance rate"}[rel]
        parts.append(f"**{100 * share:.1f} %** of S_t have flipped labels, against **{100 * base:.1f} %** in the "
                     f"whole training set: it takes {verb}.")
        if "score" in sel and sel["score"].notna().any():
            sn = float(sel.loc[noisy_all, "score"].mean())
            sc = float(sel.loc[~noisy_all, "score"].mean())
            out.update(score_noisy=sn, score_clean=sc)
        if kernel is not None and "contributions" in kernel and "probe_ids" in kernel:
            ids = np.asarray(kernel["probe_ids"]).astype(int)
            cii = np.diag(np.asarray(kernel["contributions"], dtype=np.float64))  # (m,)
            flag = dict(zip(sel["sample_id"].astype(int), noisy_all.to_numpy()))
            fl = np.array([bool(flag.get(i, False)) for i in ids])
            if fl.any() and (~fl).any():
                out.update(self_noisy=float(cii[fl].mean()), self_clean=float(cii[~fl].mean()))
        if rel == "above" and curriculum.startswith("docl"):
            why = ("Why: a flipped label keeps a large residual ‖r_i‖ (the network cannot fit it), and a sample's "
                   "own gradient always agrees with itself, so the self term c_ii = r_iᵀ H_ii r_i / m of its "
                   "kernel contributions is large and positive")
            if "self_noisy" in out:
                why += (f" (on the probe set this {word}: mean c_ii {out['self_noisy']:.3g} for flipped labels, "
                        f"{out['self_clean']:.3g} for clean ones)")
            if "score_noisy" in out:
                why += f"; mean score a_i {out['score_noisy']:.3g} flipped against {out['score_clean']:.3g} clean"
            parts.append(why + ".")
        elif rel == "below" and curriculum.startswith("docl") and "score_noisy" in out:
            parts.append(f"Flipped labels score lower here (mean a_i {out['score_noisy']:.3g} against "
                         f"{out['score_clean']:.3g} for clean ones): the network does not move them.")
    return parts


def _class_clauses(sel: pd.DataFrame, chosen: pd.DataFrame, class_names: Optional[Sequence[str]], out: dict) -> list[str]:
    """subset_summary's class clauses: the most and least represented class, the total-variation distance."""
    parts: list[str] = []
    k = len(chosen)
    if "label" in sel and k and sel["label"].nunique() > 1:
        shares = chosen["label"].value_counts(normalize=True).reindex(sorted(sel["label"].unique()), fill_value=0.0)
        uniform = 1.0 / len(shares)

        def cname(c):
            return class_names[int(c)] if class_names and 0 <= int(c) < len(class_names) else str(c)
        top, low = shares.idxmax(), shares.idxmin()
        out.update(top_class=cname(top), top_share=float(shares[top]), low_class=cname(low),
                   low_share=float(shares[low]), uniform=uniform)
        parts.append(f"Classes: the most represented, **{cname(top)}**, is {100 * shares[top]:.0f} % of S_t and the "
                     f"least, **{cname(low)}**, {100 * shares[low]:.0f} %, against {100 * uniform:.0f} % each if "
                     "balanced.")
    if "label" in sel and k and sel["label"].nunique() > 1:
        base_shares = sel["label"].value_counts(normalize=True)
        sel_shares = chosen["label"].value_counts(normalize=True).reindex(base_shares.index, fill_value=0.0)
        tv = 0.5 * float((sel_shares - base_shares).abs().sum())
        out["class_tv"] = tv
        parts.append(f"Class balance: S_t's class shares are at total-variation distance **{tv:.2f}** from the "
                     f"training set's: {'balanced' if tv < BALANCED_TV else 'skewed'} (balanced below "
                     f"{BALANCED_TV:.2f}).")
    return parts


def _percentile_clauses(sel: pd.DataFrame, chosen: pd.DataFrame, out: dict) -> list[str]:
    """subset_summary's hardness clauses: S_t's mean percentile of the loss and of the exact score."""
    parts: list[str] = []
    k = len(chosen)
    for col, what, high, low in (("loss", "loss", "harder", "easier"),
                                 ("score_exact", "exact score a_i = r_i·v_i", "nearer the learning frontier",
                                  "further from the learning frontier")):
        if not k or col not in sel or not sel[col].notna().all():
            continue
        pct = sel[col].rank(pct=True)                      # each sample's percentile among all N
        mean_pct = float(pct[sel["selected"].astype(bool)].mean())
        out[f"{col}_percentile"] = mean_pct
        word = high if mean_pct > HARDER else low if mean_pct < EASIER else "about average"
        extra = (f"; mean loss **{float(chosen['loss'].mean()):.3f}** against **{float(sel['loss'].mean()):.3f}**"
                 if col == "loss" else "")
        if col == "loss":
            out.update(loss_sel=float(chosen["loss"].mean()), loss_all=float(sel["loss"].mean()))
        verdict = "**about average**" if word == "about average" else f"**{word}** than the training set"
        parts.append(f"By {what}: S_t's mean percentile among all samples is **{100 * mean_pct:.1f}**{extra}: "
                     f"{verdict} (the rule: above {100 * HARDER:.0f}, {high}; below {100 * EASIER:.0f}, {low}).")
    return parts


def subset_summary(sel: pd.DataFrame, curriculum: str = "", class_names: Optional[Sequence[str]] = None,
                   kernel: Optional[dict] = None, word: str = "round") -> dict:
    """What S_t holds this round, measured: numbers and one paragraph that states them.

    sel: selection_frame (sample_id, label, selected, loss, noisy, score). kernel: that round's
    kernel npz (optional): the self term c_ii = r_iᵀ H_ii r_i / m of flipped vs clean probe samples.
    Returns k, n, noisy_share, base_rate (fractions), noise_vs_base ("above" / "below" / "at"),
    top_class, top_share, low_class, low_share, uniform, loss_sel, loss_all, score_noisy,
    score_clean, self_noisy, self_clean and `sentence` (markdown).
    """
    chosen = sel[sel["selected"].astype(bool)]
    k, n = len(chosen), len(sel)
    out: dict = {"k": k, "n": n}
    parts = [f"S_t holds **{k:,} of {n:,}** samples ({100 * k / max(n, 1):.0f} % of N) this {word}."]
    noisy_all = sel["noisy"].astype(bool) if "noisy" in sel else pd.Series(False, index=sel.index)
    base = float(noisy_all.mean()) if n else 0.0
    share = float(chosen["noisy"].astype(bool).mean()) if k and "noisy" in chosen else 0.0
    out.update(noisy_share=share, base_rate=base, noisy_count=int(chosen["noisy"].sum()) if k else 0)
    parts += _noise_clauses(sel, chosen, noisy_all, base, share, curriculum, kernel, word, out)
    parts += _class_clauses(sel, chosen, class_names, out)
    parts += _percentile_clauses(sel, chosen, out)
    out["parts"] = parts
    out["sentence"] = " ".join(parts)
    return out


PASS_ORDER_COLUMNS = ("batch", "first_position", "n", "score_mean", "score_q25", "score_q75", "noisy_share")
# what each paper-protocol `order` means, in plain words (config key "order"; docl_core.config.ORDERS)
ORDER_WORDS = {"draw": "trained in the selection's own order (the weighted draw's, then the survivors of the "
                       "prune as it leaves them: how far high scores come first is what ρ measures)",
               "shuffle": "shuffled: a fresh random order",
               "reversed": "reversed: the draw reversed"}


def _in_pass(sel: pd.DataFrame) -> pd.DataFrame:
    """The rows of sel in the pass (pass_position ≥ 0), by position; empty without the column."""
    if "pass_position" not in sel or not len(sel):
        return sel.iloc[:0]
    pos = pd.to_numeric(sel["pass_position"], errors="coerce")
    return sel[pos.notna() & (pos >= 0)].sort_values("pass_position", kind="stable")


def pass_order(sel: pd.DataFrame, batch_size: int, score: str = "score") -> pd.DataFrame:
    """Round t's subset pass, one row per mini-batch in the order trained.

    sel: a selection_frame (one row per training sample) with `pass_position` (int: the sample's
    0-based position in the pass, −1 outside it), `score` (the score that drove selection) and
    optionally `noisy` (bool: flipped label). batch_size: samples per mini-batch (the run's config
    `batch_size`); mini-batch b holds positions [b·batch_size, (b+1)·batch_size), so the last one
    is short when batch_size does not divide k.

    Returns (B, 7), B = number of mini-batches with a sample: batch (int, 0-based index along the
    pass = position // batch_size), first_position (int, its smallest position), n (int, samples
    in it), score_mean, score_q25, score_q75 (the mean and the 25th / 75th percentiles, linear
    interpolation, of the score over the batch, in the score's own units; NaN scores left out,
    NaN if none), noisy_share (fraction 0–1 of the batch with a flipped label; NaN without a
    `noisy` column). Empty (with these columns) when sel has no pass_position column or no
    sample in the pass (old runs, the steps protocol).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be ≥ 1, got {batch_size}")
    rows = _in_pass(sel)
    if not len(rows):
        return pd.DataFrame({c: pd.Series(dtype="int64" if c in ("batch", "first_position", "n") else "float64")
                             for c in PASS_ORDER_COLUMNS})
    pos = rows["pass_position"].to_numpy(np.int64)
    vals = (pd.to_numeric(rows[score], errors="coerce") if score in rows
            else pd.Series(np.nan, index=rows.index)).to_numpy(np.float64)
    df = pd.DataFrame({"batch": pos // int(batch_size), "position": pos, "score": vals})
    if "noisy" in rows:
        df["noisy"] = rows["noisy"].fillna(False).astype(bool).to_numpy().astype(np.float64)
    g = df.groupby("batch", sort=True)
    out = pd.DataFrame({"first_position": g["position"].min(), "n": g["position"].size(),
                        "score_mean": g["score"].mean(), "score_q25": g["score"].quantile(0.25),
                        "score_q75": g["score"].quantile(0.75),
                        "noisy_share": g["noisy"].mean() if "noisy" in df else np.nan}).reset_index()
    out[["batch", "first_position", "n"]] = out[["batch", "first_position", "n"]].astype("int64")
    out["noisy_share"] = out["noisy_share"].astype("float64")
    return out[list(PASS_ORDER_COLUMNS)]


def pass_order_rho(sel: pd.DataFrame, score: str = "score") -> float:
    """Spearman's rank correlation (−1 … 1) between a sample's position in the pass and its score,
    over the samples in the pass (pass_position ≥ 0) with a score: the Pearson correlation of their
    tie-aware ranks (docl_core.stats.spearman). Negative: high scores come early in the pass.
    NaN with fewer than 3 such samples, without a pass_position or score column, or when all
    scores (or positions) are equal."""
    rows = _in_pass(sel)
    if score not in rows or "pass_position" not in rows:
        return float("nan")
    vals = pd.to_numeric(rows[score], errors="coerce")
    return spearman(rows["pass_position"], vals)  # NaN below 3 scored samples or a constant score


def pass_order_name(meta: dict) -> Optional[str]:
    """A paper-protocol run's order of its subset passes ("draw", "shuffle" or "reversed", config
    key "order"; names.run_order): runs made before the order was a choice shuffled every pass.
    None for steps-protocol runs (no subset pass)."""
    from ..names import run_order
    return run_order((meta or {}).get("config") or {})


def pass_order_caption(order: Optional[str], rho: float, n: int, word: str = "epoch", t: Optional[int] = None,
                       batch_size: Optional[int] = None, noise: Optional[str] = None) -> str:
    """The caption of the "Order of the pass" chart: the run's order in plain words and the computed
    Spearman ρ between position and score (rho from pass_order_rho, over n samples in the pass).
    ρ is called a trend only beyond two standard errors of zero (1/√(n−1) under no relation).
    noise: what the bars show ("flipped labels", "corrupted targets"); None: no bars drawn."""
    how = ORDER_WORDS.get(order or "", f"trained in its recorded order ({order})" if order else
                          "trained in an order the run did not name")
    where = f" in {word} {t}" if t is not None else ""
    if np.isfinite(rho) and n >= 3:
        clear = abs(rho) > 2 / np.sqrt(n - 1)
        trend = ("high scores clearly come earlier" if clear and rho < 0 else
                 "high scores clearly come later" if clear else "no clear trend (within two standard errors of 0)")
        rho_text = (f"Spearman's rank correlation between position in the pass and score over its "
                    f"{n:,} samples{where}: **ρ = {rho:+.2f}** (negative: high scores first): {trend}.")
    else:
        rho_text = (f"Spearman's rank correlation between position and score{where} is undefined "
                    "(fewer than 3 samples in the pass, or all scores equal).")
    batch = f"one mini-batch of {batch_size} samples" if batch_size else "one mini-batch"
    what = (f"Each point is {batch}, in the order trained: the line is its mean score, the band the middle "
            "half of its scores (25th–75th percentile)" + (f", the bars (right panel) its share of {noise}." if noise
                                                            else "."))
    return f"Order: **{how}**. {what} {rho_text}"


def data_map(p_true: np.ndarray, correct: Optional[np.ndarray] = None,
             times_selected: Optional[np.ndarray] = None, noisy: Optional[np.ndarray] = None) -> pd.DataFrame:
    """Dataset cartography (Swayamdipta et al. 2020) from per-round p_true (R, N).

    confidence: mean of p_true over rounds; variability: its std; correctness: share of rounds
    the sample was predicted right. Columns: sample_id, confidence, variability, correctness,
    times_selected, noisy, region (easy-to-learn / ambiguous / hard-to-learn).
    """
    R, N = p_true.shape
    with np.errstate(invalid="ignore"):
        conf = np.nanmean(p_true, axis=0) if R else np.full(N, np.nan)
        var = np.nanstd(p_true, axis=0) if R else np.full(N, np.nan)
        corr = np.nanmean(correct, axis=0) if correct is not None and correct.size else np.full(N, np.nan)
    df = pd.DataFrame({"sample_id": np.arange(N), "confidence": conf, "variability": var,
                       "correctness": corr,
                       "times_selected": times_selected if times_selected is not None else np.nan,
                       "noisy": noisy.astype(bool) if noisy is not None else False})
    region = np.where(var >= np.nanquantile(var, 0.67) if N else var, "ambiguous",
                      np.where(conf >= 0.5, "easy-to-learn", "hard-to-learn"))
    df["region"] = region
    return df


def downsample_rows(df: pd.DataFrame, max_rows: int, keep: Optional[pd.Series] = None,
                    seed: int = 0, groups: Optional[pd.Series] = None) -> pd.DataFrame:
    """At most max_rows rows, uniformly at random (fixed seed), always keeping rows where `keep`
    is true (e.g. noisy samples) up to half the budget. With `groups` (a label per row, e.g. selected ×
    flipped label) the budget is shared instead: a group no larger than an equal share of it is drawn
    whole, the larger groups split the rest in proportion to their sizes, so no group vanishes from a
    large run's scatter however small it is."""
    if len(df) <= max_rows:
        return df
    rng = np.random.default_rng(seed)
    if groups is not None:
        return df.iloc[_stratified(pd.Series(groups).to_numpy(), max_rows, rng)]
    must = np.flatnonzero(keep.to_numpy()) if keep is not None else np.array([], dtype=int)
    if len(must) > max_rows // 2:
        must = rng.choice(must, max_rows // 2, replace=False)
    rest = np.setdiff1d(np.arange(len(df)), must, assume_unique=False)
    pick = rng.choice(rest, max_rows - len(must), replace=False)
    return df.iloc[np.sort(np.concatenate([must, pick]))]


def _stratified(labels: np.ndarray, budget: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted row positions: small groups whole, the budget left split by size among the others."""
    _, inverse, sizes = np.unique(labels, return_inverse=True, return_counts=True)
    take = np.zeros(len(sizes), dtype=np.int64)
    open_ = np.ones(len(sizes), dtype=bool)
    left = budget
    while open_.any():  # groups that fit an equal share of what is left are drawn whole
        share = left // int(open_.sum())
        small = open_ & (sizes <= share)
        if not small.any():
            break
        take[small] = sizes[small]
        left -= int(sizes[small].sum())
        open_ &= ~small
    if open_.any():
        big = np.flatnonzero(open_)
        quota = np.floor(left * sizes[big] / sizes[big].sum()).astype(np.int64)
        quota[np.argsort(-sizes[big])[:left - int(quota.sum())]] += 1  # the remainder, largest first
        take[big] = np.minimum(quota, sizes[big])
    rows = [rng.choice(np.flatnonzero(inverse == g), take[g], replace=False) for g in range(len(sizes)) if take[g]]
    return np.sort(np.concatenate(rows)) if rows else np.array([], dtype=np.int64)
