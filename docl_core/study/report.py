"""Writes RESULTS.md (and the figures) from a suite's run folders alone.

Sections: at a glance (computed sentences), the paper-protocol table, paired differences against
SGD and against Random, SGD's convergence, accuracy against epochs and samples seen, computation,
noisy labels, ablations of the recipe, the byproduct's fidelity, the steps-protocol table, tuning,
the seed's Table 1 for scale, and how it was made.
"""
from __future__ import annotations

import os
import platform
from collections import Counter
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from . import figures, reading, tables
from .. import table1
from ..names import arm_of
from ..stats import paired_ci
from ..views import and_list
from .reading import interval
from .suites import Suite, knob_tag

DOCS_DIR = Path(__file__).resolve().parent.parent.parent / "docs"

L_ = figures.label


def _cell(r: dict, bold_if_beats: bool = True) -> str:
    if not r or not r.get("n"):
        return "—"
    text = f"{interval(r)} ({r['wins']}/{r['n']})"
    v = reading.verdict(r["low"], r["high"], r.get("higher", True), r["n"])
    return f"**{text}**" if v == "beats" else (f"*{text}*" if v == "trails" else text)


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _versions() -> str:
    import importlib.metadata as md
    parts = [f"Python {platform.python_version()}"]
    for pkg in ("torch", "numpy", "pandas", "plotly", "kaleido", "mnist1d"):
        try:
            parts.append(f"{pkg} {md.version(pkg)}")
        except md.PackageNotFoundError:
            pass
    return ", ".join(parts)


def run_times(out: Path) -> dict:
    """Wall time from the runs' run.json created/updated stamps (so a regenerated report still says what they cost)."""
    import json
    spans = []
    for f in out.rglob("run.json"):
        try:
            m = json.loads(f.read_text())
            spans.append((float(m["created"]), float(m["updated"])))
        except (OSError, ValueError, KeyError, TypeError):
            pass
    if not spans:
        return {}
    return {"wall_s": max(u for _, u in spans) - min(c for c, _ in spans), "run_s": [u - c for c, u in spans],
            "n": len(spans)}


def write_report(suite: Suite, out: Path, docs: Path, chosen: dict, cand: pd.DataFrame, timing: dict,
                 command: str, missing: Optional[list] = None, out_root: Optional[Path] = None) -> Path:
    prefix = "study" if suite.results_name == "RESULTS.md" else f"study-{suite.name}"
    fig_errors: list[str] = []

    def figure(fig, name, w, h):
        path = docs / f"{prefix}_{name}.png"
        err = figures.save(fig, path, w, h)
        if err:
            fig_errors.append(f"{path.name}: {err}")
            return None
        return path.name

    paper_settings, steps_settings = suite.by_protocol("paper"), suite.by_protocol("steps")
    D = read_settings(suite, out)
    fid_main, fid = tables.fidelity_frames(suite, out)
    median_rho = {s.name: float(fid_main.loc[(fid_main.setting == s.name) & (fid_main.curriculum == "docl"),
                                             "spearman_all"].median()) if len(fid_main) else np.nan
                  for s in paper_settings}
    L = _header(suite, paper_settings, steps_settings, command, missing, Path(out_root or out))
    L += _glance(paper_settings, D, median_rho)
    if paper_settings:
        cur = suite.curricula["paper"]
        L += _paper_tables(suite, paper_settings, D)
        L += commands_section(suite, paper_settings, chosen, out)
        L += order_section(paper_settings, D, out)
        L += budget_section(suite, paper_settings, D, figure)
        L += score_section(paper_settings, D)
        L += resemblance_section(paper_settings, D, out)
        L += _convergence_section(paper_settings, D, figure)
        L += _curves_section(paper_settings, D, cur, figure)
        L += _computation_section(paper_settings, D, cur)
        L += _noisy_section(paper_settings, D, cur)
        L += _balance_section(paper_settings, D, cur, out)
        L += _hardness_section(paper_settings, D, cur, out)
    L += _ablation_section(suite, D, out)
    L += fidelity_section(suite, fid_main, fid, median_rho, figure)
    L += _steps_section(suite, steps_settings, D)
    L += _tuning_section(suite, chosen, cand)
    L += _table1_section()
    L += _made_section(out, command, timing, fig_errors)
    path = docs / (suite.results_name or f"RESULTS-{suite.name}.md")
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text("\n".join(L) + "\n")
    tmp.replace(path)
    write_verdicts(suite, D, path)
    return path


def read_settings(suite: Suite, out: Path) -> dict:
    """Per setting name: its rounds, final rows, metric, summaries and paired differences under
    both reports (last epoch's student; best epoch of max(student, teacher)), failed and running runs."""
    D = {}
    for s in suite.settings:
        r = tables.read_rounds(out / s.name, arms=True)
        f = tables.with_best(tables.finals(r), r) if len(r) else r
        col, higher, scale = tables.metric(r) if len(r) else ("test_acc", True, 100.0)
        cur = suite.curricula_of(s)
        bases = [b for b in ("sgd", "random", "docl-none") if b in cur]
        best = "best_acc" in f and s.protocol == "paper"
        D[s.name] = {"rounds": r, "final": f, "col": col, "higher": higher, "scale": scale, "curricula": cur,
                     "stats": tables.summary(f, cur, col, scale) if len(f) else {},
                     "diffs": tables.differences(f, cur, bases, col, scale, higher) if len(f) else {},
                     "stats_best": tables.summary(f, cur, "best_acc", 100.0) if best else {},
                     "diffs_best": tables.differences(f, cur, bases, "best_acc", 100.0, True) if best else {},
                     "failed": tables.failed_runs(out / s.name),
                     "running": tables.failed_runs(out / s.name, running=True)}
    return D




def _header(suite: Suite, paper_settings, steps_settings, command: str, missing: Optional[list],
            out: Path) -> list[str]:
    """The title, the generated-by line, what each protocol is, a partial suite's note and how it was tuned."""
    arms = list(dict.fromkeys(c for st in suite.settings for c in suite.curricula_of(st)))
    from .suites import TUNED_AS
    ordered = [c for c in arms if c in TUNED_AS and c != "sgd-draw"]  # the ordering ablation: named as a family
    others = [L_(c) for c in arms if c not in ("docl", "docl-none") and c not in ordered]
    against = and_list(others) + (", each subset curriculum in draw, shuffled and reversed order" if ordered else "")
    budgets = sorted({st.epochs for st in paper_settings})
    regimes = ([("under the authors' recipe" + (f" at {len(budgets)} budgets" if len(budgets) > 1 else ""))]
               if paper_settings else []) + (["at equal gradient steps"] if steps_settings else [])
    L = [f"# Results: DoCL against {against} " + " and ".join(regimes), "",
         f"<!-- generated by `{command}`; do not edit by hand: every number and every verdict below is computed "
         "from the run folders -->", ""]
    if paper_settings:
        what = {"sgd": "`sgd` (all N every epoch, mixup's α held at its start value as in the authors' baseline; "
                       "the paper's \"Random\")",
                "sgd-decay": "`sgd-decay` (our earlier baseline: α decays like DoCL's)",
                "random": "`random` (uniform subsets under the same recipe)",
                "docl-none": "`docl-none` (DoCL's recipe with a uniform pool that centrality still prunes: what "
                             "the score itself adds)"}
        named = [what[c] for c in arms if c in what]
        L += ["**Paper protocol**: the authors' recipe — episodes of epochs, a new subset every epoch trained in "
              "the order its weighted draw and the authors' prune return it (`--order draw`, the authors'), at "
              "each episode start a full large-batch pass and then the selection from "
              "the score it updated, mean teacher, mixup, their centrality and their byproduct score"
              + (" — with " + and_list(named) if named else "")
              + ". Two reports of every run: the last epoch's student (ours, stricter) and the best epoch of "
              "max(student, teacher) (the authors').", ""]
    if steps_settings:
        L += ["**Steps protocol**: equal gradient steps for every curriculum.", ""]
    if missing:
        L += [partial_note(missing, out), ""]
    L += [f"Knobs were tuned on the validation split on tuning seed(s) {', '.join(map(str, suite.tuning_seeds))}, "
          "then frozen; numbers are test accuracy on the report seeds. Intervals are 95% t-intervals of paired "
          "(same seed: same split, noise draw and initialisation) differences; a verdict says *beats*/*trails* "
          "only when the interval excludes 0.", ""]
    return L


def _glance(paper_settings, D: dict, median_rho: dict) -> list[str]:
    """At a glance: Table 1's cells and each setting's computed sentences."""
    L: list[str] = []
    if paper_settings:  # (a steps-only suite reads its verdicts from the steps table below)
        L += ["## At a glance (computed)", ""] + glance_table1(paper_settings, D) + [""]
    for s in paper_settings:
        d = D[s.name]
        if not len(d["final"]):
            L.append(f"- **{s.title}**: no complete runs yet.")
            continue
        parts = [reading.compare("DoCL", "SGD", d["diffs"].get(("docl", "sgd"), {})),
                 reading.compare("DoCL", "SGD", d["diffs_best"].get(("docl", "sgd"), {}))
                 .replace("DoCL", "DoCL (best of both)", 1) if d["diffs_best"] else "",
                 reading.compare("DoCL", "Random", d["diffs"].get(("docl", "random"), {})),
                 reading.compare("DoCL", "DoCL without its score", d["diffs"].get(("docl", "docl-none"), {}))
                 if ("docl", "docl-none") in d["diffs"] else "",
                 reading.convergence("SGD", s.title, tables.sgd_convergence(d["rounds"])),
                 f"The byproduct score {reading.agreement(median_rho[s.name])} at DoCL's episode starts."]
        L.append(f"- **{s.title}**: " + " ".join(p[0].upper() + p[1:] for p in parts if p))
    L += [""]
    return L


def _paper_tables(suite: Suite, paper_settings, D: dict) -> list[str]:
    """The paper protocol's accuracy tables (both reports), failed and running runs, paired differences."""
    L: list[str] = []
    cur = suite.curricula["paper"]
    arm_n = {c: suite.seeds_of(paper_settings[0], c) for c in cur}
    L += ["## Paper protocol: final test accuracy", "",
          f"Mean ± std over seeds ({', '.join(f'{L_(c)} {n}' for c, n in arm_n.items())}; n after each cell "
          "where fewer ran); best mean per column in bold. First the last epoch's student model (ours), then "
          "the best epoch of max(student, teacher) (the authors' report).", ""]
    for key, what in (("stats", "Last epoch, student"), ("stats_best", "Best epoch of max(student, teacher)")):
        if not any(D[s.name][key] for s in paper_settings):
            continue
        L += [f"**{what}**", "", "| curriculum | " + " | ".join(f"{s.title} ({s.epochs} ep.)"
                                                                for s in paper_settings) + " |",
              "|---|" + "---:|" * len(paper_settings)]
        for c in cur:
            cells = []
            for s in paper_settings:
                st = D[s.name][key]
                m, sd, n = st.get(c, (np.nan, np.nan, 0))
                best = max((v[0] for v in st.values() if np.isfinite(v[0])), default=np.nan)
                cell = (f"{m:.2f} ± {sd:.2f}" + (f" (n={n})" if n < suite.seeds_of(s, c) else "")) if n else "—"
                cells.append(f"**{cell}**" if n and f"{m:.2f}" == f"{best:.2f}" else cell)
            L.append(f"| {L_(c)} | " + " | ".join(cells) + " |")
        L += [""]
    failed = {s.name: D[s.name]["failed"] for s in suite.settings if D[s.name]["failed"]}
    if failed:
        L += ["", "Failed runs (left out): " + "; ".join(f"{k}: {', '.join(v)}" for k, v in failed.items())]
    running = {s.name: D[s.name]["running"] for s in suite.settings if D[s.name]["running"]}
    if running:
        L += ["", "Still running when this was written (left out): "
              + "; ".join(f"{k}: {', '.join(v)}" for k, v in running.items())]
    L += ["", "## Paired differences against SGD and against Random", "",
          "Curriculum − baseline in accuracy points, mean [95% t-interval] (seeds where the curriculum was "
          "better / seeds), on both reports: *last* (the last epoch's student) and *best* (the best epoch of "
          "max(student, teacher)). Bold: the interval excludes 0 in the curriculum's favour; italic: against "
          "it.", "",
          "| setting | baseline | report | " + " | ".join(L_(c) for c in cur if c != "sgd") + " |",
          "|---|---|---|" + "---|" * len([c for c in cur if c != "sgd"])]
    for s in paper_settings:
        for b in ("sgd", "random"):
            for key, what in (("diffs", "last"), ("diffs_best", "best")):
                if D[s.name][key]:
                    L.append(f"| {s.title} | − {L_(b)} | {what} | " + " | ".join(
                        _cell(D[s.name][key].get((c, b), {})) if c != b else "·" for c in cur if c != "sgd")
                        + " |")
    differ = [f"{L_(c)} − {L_(b)} on {s.title} ({v1} on the last epoch's student, {v2} on the best epoch)"
              for s in paper_settings for (c, b), r in D[s.name]["diffs"].items() if b in ("sgd", "random")
              for v1, v2 in [(r.get("verdict"), D[s.name]["diffs_best"].get((c, b), {}).get("verdict"))]
              if v2 is not None and v1 != v2]
    L += ["", "Verdicts that differ between the two reports: " + ("; ".join(differ) + "." if differ else
                                                                  "none; every verdict holds on both.")]
    L += [""]
    return L


def _convergence_section(paper_settings, D: dict, figure) -> list[str]:
    """Has SGD converged: the sentences and the figure."""
    L: list[str] = []
    panels = [(s.title, D[s.name]["rounds"][D[s.name]["rounds"]["curriculum"] == "sgd"],
               tables.sgd_convergence(D[s.name]["rounds"])) for s in paper_settings]
    panels = [p for p in panels if len(p[1])]
    L += ["## Has SGD converged?", "",
          "The budgets are meant to be long enough for the baseline to flatten. Check: the mean over seeds of "
          "(final test accuracy − the best test accuracy reached in the first 75% of epochs); the best-so-far, "
          "because the cosine restarts make the curve saw-toothed.", ""]
    L += [f"- {reading.convergence('SGD', t, c)}" for t, _, c in panels] + [""]
    name = figure(figures.convergence(panels), "sgd_convergence", 1100, 330 * -(-len(panels) // 3) + 120) \
        if panels else None
    if name:
        L += [f"![SGD convergence]({name})", ""]
    return L


def _curves_section(paper_settings, D: dict, cur, figure) -> list[str]:
    """Accuracy against epochs and samples seen, one figure per setting."""
    L: list[str] = []
    L += ["## Accuracy against epochs and against samples seen", ""]
    for s in paper_settings:
        r = D[s.name]["rounds"]
        if len(r):
            n_train = int(r["k"].max())
            name = figure(figures.curves(s.title, r, cur, n_train), s.name, 1100, 480 + 30 * (len(cur) // 6))
            if name:
                L += [f"![{s.title}]({name})", ""]
    return L


def _computation_section(paper_settings, D: dict, cur) -> list[str]:
    """Samples seen and own time per curriculum, with ratios to SGD and Random."""
    L: list[str] = []
    L += ["## Computation each curriculum used", "",
          "Means over seeds. *Samples seen*: training samples forwarded, full passes and warm start included, "
          "in units of N. *Own time*: training, selection and episode-start work (centrality, teacher restart) "
          "in seconds of one CPU thread; *wall*: the whole epochs, including the study's logging (losses of all "
          "N each epoch, and for DoCL/DoCL-NR the exact score at episode starts, which the method does not "
          "need). Ratios are to SGD. Timings come from a machine shared with other jobs: compare within a "
          "setting, not across.", "",
          "| setting | " + " | ".join(L_(c) for c in cur) + " |", "|---|" + "---:|" * len(cur)]
    for s in paper_settings:
        comp = tables.computation(D[s.name]["rounds"], cur).set_index("curriculum") \
            if len(D[s.name]["rounds"]) else pd.DataFrame()
        if not len(comp):
            continue
        ref = comp.loc["sgd"] if "sgd" in comp.index else None
        cells = []
        for c in cur:
            if c not in comp.index:
                cells.append("—")
                continue
            x = comp.loc[c]
            ratio = f" ({x.seen / ref.seen:.2f}×, {x.own_s / ref.own_s:.2f}×)" if ref is not None else ""
            cells.append(f"{x.seen:.1f} N, {x.own_s:.1f} s own, {x.wall_s:.1f} s wall{ratio}")
        L.append(f"| {s.title} | " + " | ".join(cells) + " |")
    L += ["", "In brackets: samples seen and own time relative to SGD.", ""]
    for s in paper_settings:
        comp = tables.computation(D[s.name]["rounds"], cur).set_index("curriculum") \
            if len(D[s.name]["rounds"]) else pd.DataFrame()
        if "docl" not in comp.index:
            continue
        x = comp.loc["docl"]
        parts = [reading.ratio("DoCL", L_(b), x[k], comp.loc[b, k], w) for b in ("sgd", "random")
                 if b in comp.index for k, w in (("seen", "samples"), ("own_s", "own time"))]
        L.append(f"- {s.title}: " + "; ".join(p for p in parts if p) + ".")
    L += ["", "Under this recipe Random keeps the whole pool k0 each epoch while DoCL (and MCL, DoCL-NR) keep "
          "select_ratio·k0 of it when a diversity term prunes, so Random trains on more samples per epoch; the "
          "ratios above are measured, not assumed.", ""]
    return L


def _noisy_section(paper_settings, D: dict, cur) -> list[str]:
    """The share of flipped labels each curriculum trained on."""
    L: list[str] = []
    noisy = [s for s in paper_settings if s.label_noise > 0]
    if noisy:
        L += ["## What the curricula select when labels are flipped", "",
              "Share of flipped labels among the samples each curriculum trained on in the epochs that select "
              "(k < N), against their share of the training set, paired by seed; the verdict comes from the "
              "interval of the difference.", ""]
        for s in noisy:
            sh = tables.noisy_shares(D[s.name]["rounds"], [c for c in cur if c != "sgd"])
            if sh:
                L += [f"- **{s.title}**: " + " ".join(reading.noisy_share(L_(c), sh[c]) for c in sh)]
        L += [""]
    return L


def _balance_section(paper_settings, D: dict, cur, out: Path) -> list[str]:
    """How class-balanced the last epoch's subset is."""
    L: list[str] = []
    L += ["## How class-balanced the last epoch's subset is", "",
          "The largest class's share of the samples trained on in the last epoch, and in brackets the "
          "total-variation distance between that subset's class histogram and the training set's (0: same "
          "proportions, 1: disjoint); means over seeds, given labels; read beside the accuracy table above.", "",
          "| setting | " + " | ".join(L_(c) for c in cur) + " |", "|---|" + "---:|" * len(cur)]
    for s in paper_settings:
        cb = tables.class_balance(out / s.name, D[s.name]["rounds"], cur) if len(D[s.name]["rounds"]) else {}
        L.append(f"| {s.title} | " + " | ".join(f"{cb[c][0] * 100:.0f}% (TV {cb[c][1]:.2f})" if c in cb else "—"
                                                for c in cur) + " |")
    L += [""]
    return L


def _hardness_section(paper_settings, D: dict, cur, out: Path) -> list[str]:
    """Loss and score percentiles of the selected samples."""
    L: list[str] = []
    from ..views import EASIER, HARDER  # the dashboard's rule for "harder" / "easier" (views.subset_summary)
    picks = [c for c in cur if not c.startswith("sgd")]
    L += ["## How hard the selected samples are", "",
          "The mean percentile, among all N training samples, of the loss (and of the exact score a_i, where "
          "it was logged: DoCL and DoCL-NR at episode starts) of the samples each curriculum selected, over "
          "its selecting epochs and seeds, measured when the selection was made. 50: like the training set; "
          f"above {HARDER * 100:.0f}: harder (higher loss, larger a_i); below {EASIER * 100:.0f}: easier.", "",
          "| setting | " + " | ".join(L_(c) for c in picks) + " |", "|---|" + "---:|" * len(picks)]
    for s in paper_settings:
        pc = tables.selection_percentiles(out / s.name, D[s.name]["rounds"], picks) \
            if len(D[s.name]["rounds"]) else {}
        L.append(f"| {s.title} | " + " | ".join(
            (f"loss {pc[c]['loss']:.0f}" + (f", a {pc[c]['exact']:.0f}" if np.isfinite(pc[c]["exact"]) else ""))
            if c in pc else "—" for c in picks) + " |")
    L += [""]
    return L


def _ablation_section(suite: Suite, D: dict, out: Path) -> list[str]:
    """The recipe's ablations, DoCL beside Random under each switch."""
    L: list[str] = []
    if suite.ablations:
        L += ["## Ablations of the recipe", "",
              "One ingredient of the authors' recipe turned off at a time (the tuned knobs kept), for DoCL and for "
              "Random under the same switch: if a gain comes from the score, it shows as DoCL − Random under every "
              "variant; if it comes from the recipe, it shows in both curricula's difference to their full "
              "recipe. (Random has no diversity term: its no-centrality variant is its full recipe.)", ""]
        for a in suite.ablations:
            s = suite.setting(a.setting)
            ab = tables.ablation(suite, out, s, list(a.variants), a.curricula, D[s.name]["final"])
            L += [f"### {s.title}", "", "| variant | " + " | ".join(
                f"{L_(c)}: test acc. | {L_(c)}: − its full recipe | {L_(c)}: samples seen" for c in a.curricula)
                + " | DoCL − Random |", "|---|" + "---:|---|---:|" * len(a.curricula) + "---|"]
            rows = {(r["variant"], r["curriculum"]): r for r in ab["rows"]}
            for v in ["full recipe", *a.variants]:
                cells = []
                for c in a.curricula:
                    r = rows.get((v, c))
                    if r is None:
                        cells += ["—", "—", "—"] if v != "no-centrality" else ["= full recipe", "", ""]
                        continue
                    cells += [f"{r['mean']:.2f} ± {r['std']:.2f}", _cell({**r["diff"], "higher": True})
                              if r["diff"] else "·", f"{r['seen']:.1f} N"]
                L.append(f"| {v} | " + " | ".join(cells) + f" | {_cell(ab['vs_random'].get(v, {}))} |")
            L += [""] + [f"- Under {'the full recipe' if v == 'full recipe' else v}: "
                         f"{reading.compare('DoCL', 'Random', r)}" for v, r in ab["vs_random"].items()]
            L += [""]
    return L


def _steps_section(suite: Suite, steps_settings, D: dict) -> list[str]:
    """The steps protocol's table (equal gradient steps)."""
    L: list[str] = []
    if steps_settings:
        L += ["## Steps protocol (equal gradient steps): a second, shorter table", "",
              "Rounds of score → select → train with a k_t schedule shared by every curriculum, so all take the "
              "same number of gradient steps (checked); exact DoCL scores; facility-location diversity; no "
              "mixup, no mean teacher. SGD is not in this table: it takes more steps than k_t allows.", ""]
        cur = suite.curricula["steps"]
        L += ["| curriculum | " + " | ".join(f"{s.title} ({suite.seeds_of(s)} seeds, "
                                             f"{tables.check_equal_steps(D[s.name]['final'], s.name) if len(D[s.name]['final']) else '?'} steps)"
                                             for s in steps_settings) + " |", "|---|" + "---:|" * len(steps_settings)]
        for c in cur:
            cells = []
            for s in steps_settings:
                m, sd, n = D[s.name]["stats"].get(c, (np.nan, np.nan, 0))
                d = D[s.name]["diffs"].get((c, "random"), {})
                cells.append((f"{m:.2f} ± {sd:.2f}" if n else "—") + (f"; − Random {_cell(d)}" if d else ""))
            L.append(f"| {L_(c)} | " + " | ".join(cells) + " |")
        L += [""] + [f"- *{s.title}* (steps): " + reading.compare("DoCL", "Random",
                                                                 D[s.name]["diffs"].get(("docl", "random"), {}))
                     for s in steps_settings] + [""]
    return L


def _tuning_section(suite: Suite, chosen: dict, cand: pd.DataFrame) -> list[str]:
    """The chosen knobs and every grid point's validation accuracy."""
    L = ["## Tuning (validation only, then frozen)", "",
          "Each grid point ran on the tuning seed(s) and was scored by final validation accuracy; ties go to the "
          "first (default) point. Under the paper protocol with the authors' centrality, λ does not enter the "
          "selection (their rule is the top of mod·p + centrality), so MCL's knob is `mod`.", "",
          ]
    tuned_c = sorted({c for s in suite.settings for c in chosen.get(s.name, {})},
                     key=lambda c: suite.curricula["paper"].index(c) if c in suite.curricula["paper"] else 99)
    L.append("| setting | protocol | " + " | ".join(L_(c) for c in tuned_c) + " |")
    L.append("|---|---|" + "---|" * len(tuned_c))
    for s in suite.settings:
        L.append(f"| {s.title} | {s.protocol} | " + " | ".join(
            (knob_tag(chosen[s.name][c]) if c in chosen.get(s.name, {}) else "·") for c in tuned_c) + " |")
    if len(cand):
        L += ["", "<details><summary>Validation accuracy (%) of every grid point</summary>", "",
              "| setting | curriculum | knobs | val |", "|---|---|---|---:|"]
        for (setting, c, k), g in cand.groupby(["setting", "curriculum", "knobs"], sort=False):
            v = g["val"].astype(float).mean()
            L.append(f"| {setting} | {L_(c)} | {k} | {'failed' if not np.isfinite(v) else f'{v * 100:.2f}'} |")
        L += ["", "</details>"]
    return L


def _table1_section() -> list[str]:
    """The seed's Table 1, for scale."""
    L = ["", "## The seed's Table 1, for scale", "",
          "The paper trains deep networks for hundreds of epochs on CIFAR/ImageNet-scale data; these are 8×8 "
          "digits and MNIST-1D with small networks. Only the ordering and the size of the gaps compare.", "",
          "| paper dataset | Random (SGD) | SPL | MCL | DoCL-NR | DoCL | DoCL − Random |", "|---|---:|---:|---:|---:|---:|---:|"]
    L += [f"| {k} | " + " | ".join(f"{x:.2f}" for x in v) + f" | {v[4] - v[0]:+.2f} |" for k, v in table1.by_dataset().items()]
    return L


def _made_section(out: Path, command: str, timing: dict, fig_errors: list) -> list[str]:
    """How this was made: command, run times, hardware, versions."""
    rt = run_times(out)
    L = ["", "## How this was made", "", f"- Command: `{command}` (from the repository root)."]
    if rt:
        L.append(f"- {rt['n']} runs, {sum(rt['run_s']) / 60:.1f} run-minutes ({sum(rt['run_s']) / 3600:.2f} "
                 f"CPU-hours: one thread per run), median {np.median(rt['run_s']):.1f} s "
                 f"per run; {rt['wall_s'] / 60:.1f} min from the first run's start to the last run's end, "
                 f"{timing.get('n_workers', 1)} worker process(es) of one thread each.")
    if timing.get("reused"):
        L.append(f"- {timing['reused']} runs were copied from `{timing.get('reused_from')}` (complete, same config) "
                 "instead of trained.")
    L.append(f"- The invocation that trained them: started {timing.get('started')}, "
             f"{timing.get('invocation_s', 0) / 60:.1f} min in all, {timing.get('executed', 0)} runs trained (the "
             f"others reused: complete, same config); load average {timing.get('load', float('nan')):.1f} at the "
             f"start and {timing.get('load_end', float('nan')):.1f} at the end on {_cores()} cores (a shared machine).")
    if timing.get("regenerated"):
        L.append(f"- This document was regenerated from those runs on {timing['regenerated']}.")
    from ..envinfo import cpu_model
    L += [f"- Hardware: {cpu_model()}, {_cores()} cores available ({platform.system()} {platform.release()}).",
          f"- Versions: {_versions()}.",
          f"- Runs: `{out}/<setting>/<curriculum>-s<seed>` (open with `streamlit run app/main.py -- {out}/<setting>`); "
          f"tuning in `{out}/tuning/`, ablations in `{out}/ablation/`, fidelity runs in `{out}/fidelity/`."]
    if fig_errors:
        L += [f"- Figures not written (PNG export failed): {'; '.join(fig_errors)}"]
    return L



def _plain(v):
    """A JSON value: numpy numbers as Python ones, NaN as null."""
    if isinstance(v, (np.integer, int)) and not isinstance(v, bool):
        return int(v)
    if isinstance(v, (np.floating, float)):
        return float(v) if np.isfinite(v) else None
    return v


def write_verdicts(suite: Suite, D: dict, md: Path) -> Path:
    """The report's paired comparisons as JSON beside it (RESULTS.md → RESULTS.json), for the
    dashboard: Compare finds the study's setting for its experiment's question (dataset, label
    noise, protocol) and quotes its verdicts. Per setting: what it is, its seeds per arm, and every
    pair a − b under both reports (last epoch's student; best epoch of max(student, teacher))."""
    settings = []
    for st in suite.settings:
        d = D.get(st.name) or {}
        pairs = [{"a": a, "b": b, "report": report, **{k: _plain(r.get(k)) for k in ("mean", "low", "high", "n",
                                                                                      "wins", "verdict")}}
                 for report, key in (("last", "diffs"), ("best", "diffs_best"))
                 for (a, b), r in (d.get(key) or {}).items() if r and r.get("n")]
        settings.append({"name": st.name, "title": st.title, "dataset": st.dataset, "label_noise": st.label_noise,
                         "protocol": st.protocol, "epochs": st.epochs if st.protocol == "paper" else None,
                         "seeds": {c: int(n) for c, (_, _, n) in (d.get("stats") or {}).items()},
                         "unit": "points" if d.get("col", "test_acc") == "test_acc" else "MSE", "pairs": pairs})
    from ..store import atomic_write_json
    out = md.with_suffix(".json")
    atomic_write_json(out, {"report": md.name, "suite": suite.name, "settings": settings})  # NaN already null
    return out


def _num(v, sign="+"):
    """A two-decimal number, or n/a for NaN."""
    return f"{v:{sign}.2f}" if np.isfinite(v) else "n/a"


def _med(g, col):
    """The median of g[col], NaN when the column is missing or empty."""
    return float(g[col].median()) if col in g and g[col].notna().any() else float("nan")


def _fidelity_timing(same: float, start: float, pers: float) -> str:
    """The byproduct against the exact score in time: one sentence from the medians of spearman_all,
    spearman_start and exact_persistence."""
    if not np.isfinite(start):
        return "no epoch after a logged one, so the byproduct was not read against the interval's start."
    head = (f"read against the exact score at the start of the epoch it summarises, the byproduct has median "
            f"ρ = {start:+.2f} (same frame: {_num(same)})")
    if not np.isfinite(pers):
        if np.isfinite(same) and abs(start - same) >= 0.1:
            way = "agrees better" if start > same else "agrees worse"
            return f"{head}: it {way} with the score it looks back to than with the score of its own frame."
        return f"{head}: the timing changes little; the exact score was not logged in consecutive epochs."
    if start < -0.1 and pers > 0.1:
        return (f"{head}, opposite to it, while the exact ranking persists over the epoch (median ρ = "
                f"{pers:+.2f}): the estimator, not the score's own drift, is at fault.")
    follows = "; the byproduct does follow the score at the interval's start" if start > 0.1 else ""
    if pers < -0.1:
        return (f"{head}, but the exact ranking itself reverses over one epoch (median persistence "
                f"{pers:+.2f}), so any estimator that looks back one epoch ranks against the current score: "
                f"the score's own drift, not the estimator, is at fault{follows}.")
    if pers < 0.1:
        return (f"{head}, but the exact ranking itself barely survives one epoch (median persistence "
                f"{pers:+.2f}), so no estimator that looks back one epoch can rank well{follows}.")
    if start >= pers - 0.1:
        return (f"{head}, within 0.1 of the exact score's own persistence ({pers:+.2f}): about as good as a "
                "one-epoch-old score can be.")
    return (f"{head}, {pers - start:.2f} below the exact score's own persistence ({pers:+.2f}), the ceiling "
            "for a look-back estimator: the estimator loses more than the epoch's drift.")


def fidelity_section(suite: Suite, fid_main: pd.DataFrame, fid: pd.DataFrame, median_rho: dict, figure) -> list[str]:
    L = ["## How far the byproduct is from the exact score", "",
         "Per logged epoch: Spearman's ρ between the authors' byproduct (`score_paper`) and the exact score "
         "a_i = g_i · ḡ (`score_exact`) over all N and over the samples selected that epoch, and the overlap "
         "|A ∩ B| / k of the top-k sets each would pick (k = the epoch's subset size). The byproduct is built from "
         "logits recorded during an epoch, so it looks back: ρ_start pairs the byproduct after an epoch with the "
         "exact score at that epoch's start, and the exact score's persistence (ρ of the exact score with itself "
         "one epoch later) is the ceiling for any estimator that looks back one epoch. A negative ρ means the "
         "byproduct ranks samples opposite to the exact score. Functions: "
         "`docl_core.fidelity.round_fidelity(run_dir)` and `experiment_fidelity(exp_dir)`.", ""]
    if len(fid_main):
        L += ["**In the report runs** (DoCL, exact score at episode starts; median over runs × episode starts):", ""]
        for s in suite.by_protocol("paper"):
            sub = fid_main[(fid_main.setting == s.name) & (fid_main.curriculum == "docl")]
            if len(sub):
                same, start = _med(sub, "spearman_all"), _med(sub, "spearman_start")
                pers = _med(sub, "exact_persistence")
                L.append(f"- {s.title}: median ρ = {sub['spearman_all'].median():+.2f} (all N), "
                         f"{sub['spearman_selected'].median():+.2f} (selected), top-k overlap "
                         f"{sub['overlap_topk'].median():.2f} ({len(sub)} epochs); ρ_start = {_num(start)}, "
                         f"exact persistence {_num(pers)}; the byproduct "
                         f"{reading.agreement(median_rho[s.name])}. In time, {_fidelity_timing(same, start, pers)}")
        L += [""]
    return L + _dedicated_fidelity(suite, fid, figure)


def _dedicated_fidelity(suite: Suite, fid: pd.DataFrame, figure) -> list[str]:
    """The dedicated fidelity runs: their table, sentences and figure (nothing without runs)."""
    if not len(fid):
        return []
    L = ["**Dedicated runs** (exact score every epoch; paper protocol: a sweep of the peak learning rate and "
         "momentum 0; steps protocol: the byproduct logged beside the exact score that drives selection). "
         "Medians over seeds × epochs; ρ_start is the byproduct after an epoch against the exact score at its "
         "start, persistence the exact score against itself one epoch later; the last column is the variant's ρ "
         "minus the default's, paired by seed and epoch, with its 95% interval.", "",
         "| runs | epochs | median ρ, all N | median ρ, selected | median top-k overlap | median Jaccard | "
         "median ρ_start | median exact persistence | ρ − default |",
         "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    from .stats import paired
    for (setting, group), g in fid.groupby(["setting", "group"], sort=False):
        base = fid[(fid.setting == setting) & (fid.variant == "default") & (fid.protocol == g["protocol"].iloc[0])]
        diff = "·"
        if g["variant"].iloc[0] != "default" and len(base):
            w = pd.DataFrame({"v": g.set_index(["seed", "round"])["spearman_all"],
                              "d": base.set_index(["seed", "round"])["spearman_all"]})
            diff = _cell({**paired(w, "v", "d"), "higher": True})
        L.append(f"| {group} | {len(g)} | {_num(_med(g, 'spearman_all'))} | {_num(_med(g, 'spearman_selected'))} | "
                 f"{_num(_med(g, 'overlap_topk'), '')} | {_num(_med(g, 'jaccard_topk'), '')} | "
                 f"{_num(_med(g, 'spearman_start'))} | {_num(_med(g, 'exact_persistence'))} | {diff} |")
    L += [""]
    for (setting, group), g in fid.groupby(["setting", "group"], sort=False):
        L.append(f"- {group}: in time, " + _fidelity_timing(_med(g, "spearman_all"), _med(g, "spearman_start"),
                                                            _med(g, "exact_persistence")))
    for (setting, group), g in fid.groupby(["setting", "group"], sort=False):
        base = fid[(fid.setting == setting) & (fid.variant == "default") & (fid.protocol == g["protocol"].iloc[0])]
        if g["variant"].iloc[0] != "default" and len(base):
            w = pd.DataFrame({"v": g.set_index(["seed", "round"])["spearman_all"],
                              "d": base.set_index(["seed", "round"])["spearman_all"]})
            L.append(f"- {group}: " + reading.shift(g["variant"].iloc[0], "default", paired(w, "v", "d")))
    for setting, g in fid[fid.protocol == "paper"].groupby("setting", sort=False):
        m = g[g["momentum"] > 0]
        L.append(f"- {suite.setting(setting).title} (paper): " + reading.relation(
            "learning rate (per epoch, momentum 0.9)", "byproduct–exact rank correlation",
            reading.rank_correlation_test(m["lr"], m["spearman_all"])))
    L += [""]
    name = figure(figures.fidelity(fid), "fidelity", 1100, 520)
    if name:
        L += [f"![byproduct against exact]({name})", ""]
    return L


def equal_samples(d: dict, b: str) -> dict:
    """DoCL's last-epoch student against baseline b's at the first epoch b had seen as many samples
    as DoCL saw in its run, paired by seed (+ the median such epoch)."""
    w = tables.at_equal_samples(d["rounds"], "docl", b) if len(d["rounds"]) else pd.DataFrame()
    if not len(w):
        return {}
    from .stats import paired
    return {**paired(w, "docl", b), "higher": True, "epoch": float(w["epoch"].median())}


def glance_table1(paper_settings, D: dict) -> list[str]:
    """The seed's Table 1 question at this scale, counted over the settings: does DoCL beat the
    paper's baseline (SGD) and the uniform-subset ablation (Random), at equal epochs and at equal
    samples seen, on both reports; and does the score itself add anything (DoCL − DoCL without it)."""
    rows = []
    for b in ("sgd", "random", "docl-none"):
        checks = [("equal epochs, last epoch's student", lambda d: d["diffs"].get(("docl", b), {})),
                  ("equal epochs, best of student and teacher", lambda d: d["diffs_best"].get(("docl", b), {}))]
        if b != "docl-none":
            checks.append(("equal samples seen, last epoch's student", lambda d: equal_samples(d, b)))
        for what, get in checks:
            res = {s.title: get(D[s.name]) for s in paper_settings}
            res = {t: r for t, r in res.items() if r and r.get("n")}
            if not res:
                continue
            by = {v: [t for t, r in res.items() if r["verdict"] == v] for v in ("beats", "no clear difference",
                                                                               "trails")}
            rows.append(f"| DoCL vs {L_(b)}, {what} | " + " | ".join(
                (f"{len(ts)}: {'; '.join(ts)}" if ts else "0") for ts in by.values()) + " |")
    if not rows:
        return []
    return ["The seed's Table 1 asks whether DoCL beats the paper's baseline (SGD, all N every epoch) and, by "
            "implication, uniform subsets under the same recipe (Random). Counted over the settings below, by the "
            "verdict of each paired 95% interval (equal samples seen: SGD's or Random's test accuracy at the first "
            "epoch it had seen as many samples as DoCL saw in its whole run):", "",
            "| comparison | beats | no clear difference | trails |", "|---|---|---|---|", *rows]


def budget_section(suite: Suite, paper_settings, D: dict, figure) -> list[str]:
    """Settings of one dataset and noise at several budgets E: does the answer change as training gets longer?"""
    groups: dict = {}
    for s in paper_settings:
        groups.setdefault((s.dataset, s.label_noise), []).append(s)
    groups = {k: sorted(v, key=lambda s: s.epochs) for k, v in groups.items() if len({s.epochs for s in v}) > 1}
    if not groups:
        return []
    L = ["## Does the answer change with the budget?", "",
         "The same data at several epoch budgets E (episode boundaries scaled; E = 300 is the authors' own "
         "schedule). DoCL − SGD and DoCL − Random in accuracy points, mean [95% t-interval] (wins/seeds), on the "
         "last epoch's student and on the best epoch of max(student, teacher).", ""]
    panels = []
    for (dataset, noise), ss in groups.items():
        L += ["| E | SGD | Random | DoCL | DoCL − SGD, last | DoCL − SGD, best | DoCL − Random, last | "
              "DoCL − Random, best |", "|---:|---:|---:|---:|---|---|---|---|"]
        for s in ss:
            d = D[s.name]
            st = d["stats"]
            cells = [f"{st[c][0]:.2f} ± {st[c][1]:.2f}" if st.get(c, (0, 0, 0))[2] else "—"
                     for c in ("sgd", "random", "docl")]
            diffs = [_cell(d[k].get(("docl", b), {})) for b in ("sgd", "random") for k in ("diffs", "diffs_best")]
            L.append(f"| {s.epochs} | " + " | ".join(cells + diffs) + " |")
        L += [""]
        for b in ("sgd", "random"):
            for k, what in (("diffs", "last"), ("diffs_best", "best")):
                pts = [(s.epochs, D[s.name][k].get(("docl", b), {})) for s in ss]
                verdicts = [f"E = {e}: {r['verdict']}" for e, r in pts if r and r.get("n")]
                if verdicts:
                    L.append(f"- DoCL − {L_(b)} ({what}): " + "; ".join(verdicts) + ".")
                panels.append((f"DoCL − {L_(b)}, {what}", pts))
        L += [""]
        title = ss[0].title.split(", E =")[0]
        name = figure(figures.budget(title, panels), f"budget_{dataset}", 900, 420)
        if name:
            L += [f"![DoCL's difference against E]({name})", ""]
    return L


def score_section(paper_settings, D: dict) -> list[str]:
    """How much the score matters: DoCL against its own recipe with a uniform pool, and how far the
    recipe's draw is from uniform."""
    if not any(("docl", "docl-none") in D[s.name]["diffs"] for s in paper_settings):
        return []
    L = ["## How much the score itself matters", "",
         "DoCL against `docl-none` (the same recipe, seeds and schedule, with the pool drawn uniformly; centrality "
         "still prunes it), paired by seed; and the spread of DoCL's sampling probabilities p_i ∝ exp(0.1·a_i) "
         "over its selecting epochs: the median and largest max/min p, and the median effective number of "
         "samples 1/Σp² as a share of N (1 and 100%: a uniform draw).", "",
         "| setting | DoCL − no score, last | DoCL − no score, best | median max/min p | largest max/min p | "
         "median 1/Σp² (share of N) |", "|---|---|---|---:|---:|---:|"]
    for s in paper_settings:
        d = D[s.name]
        sp = tables.sampling_spread(d["rounds"], "docl") if len(d["rounds"]) else {}
        spread = [f"{sp['ratio']:.3g}", f"{sp['ratio_max']:.3g}", f"{sp['ess'] * 100:.1f}%"] if sp else ["—"] * 3
        L.append(f"| {s.title} | {_cell(d['diffs'].get(('docl', 'docl-none'), {}))} | "
                 f"{_cell(d['diffs_best'].get(('docl', 'docl-none'), {}))} | " + " | ".join(spread) + " |")
    L += [""] + [f"- {s.title}: " + reading.compare("DoCL", "DoCL without its score",
                                                   D[s.name]["diffs"].get(("docl", "docl-none"), {}))
                 for s in paper_settings if ("docl", "docl-none") in D[s.name]["diffs"]] + [""]
    return L


def resemblance_section(paper_settings, D: dict, out: Path) -> list[str]:
    """Which scores researchers already use DoCL's selection looks like, at its episode starts."""
    from ..atlas import label
    res = {s.name: tables.resemblance(out / s.name, D[s.name]["rounds"]) if len(D[s.name]["rounds"]) else
           pd.DataFrame() for s in paper_settings}
    res = {k: v for k, v in res.items() if len(v)}
    if not res:
        return []
    driving = {f"rho_{d}" for v in res.values() for d in v["driving"].dropna().unique()}  # ρ = 1 with itself
    cols = [c for c in dict.fromkeys(c for v in res.values() for c in v.columns if c.startswith("rho_"))
            if c not in driving and any(v[c].notna().any() for v in res.values() if c in v)]
    L = ["## Which known score DoCL's selection resembles", "",
         "At DoCL's episode starts (every run, every episode after the warm start): the median Spearman ρ of the "
         "score DoCL selected by (the authors' byproduct) with each other per-sample score the data-pruning and noisy-label literature uses "
         "(logged by the tracker; `docl_core.atlas`), and the score whose top or bottom k samples overlap DoCL's "
         "subset most in the most episode starts (its mean overlap share against k/N, what a random subset of "
         "the same size would overlap).", "",
         "| setting | " + " | ".join(label(c[4:]) for c in cols) + " | resembles most |",
         "|---|" + "---:|" * len(cols) + "---|"]
    for s in paper_settings:
        r = res.get(s.name)
        if r is None:
            continue
        cells = [f"{r[c].median():+.2f}" if c in r and r[c].notna().any() else "—" for c in cols]
        top = r.groupby(["resembles", "side"]).size().sort_values(ascending=False)
        (score, side), times = top.index[0], int(top.iloc[0])
        pick = r[(r["resembles"] == score) & (r["side"] == side)]
        cells.append(f"{label(score)}, {'largest' if side == 'top' else 'smallest'} values ({times} of {len(r)}; "
                     f"overlap {pick['overlap'].mean():.2f} vs {pick['chance'].mean():.2f} by chance)")
        L.append(f"| {s.title} | " + " | ".join(cells) + " |")
    return L + [""]


def partial_note(missing: list, out: Path) -> str:
    """One computed line for a report written before every planned run was complete."""
    groups = Counter()
    for d in missing:
        rel = Path(d).relative_to(out) if Path(d).is_relative_to(out) else Path(d)
        parts = rel.parts
        where = parts[0] if parts[0] not in ("tuning", "ablation", "fidelity") else f"{parts[0]}/{parts[1]}"
        groups[(where, arm_of(parts[-1]) if parts[0] not in ("tuning",) else "grid")] += 1
    listed = "; ".join(f"{w}: {a} ×{n}" for (w, a), n in sorted(groups.items()))
    return (f"**Partial report**: {len(missing)} planned runs were not complete when this was written (the tables "
            f"show what is; n counts the seeds each number rests on). Missing: {listed}.")


ORDER_BASES = (("docl", "DoCL"), ("docl-none", "DoCL (no score)"), ("random", "Random"))


def commands_section(suite: Suite, settings, chosen: dict, out: Path) -> list[str]:
    """The `docl run` command behind every row of the tables: one per arm and setting, for seed 0 (the
    other seeds change --seed and --name only). Rerunning one reproduces its run bit for bit on this
    kind of machine (benchmarks/reproduce_cell.py checks a cell)."""
    from ..cli import run_command
    L = ["## The command behind each row", "",
         "Each run of a row was trained by this command with its seed (shown for seed 0; seed S: `--seed S` "
         "and `--name <arm>-sS`). It reproduces the run bit for bit on this kind of machine; "
         "`python benchmarks/reproduce_cell.py` reruns one cell and compares.", ""]
    for s in settings:
        L += [f"**{s.title}, E = {s.epochs}**" if s.protocol == "paper" else f"**{s.title}**", ""]
        for c in suite.curricula_of(s):
            cfg = s.config(c, 0, chosen.get(s.name, {}).get(c, {}))
            try:
                cmd = run_command(cfg, out=f"{out}/{s.name}", name=f"{c}-s0")
            except ValueError as e:
                cmd = f"(no command line: {e})"
            L.append(f"- {L_(c)}: `{cmd}`")
        L.append("")
    return L


def _order_table(st: dict, diffs: dict, what: str, cur) -> list[str]:
    """One report's table of the ordering ablation: each selection in draw, shuffled and reversed order
    with the paired differences, then SGD beside SGD in DoCL's order where that arm ran."""
    from .suites import ORDER_VARIANTS
    L = [f"**{what.capitalize()}**", "",
         "| selection | draw (the authors') | shuffled | reversed | draw − shuffled | draw − reversed |",
         "|---|---:|---:|---:|---|---|"]
    for b, label in ORDER_BASES:
        cells = []
        for arm in (b, f"{b}-shuffle", f"{b}-reversed"):
            m, sd, n = st.get(arm, (np.nan, np.nan, 0))
            cells.append(f"{m:.2f} ± {sd:.2f} (n={n})" if n else "—")
        L.append(f"| {label} | " + " | ".join(cells) + " | "
                 + " | ".join(_cell(diffs.get((b, f"{b}-{o}"), {})) for o in ORDER_VARIANTS) + " |")
    if "sgd-draw" in cur:
        def ms(arm):
            m, sd, n = st.get(arm, (np.nan, np.nan, 0))
            return f"{m:.2f} ± {sd:.2f} (n={n})" if n else "— (no complete runs)"
        L += ["", f"SGD {ms('sgd')}; SGD in DoCL's order {ms('sgd-draw')}: SGD in DoCL's order − SGD "
              f"{_cell(diffs.get(('sgd-draw', 'sgd'), {}))}, DoCL − SGD in DoCL's order "
              f"{_cell(diffs.get(('docl', 'sgd-draw'), {}))}."]
    return L + [""]


def order_section(paper_settings, D: dict, out: Path) -> list[str]:
    """The ordering ablation: each subset curriculum in draw (the authors'), shuffled and reversed order,
    the order-only arm (SGD ordered by DoCL's draw), where the flipped labels sit along a pass, and a
    reading of where DoCL's gain comes from, every sentence from a paired interval."""
    from .suites import ORDER_VARIANTS
    settings = [s for s in paper_settings if any(f"{b}-{o}" in D[s.name]["curricula"]
                                                 for b, _ in ORDER_BASES for o in ORDER_VARIANTS)]
    if not settings:
        return []
    L = ["## The order inside a subset pass", "",
         "The authors train each subset in the order their weighted draw returns it (successive sampling: high "
         "p, i.e. high score, tends to come first; their prune keeps the survivors in the order numpy's "
         "argpartition leaves them). Here every subset curriculum is also run on the same seeds with its "
         "subsets **shuffled** (a fresh random order: the order carries nothing) and **reversed** (the draw's "
         "order backwards), and *SGD in DoCL's order* trains all N every epoch in the order of a weighted draw "
         "from DoCL's score: the order with no selection. Accuracy in points, mean ± std over seeds; differences "
         "paired by seed, mean [95% t-interval] (seeds better / seeds), bold when the interval excludes 0 in "
         "favour of the first arm, italic against it.", ""]
    readings = []
    for s in settings:
        d = D[s.name]
        cur, f = d["curricula"], d["final"]
        want = [(b, f"{b}-{o}") for b, _ in ORDER_BASES for o in ORDER_VARIANTS if f"{b}-{o}" in cur] + \
               [("sgd-draw", "sgd"), ("docl", "sgd-draw"), ("docl", "docl-none"), ("docl-shuffle", "docl-none-shuffle"),
                ("docl", "sgd"), ("docl-shuffle", "sgd"), ("docl", "random"), ("docl-shuffle", "random-shuffle"),
                ("random", "sgd"), ("docl-none", "sgd")]
        last = tables.pairs(f, want, "test_acc", 100.0) if len(f) else {}
        best = tables.pairs(f, want, "best_acc", 100.0) if len(f) and "best_acc" in f else {}
        L += [f"### {s.title}, E = {s.epochs}", ""]
        for key, what, diffs in (("stats", "last epoch, student", last), ("stats_best", "best epoch of max(student, "
                                                                                     "teacher)", best)):
            if d[key]:
                L += _order_table(d[key], diffs, what, cur)
        prof = tables.pass_profile(out / s.name, d["rounds"], [b for b, _ in ORDER_BASES] + ["sgd-draw"],
                                   _noisy(out / s.name)) if len(d["rounds"]) else pd.DataFrame()
        if len(prof):
            L += ["Where the flipped labels sit along a pass (draw order; means over each run's selecting epochs, "
                  "then over seeds): the share of flipped labels in the pass's first and last quarter, the paired "
                  "difference last − first, and Spearman ρ of position in the pass with the score that drove the "
                  "draw (negative: high score first).", "",
                  "| arm | first quarter | last quarter | last − first | ρ(position, score) |", "|---|---:|---:|---|---:|"]
            for arm, g in prof.groupby("arm", sort=False):
                r = _paired_cols(g, "last_noisy", "first_noisy")
                L.append(f"| {L_(arm)} | {g['first_noisy'].mean():.1f}% | {g['last_noisy'].mean():.1f}% | "
                         f"{interval(r)} ({r.get('wins', 0)}/{r.get('n', 0)}) | "
                         + (f"{g['rho'].mean():+.2f} |" if g["rho"].notna().any() else "— (no score) |"))
            L += [""]
        readings.append((s, last, best, prof))
    L += ["**Reading (computed from the intervals above).**", ""]
    for s, last, best, prof in readings:
        said = order_reading(last, best, prof)
        L += [f"- **{s.title}**" + ("" if said else ": no paired runs yet.")] + [f"  - {x}" for x in said]
    return L + [""]


def _pass_position_sentences(prof: pd.DataFrame) -> list[str]:
    """Where DoCL's passes put the flipped labels and the high scores, each worded by its interval."""
    out: list[str] = []
    if len(prof) and "docl" in set(prof["arm"]):
        g = prof[prof["arm"] == "docl"]
        r = _paired_cols(g, "last_noisy", "first_noisy")
        if r.get("n"):
            where = ("fewer flipped labels than" if r["high"] < 0 else "more flipped labels than" if r["low"] > 0
                     else "about as many flipped labels as")
            out.append(f"In DoCL's draw order the last quarter of a pass holds {where} the first "
                       f"({g['last_noisy'].mean():.1f}% against {g['first_noisy'].mean():.1f}%, last − first "
                       f"{interval(r)} points).")
        rho = g["rho"].dropna()
        if len(rho) >= 2:
            m, lo, hi, n = paired_ci(rho.to_numpy())
            way = ("high scores come first" if hi < 0 else "high scores come last" if lo > 0
                   else "no consistent direction")
            out.append(f"Along DoCL's passes, position and score correlate at ρ = {m:+.2f} [{lo:+.2f}, {hi:+.2f}] "
                       f"(mean over seeds of each run's mean over epochs): {way}. The draw alone puts high scores "
                       "first; numpy's argpartition then rearranges the survivors of the prune (docs/architecture.md).")
    return out


def order_reading(last: dict, best: dict, prof: pd.DataFrame) -> list[str]:
    """Sentences on where DoCL's gain comes from, each worded by its interval (reading.compare)."""
    out = []

    def say(a, b, la, lb):
        r = last.get((a, b))
        if r:
            s = reading.compare(la, lb, r)
            rb = best.get((a, b))
            v = reading.verdict(rb["low"], rb["high"], True, rb["n"]) if rb and rb.get("n") else None
            if v is not None and v != r.get("verdict"):
                s += f" On the best epoch of max(student, teacher) the verdict is *{v}* ({interval(rb)})."
            out.append(s[0].upper() + s[1:])
        return r or {}

    gain = say("docl", "sgd", "DoCL", "SGD")
    uniform = say("random", "sgd", "Random (uniform subsets, same recipe)", "SGD")
    vs_random = say("docl", "random", "DoCL", "Random")
    order = say("docl", "docl-shuffle", "DoCL in its draw's order", "the same recipe shuffled")
    say("docl", "docl-reversed", "DoCL in its draw's order", "the draw reversed")
    score_drawn = say("docl", "docl-none", "DoCL", "DoCL without its score (both in draw order)")
    score_shuffled = say("docl-shuffle", "docl-none-shuffle", "DoCL shuffled", "DoCL without its score shuffled")
    say("docl-none", "docl-none-shuffle", "DoCL without its score in draw order", "shuffled")
    only = say("sgd-draw", "sgd", "SGD in DoCL's order", "SGD")
    say("docl", "sgd-draw", "DoCL", "SGD in DoCL's order")
    say("random", "random-shuffle", "Random in its draw's (uniform) order", "shuffled")

    def v(r):
        return r.get("verdict") if r else None

    names = {"docl": "DoCL", "docl-none": "DoCL without its score", "random": "Random"}
    over_shuffle = [names[b] for b in names if v(last.get((b, f"{b}-shuffle"))) == "beats"]
    over_reverse = [names[b] for b in names if v(last.get((b, f"{b}-reversed"))) == "beats"]
    if over_shuffle or over_reverse:
        parts = ([f"the draw's order beats the same subsets shuffled for {and_list(over_shuffle)}"] if over_shuffle
                 else []) + ([f"beats them reversed for {and_list(over_reverse)}"] if over_reverse else [])
        out.append("**The order of the pass matters** (last epoch's student): " + "; ".join(parts) + ".")
    elif v(order) is not None:
        out.append("The order of the pass makes no clear difference here (every draw − shuffled and draw − "
                   "reversed interval contains 0).")
    if v(order) == "beats" and v(score_shuffled) != "beats":
        out.append("So DoCL's gain lives in **the order**: the same subsets trained in the draw's order beat them "
                   "shuffled, while with shuffled passes the score does not beat a uniform pool.")
    elif v(order) == "beats":
        out.append("The order adds to what the score's selection gives: both intervals exclude 0.")
    elif v(order) is not None and "DoCL" in over_reverse:
        out.append("For DoCL itself the draw's order is no better than a shuffle; what the intervals show is that "
                   "its reverse is worse.")
    if "DoCL without its score" in over_shuffle + over_reverse:
        out.append("DoCL without its score draws its pool uniformly, so the order of its passes is set by the "
                   "prune alone: numpy's argpartition over mod·p + centrality with p uniform, i.e. by centrality "
                   "(on this numpy build nearly ascending: the subset's most central samples come last). Its "
                   "gain over shuffled passes is an ordering by centrality, not by any score.")
    rnd = [last.get(("random", f"random-{o}")) for o in ("shuffle", "reversed")]
    if all(r for r in rnd) and all(v(r) not in ("beats", "trails") for r in rnd):
        out.append("Random, whose draw order is already a random order, shows no difference between its three "
                   "orders, as it should: a check on the comparison.")
    if v(only) == "beats":
        out.append("The order alone, with no selection at all, already helps SGD.")
    elif v(only) is not None and (over_shuffle or over_reverse):
        out.append("Ordering every epoch of SGD by DoCL's draw does not lift it: whatever the order does, it does "
                   "through the selected subsets.")
    out += _pass_position_sentences(prof)
    if v(gain) is not None and v(score_drawn) not in ("beats",) and v(order) == "beats":
        out.append("Which samples DoCL picks matters less than the order it trains them in.")
    if v(gain) == "beats" and v(uniform) == "beats" and v(vs_random) != "beats":
        out.append("DoCL's gain over SGD is shared by uniform subsets under the same recipe (Random beats SGD "
                   "too, and DoCL does not beat Random): it comes from training on subsets under this recipe, "
                   "not from DoCL's score.")
    return out


def _paired_cols(g: pd.DataFrame, a: str, b: str) -> dict:
    from .stats import paired
    return paired(g.set_index("seed")[[a, b]], a, b)


def _noisy(folder: Path) -> pd.Series:
    """(N,) the flipped-label flag by sample id, from any run's dataset.parquet in the folder."""
    for f in sorted(folder.glob("*/dataset.parquet")):
        df = pd.read_parquet(f, columns=["sample_id", "split", "noisy"])
        df = df[df["split"] == "train"] if "split" in df else df
        return df.set_index("sample_id")["noisy"].sort_index().astype(bool)
    return pd.Series(dtype=bool)
