"""What every dashboard page shares: the experiment picker, cached readers, colours, error boxes.

Pages call `context()` for the chosen experiment and runs, read frames through the cached
helpers here (keyed on the run folder plus run.json's mtime, so a run that is still training
refreshes as soon as it commits a round), and draw them with `chart()`.
"""
from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pandas as pd
import plotly.io as pio
import streamlit as st

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `streamlit run app/main.py` without `pip install -e .`
    sys.path.insert(0, str(REPO))

from docl_core import views  # noqa: E402
from docl_core.config import config_differences  # noqa: E402
from docl_core.names import (CURRICULA, CURRICULUM_COLORS, CURRICULUM_LABELS,  # noqa: E402 (torch-free)
                             curriculum_display)
from docl_core.store import ExperimentReader, RunReader, RunStoreError, is_run_dir, list_experiments  # noqa: E402

log = logging.getLogger("docl.app")
pio.templates.default = "plotly_white"

DEFAULT_ROOT = REPO / "assets" / "demo"
# columns read together (one pass over the round files) because the same pages need them together
SCORE_GROUP = ("score", "score_exact", "score_byproduct", "score_fast", "score_paper")
HISTORY_GROUP = ("loss", "p_true", "p_clean", "residual_norm", "speed_norm", "selected", "correct", "times_selected",
                 "output0")
LIVE_REFRESH_S = 3.0  # seconds between refreshes of parts that show a run still training
FIRST_CHART_REST_S = 1.0  # after a session's first chart: the browser asks for the rest this soon (a shorter
#                           timer fired while the chart was still being drawn, delaying it: bench_app.py --first-load)

# One colour per curriculum on every page: the core's map, so the dashboard, the benchmark figures
# and the README plots agree (grey baseline, orange easy-first, purple hard-first, blues for DoCL).
_COLORS = dict(CURRICULUM_COLORS)
_LABELS = dict(CURRICULUM_LABELS)
_EXTRA = ["#CC79A7", "#56B4E9", "#F0E442", "#000000", "#999933", "#882255"]  # curricula the core does not name
ORDER = list(CURRICULA)  # curricula present in an experiment are shown in the core's order


def curriculum_color(name: str) -> str:
    if name not in _COLORS:
        _COLORS[name] = _EXTRA[(len(_COLORS) - 5) % len(_EXTRA)]
    return _COLORS[name]


def early_round(ids: list[int]) -> int:
    """The round a page opens on when it shows one round of a finished run: a quarter of the way in.
    Curricula differ most early, while k_t is small; by the last rounds k_t nears N and every
    curriculum selects almost everything."""
    return ids[len(ids) // 4] if ids else 0


def framed_thumbnail(png: bytes, noisy: bool, side: int = 96) -> Image.Image:  # noqa: F821 (PIL imported inside)
    """A thumbnail scaled up without smoothing (8×8 digits stay crisp) inside a frame: a thick red
    one for a flipped label, a thin white one otherwise (so neighbouring tiles do not merge)."""
    import io

    from PIL import Image, ImageOps
    img = Image.open(io.BytesIO(png)).convert("RGB")
    pad = max(3, side // 16) if noisy else 2
    img = img.resize((side - 2 * pad, side - 2 * pad), Image.NEAREST)
    return ImageOps.expand(img, border=pad, fill="#D62728" if noisy else "#FFFFFF")


def curriculum_label(name: str) -> str:
    return _LABELS.get(name) or curriculum_display(str(name))


def legend_label(name: str) -> str:
    """The name in legends and captions: sgd is the paper's "Random" baseline, so it says so."""
    return "SGD (the paper's Random)" if name == "sgd" else curriculum_label(name)


def color_map(names) -> dict[str, str]:
    """Display label → colour, for plotly's color_discrete_map."""
    return {curriculum_label(n): curriculum_color(n) for n in names}


def sort_curricula(names) -> list[str]:
    names = list(dict.fromkeys(names))
    return sorted(names, key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))


# ----------------------------------------------------------------------------- stamps and caches


def run_stamp(run_dir: Path) -> int:
    """Changes whenever the run commits a round (run.json is rewritten last)."""
    try:
        return (Path(run_dir) / "run.json").stat().st_mtime_ns
    except OSError:
        return -1


def experiment_stamp(exp_dir: Path) -> tuple:
    try:
        return tuple(sorted((p.name, run_stamp(p)) for p in Path(exp_dir).iterdir() if (p / "run.json").is_file()))
    except OSError:
        return ()


@st.cache_data(max_entries=32, show_spinner=False)
def experiment_rounds(exp_dir: str, stamp: tuple) -> pd.DataFrame:
    return ExperimentReader(exp_dir).rounds()


@st.cache_data(max_entries=32, show_spinner=False)
def experiment_summary(exp_dir: str, stamp: tuple) -> pd.DataFrame:
    return ExperimentReader(exp_dir).summary()


@st.cache_resource(max_entries=8, show_spinner="Reading rounds…")
def run_matrices(run_dir: str, stamp: int, columns: tuple) -> dict[str, np.ndarray]:
    """{column: (R, N) float32} over committed rounds, read in one pass. Shared and read-only:
    cache_resource hands out the same arrays without copying (tens of MB for large runs)."""
    out = views.round_matrices(RunReader(run_dir), list(columns))
    for M in out.values():
        M.setflags(write=False)
    return out


def run_matrix(run_dir: str, stamp: int, column: str) -> np.ndarray:
    """(R, N) float32 matrix of one per-sample column (read-only); score columns are read together."""
    group = SCORE_GROUP if column in SCORE_GROUP else HISTORY_GROUP if column in HISTORY_GROUP else (column,)
    return run_matrices(run_dir, stamp, group)[column]


@st.cache_data(max_entries=32, show_spinner=False)
def run_samples(run_dir: str, stamp: int, t: int, columns: tuple) -> pd.DataFrame:
    return RunReader(run_dir).samples(t, list(columns))


@st.cache_data(max_entries=32, show_spinner=False)
def run_columns(run_dir: str, stamp: int) -> list[str]:
    return views.sample_columns(RunReader(run_dir))


@st.cache_resource(max_entries=4, show_spinner="Reading the dataset…")
def run_dataset(run_dir: str, mtime: int) -> pd.DataFrame:
    """dataset.parquet of a run (shared, read-only: never modify the returned frame)."""
    return RunReader(run_dir).dataset()


def dataset_of(run: RunReader) -> pd.DataFrame:
    p = run.dir / "dataset.parquet"
    return run_dataset(str(run.dir), p.stat().st_mtime_ns if p.exists() else -1)


@st.cache_data(max_entries=32, show_spinner=False)
def dataset_light(run_dir: str, mtime: int) -> pd.DataFrame:
    """dataset.parquet without thumbnails (ids, split, labels, noise flags, coordinates), read without
    decoding them (a 60k-image dataset: 0.06 s instead of 0.3–0.9 s)."""
    return RunReader(run_dir).dataset(thumbnails=False)


def dataset_light_of(run: RunReader) -> pd.DataFrame:
    p = run.dir / "dataset.parquet"
    return dataset_light(str(run.dir), p.stat().st_mtime_ns if p.exists() else -1)


@st.cache_data(max_entries=256, show_spinner=False)
def run_kernel(run_dir: str, stamp: int, t: int) -> dict:
    return RunReader(run_dir).kernel(t)


@st.cache_data(max_entries=16, show_spinner="Reading kernel rounds…")
def run_eigenvalues(run_dir: str, stamp: int) -> dict[int, np.ndarray]:
    r = RunReader(run_dir)
    return {t: r.kernel(t)["eigenvalues"] for t in r.kernel_rounds()}


def matrix(run: RunReader, column: str) -> np.ndarray:
    return run_matrix(str(run.dir), run_stamp(run.dir), column)


WARM_UP_DELAY_S = 5.0  # seconds after the first page is drawn: the browser draws its charts first


@st.cache_resource(show_spinner=False)
def warm_up_torch_func() -> bool:
    """Once per server, in a background thread started after the first page has run: import torch
    and run a tiny example, so that torch.func's one-time set-up (a few seconds) is paid before
    anyone opens How it works. No page before it waits for torch (none of them imports it); the
    thread waits WARM_UP_DELAY_S and runs at a lower CPU priority, so the first charts are drawn
    on an idle CPU even on a small shared machine."""
    import threading
    import time

    def work():
        time.sleep(WARM_UP_DELAY_S)
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)  # this thread only (Linux)
        except (AttributeError, OSError):
            pass
        try:
            views.tiny_example(n=6, hidden=4, steps=0)
        except Exception:  # only a warm-up: the page reports real errors itself
            log.debug("torch.func warm-up failed", exc_info=True)
    threading.Thread(target=work, name="docl-warm-up", daemon=True).start()
    return True


def plural(n: int, word: str, many: Optional[str] = None) -> str:
    """"1 run", "3 runs", "1 curriculum", "2 curricula": a count with its noun in the right number."""
    return f"{n:,} {word if n == 1 else (many or word + 's')}"


# ----------------------------------------------------------------------------- settings

# config fields that may differ between runs pooled as one setting: what a seed band averages over
# (seed), what the curves separate (curriculum), and where or how often it ran (not what it learned)
# curriculum, and for `score` runs the score and direction, and under `paper` the order of a pass (each part of
# the curriculum's name: RunReader.curriculum, "score-el2n-hard", "docl@shuffle")
_POOLED_FIELDS = {"seed", "curriculum", "score", "prefer", "order", "name", "device", "checkpoint_every",
                  "deterministic"}


def _setting_differences(a: dict, b: dict) -> list[tuple]:
    """Config fields (other than _POOLED_FIELDS) in which two runs differ, both ways round
    (config_differences fills fields missing from its first argument with their defaults)."""
    diffs = config_differences(a, b) + [(f, y, x) for f, x, y in config_differences(b, a)]
    return [d for d in diffs if d[0].split(".")[0] not in _POOLED_FIELDS]


def _config_of(run: RunReader) -> dict:
    return run.meta.get("config") or {"dataset": run.meta.get("dataset")}


def run_settings(runs: list[RunReader]) -> dict[str, list[RunReader]]:
    """Runs grouped by setting: runs in one group differ only in seed and curriculum (and where they
    ran), so their seeds may be pooled into one band. Keys name each group by the config fields in
    which the groups differ ("dataset synthetic-image · label_noise 0.1"); one group: key "all runs"."""
    groups: list[list[RunReader]] = []
    for r in runs:
        for g in groups:
            if not _setting_differences(_config_of(g[0]), _config_of(r)):
                g.append(r)
                break
        else:
            groups.append([r])
    if len(groups) < 2:
        return {"all runs": list(runs)}
    fields = sorted({f for g in groups[1:] for f, _, _ in _setting_differences(_config_of(groups[0][0]),
                                                                             _config_of(g[0]))})

    def value(cfg: dict, f: str):
        for part in f.split("."):
            cfg = cfg.get(part) if isinstance(cfg, dict) else None
        return cfg

    out: dict[str, list[RunReader]] = {}
    for g in groups:
        label = " · ".join(f"{f} {value(_config_of(g[0]), f)}" for f in fields[:4]) + (" · …" if len(fields) > 4 else "")
        out[label if label not in out else f"{label} ({g[0].dir.name})"] = g
    return out


# ----------------------------------------------------------------------------- context


@dataclass
class Context:
    root: Path
    exp_dir: Path
    experiment: ExperimentReader
    runs: list[RunReader]                  # after the sidebar filters
    focus: Optional[RunReader]             # the run single-run pages show
    stamp: tuple = ()
    skipped: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)  # label → runs (all of the experiment's), one per setting
    setting: str = "all runs"                     # the setting shown (runs only ever pool seeds within it)

    @property
    def curricula(self) -> list[str]:
        return sort_curricula(r.curriculum for r in self.runs)

    @property
    def protocol(self) -> str:
        """"paper" when the shown runs follow the authors' protocol (one row per epoch), else "steps"."""
        return "paper" if any(views.protocol_of(r.meta) == "paper" for r in self.runs) else "steps"

    def rounds(self) -> pd.DataFrame:
        df = experiment_rounds(str(self.exp_dir), self.stamp)
        keep = {r.dir.name for r in self.runs}
        df = df[df["run"].isin(keep)] if len(df) else df
        if len(df):
            df = views.with_samples_seen(df, {r.dir.name: r.meta.get("num_train") for r in self.runs})
        return df

    def summary(self) -> pd.DataFrame:
        df = experiment_summary(str(self.exp_dir), self.stamp)
        return df[df["run"].isin({r.dir.name for r in self.runs})]


def initial_root() -> tuple[Path, str]:
    """The runs folder to open first: `streamlit run app/main.py -- PATH`, $DOCL_RUNS, or the demo."""
    args = [a for a in sys.argv[1:] if not a.startswith("-")]
    if args and Path(sys.argv[0]).name == "main.py":
        return Path(args[0]).expanduser(), "command line"
    if os.environ.get("DOCL_RUNS"):
        return Path(os.environ["DOCL_RUNS"]).expanduser(), "DOCL_RUNS"
    return DEFAULT_ROOT, "default (bundled demo)"


def run_label(run: RunReader) -> str:
    label = f"{curriculum_label(run.curriculum)} · seed {run.seed}"
    if run.dir.name != f"{run.curriculum}-s{run.seed}":
        label += f" ({run.dir.name})"
    if run.is_live:
        label += " · ● live"
    elif run.status == "failed":
        label += " · ✗ failed"
    return label


def status_badge(run: RunReader) -> str:
    if run.is_live:
        done = run.last_complete_round + 1
        planned = run.meta.get("rounds_planned") or "?"
        return f":red[● live] — {done}/{planned} rounds committed, refreshing every {LIVE_REFRESH_S:g} s"
    if run.status == "failed":
        return f":orange[✗ failed] — {run.meta.get('error') or 'no reason recorded'}"
    return f":green[✓ {run.status}] — {plural(run.last_complete_round + 1, round_word(run))}"


ABOUT_FILE = "about.md"  # an experiment folder's purpose in a paragraph (the demos have one: docl_core.cli.DEMOS)


def experiment_about(exp_dir: Path) -> str:
    """What an experiment is for, from its folder's about.md ("" when it has none or it is unreadable)."""
    try:
        return " ".join((Path(exp_dir) / ABOUT_FILE).read_text(encoding="utf-8").split())[:600]
    except (OSError, UnicodeDecodeError):
        return ""


def sidebar() -> Optional[Context]:
    """Draw the experiment picker and run filters; return the context, or None with a message
    already shown when there is nothing to open."""
    sb = st.sidebar
    start, source = initial_root()
    if "root" not in st.session_state:
        st.session_state["root"] = str(start)
    if "_root_next" in st.session_state:  # set by the New run page when it writes elsewhere
        st.session_state["root"] = st.session_state.pop("_root_next")
    # set by the New run page once a run it started has written run.json: its folder and itself
    want_exp, want_run = st.session_state.pop("_experiment_next", None), st.session_state.pop("_focus_next", None)
    presentation_toggle()
    sb.text_input("Runs folder", key="root", help=f"An experiment folder (a folder of runs), a folder of "
                  f"experiments, or one run. Opened first: {source}.")
    root = Path(st.session_state["root"].strip() or str(start)).expanduser()
    st.session_state["_root_ok"] = False
    exps = [root] if is_run_dir(root) else list_experiments(root)  # one run folder opens as its own experiment
    if not exps:
        _explain_empty(root)
        return None
    if len(exps) > 1:
        names = [str(p.relative_to(root)) if p != root else p.name for p in exps]
        if want_exp in names:
            st.session_state["experiment"] = want_exp
        if st.session_state.get("_present_pick") in names:  # switched from the presentation bar
            st.session_state["experiment"] = st.session_state.pop("_present_pick")
        st.session_state["_experiments"] = names  # the presentation bar offers the same list
        purposes = {n: experiment_about(p) for n, p in zip(names, exps)}
        listed = "\n".join(f"- **{n}**: {a}" for n, a in purposes.items() if a)
        pick = sb.selectbox("Experiment", names, key="experiment",
                            help=("What each experiment is for:\n" + listed) if listed else None)
        exp_dir = exps[names.index(pick)]
    else:
        exp_dir = exps[0]
        st.session_state.pop("_experiments", None)
    about = experiment_about(exp_dir)
    if about:
        sb.caption(about)
    stamp = experiment_stamp(exp_dir)
    try:
        exp = ExperimentReader(exp_dir)
    except RunStoreError as e:
        st.error(str(e))
        return None
    st.session_state["_root_ok"] = True
    st.session_state["_exp_dir"] = str(exp_dir)
    curricula = sort_curricula(r.curriculum for r in exp.runs)
    seeds = sorted({r.seed for r in exp.runs})
    if st.session_state.get("_filters_for") != str(exp_dir):  # another experiment: show all of its runs
        st.session_state["f_curricula"], st.session_state["f_seeds"] = curricula, seeds
        st.session_state["_filters_for"] = str(exp_dir)
    else:  # a run that appeared since (one just started from New run, say) is shown, not filtered out
        known_c, known_s = st.session_state.get("_filters_known", (curricula, seeds))
        new_c, new_s = [c for c in curricula if c not in known_c], [x for x in seeds if x not in known_s]
        if (new_c or new_s) and "f_curricula" in st.session_state and "f_seeds" in st.session_state:
            st.session_state["f_curricula"] = sort_curricula([*st.session_state["f_curricula"], *new_c])
            st.session_state["f_seeds"] = sorted({*st.session_state["f_seeds"], *new_s})
    st.session_state["_filters_known"] = (curricula, seeds)
    # a default only when the state is gone (Streamlit drops widget state on st.switch_page): all runs
    pick_c = sb.multiselect("Curricula", curricula, key="f_curricula", format_func=curriculum_label,
                            default=None if "f_curricula" in st.session_state else curricula)
    pick_s = sb.multiselect("Seeds", seeds, key="f_seeds", default=None if "f_seeds" in st.session_state else seeds)
    settings = run_settings(exp.runs)
    setting = "all runs"
    seen_before = st.session_state.get("_runs_known", (None, ()))
    seen_before = set(seen_before[1]) if seen_before[0] == str(exp_dir) else None
    st.session_state["_runs_known"] = (str(exp_dir), tuple(r.dir.name for r in exp.runs))
    if len(settings) > 1:  # runs that differ in more than seed and curriculum are never averaged together
        labels = sorted(settings, key=lambda k: -len(settings[k]))  # the largest setting first
        if st.session_state.get("f_setting") not in labels:
            st.session_state["f_setting"] = labels[0]
        fresh = [k for k in labels if seen_before is not None
                 and any(r.dir.name not in seen_before for r in settings[k])]
        if fresh and st.session_state["f_setting"] not in fresh:  # a run just started (New run): show its setting
            st.session_state["f_setting"] = fresh[0]
        setting = sb.selectbox("Setting", labels, key="f_setting",
                               format_func=lambda k: f"{k} ({plural(len(settings[k]), 'run')})",
                               help="This folder holds runs that differ in more than seed and curriculum "
                                    "(dataset, label noise, protocol, schedule, ...). Pages show one setting at a "
                                    "time, so seeds are only averaged over runs that differ in seed alone.")
    in_setting = {r.dir.name for r in settings[setting]}
    runs = [r for r in exp.runs if r.curriculum in pick_c and r.seed in pick_s and r.dir.name in in_setting]
    runs.sort(key=lambda r: (ORDER.index(r.curriculum) if r.curriculum in ORDER else 99, r.seed, r.dir.name))
    focus = None
    if runs:
        names = [r.dir.name for r in runs]
        wanted = st.query_params.get("run")  # links like /scores?run=docl-s0 open that run
        if wanted in names and st.session_state.get("_qp_run") != wanted:
            st.session_state["focus_run"] = wanted
            st.session_state["_qp_run"] = wanted
        if want_run in names:
            st.session_state["focus_run"] = want_run
        if st.session_state.get("focus_run") not in names:
            prefer = [r for r in runs if r.curriculum == "docl" and r.status == "complete"]
            st.session_state["focus_run"] = (prefer[0] if prefer else runs[0]).dir.name
        by_name = {r.dir.name: r for r in runs}
        # a run seen live in this session, or started from New run, says when it has completed
        seen = st.session_state.setdefault("_seen_live", set())
        seen.update(str(r.dir.resolve()) for r in runs if r.is_live)
        seen.update(j["run_dir"] for j in st.session_state.get("jobs", []))
        done = lambda r: r.status == "complete" and str(r.dir.resolve()) in seen  # noqa: E731
        sb.selectbox("Run to inspect", names, key="focus_run",
                     format_func=lambda n: run_label(by_name[n]) + (" · ✓ complete" if done(by_name[n]) else ""),
                     help="The run shown on the single-run pages (Scores, Tangent kernel, Sample, Data map).")
        focus = by_name[st.session_state["focus_run"]]
    live = [r for r in runs if r.is_live]
    sb.caption(f"{exp_dir.name}: {plural(len(exp.runs), 'run')}, {len(runs)} shown"
               + (f", {len(live)} live" if live else ""))
    if exp.errors:
        sb.warning("Skipped unreadable runs: " + "; ".join(f"{k}: {v}" for k, v in exp.errors.items()))
    if sb.button("↻ Refresh", help="Re-read the folder (runs still training also refresh on their own)."):
        st.rerun()
    return Context(root=root, exp_dir=exp_dir, experiment=exp, runs=runs, focus=focus, stamp=stamp,
                   skipped=exp.errors, settings=settings, setting=setting)


def presentation_toggle() -> bool:
    """The sidebar's Presentation mode switch. Its value lives in a plain session-state key, so it
    survives page switches (Streamlit drops a widget's own state when a page does not draw it)."""
    if "_w_presentation" not in st.session_state:
        st.session_state["_w_presentation"] = bool(st.session_state.get("presentation", False))
    on = st.sidebar.toggle("Presentation mode", key="_w_presentation",
                           help="For a lecture: larger chart fonts and markers, each page's takeaway in a callout, "
                                "secondary charts and downloads hidden (one screen per idea).")
    st.session_state["presentation"] = bool(on)
    return bool(on)


def presenting() -> bool:
    return bool(st.session_state.get("presentation", False))


# ----------------------------------------------------------------------------- the current round


def round_word(run: Optional[RunReader] = None, ctx: Optional["Context"] = None) -> str:
    """"epoch" for paper-protocol runs (each row of rounds.parquet is an epoch), else "round"."""
    if run is not None:
        return "epoch" if views.protocol_of(run.meta) == "paper" else "round"
    return "epoch" if ctx is not None and ctx.protocol == "paper" else "round"


def _clamp(t: int, ids: list[int]) -> int:
    """The committed round nearest to t from below (the first one when t precedes them all)."""
    below = [i for i in ids if i <= t]
    return below[-1] if below else ids[0]


def current_round(ids: list[int], live: bool = False) -> int:
    """The one round every page shows (session key "current_round"), clamped to this run's rounds.
    Unset: a live run's newest round, else early_round."""
    want = st.session_state.get("current_round")
    if want is None:
        want = ids[-1] if live else early_round(ids)
        st.session_state["current_round"] = int(want)
    return _clamp(int(want), ids)


def _adopt(key: str) -> None:
    st.session_state["current_round"] = int(st.session_state[key])


def round_slider(ids: list[int], key: str, word: str = "round", live: bool = False, label: Optional[str] = None,
                 select: bool = False, **kw) -> int:
    """A slider over the committed rounds `ids` that reads and writes the shared current round: moving
    it on one page moves every page's slider. select=True: a select_slider (rounds with gaps)."""
    t = current_round(ids, live)
    if len(ids) < 2:
        return ids[0]
    st.session_state[key] = t  # set before the widget is drawn: the shared round wins
    label = label or word.capitalize()
    if select:
        return int(st.select_slider(label, options=ids, key=key, on_change=_adopt, args=(key,), **kw))
    return int(st.slider(label, ids[0], ids[-1], key=key, on_change=_adopt, args=(key,), **kw))


def _explain_empty(root: Path) -> None:
    if root.resolve() == DEFAULT_ROOT.resolve() and not root.exists():
        st.info("**No demo experiment yet.** The dashboard opens `assets/demo` by default, and it has "
                "not been created on this machine. Create it with\n\n"
                "    python -m docl_core demo\n\n"
                "or point the **Runs folder** box in the sidebar (or `DOCL_RUNS`, or "
                "`streamlit run app/main.py -- PATH`) at a folder written by `python -m docl_core run`. "
                "You can also start a run from the **New run** page.")
        return
    if not root.exists():
        st.error(f"{root} does not exist: type the path of an experiment folder (a folder of runs) "
                 "in the sidebar's Runs folder box.")
        return
    try:
        ExperimentReader(root)
    except RunStoreError as e:
        st.error(str(e))
        return
    st.error(f"{root} holds no docl runs: point at a folder written by `python -m docl_core run`.")


def context() -> Context:
    """The context main.py made for this script run; stops the page (with a message) if none."""
    ctx = st.session_state.get("_ctx_obj")
    if ctx is None:
        st.stop()
    synthetic_notice(ctx)
    mixed_settings_notice(ctx)
    return ctx


def mixed_settings_notice(ctx: Context) -> None:
    if len(ctx.settings) > 1:
        shown = plural(len(ctx.settings[ctx.setting]), "run")
        st.warning(f"**This folder mixes {plural(len(ctx.settings), 'setting')}** "
                   f"({'; '.join(ctx.settings)}). Runs of different settings are never averaged together: "
                   f"showing **{ctx.setting}** ({shown}). Pick another under **Setting** in the sidebar.",
                   icon=":material/call_split:")


def need_runs(ctx: Context) -> None:
    """Stop the page with a message when the sidebar filters hide every run."""
    if not ctx.runs:
        hidden = plural(len(ctx.settings.get(ctx.setting, ctx.experiment.runs)), "run")
        st.warning(f"The sidebar filters hide all {hidden}: pick at least one curriculum and one seed under "
                   "**Curricula** and **Seeds**.")
        st.stop()


def need_focus(ctx: Context) -> RunReader:
    need_runs(ctx)
    run = ctx.focus
    st.markdown(f"**Run:** {run_label(run)} — {status_badge(run)}")
    if run.last_complete_round < 0:
        st.info("This run has not committed a round yet: its pages fill in as rounds complete.")
        st.stop()
    return run


def synthetic_notice(ctx: Optional[Context]) -> None:
    if ctx and any(r.meta.get("synthetic") for r in ctx.experiment.runs):
        st.warning("Synthetic test data: these runs were written by `tests/synthetic_runs.py` to exercise "
                   "the dashboard. Their numbers are invented, not results.", icon=":material/science:")


# ----------------------------------------------------------------------------- drawing helpers


PRESENTATION_FONT = dict(tick=24, axis=26, title=30, legend=22)  # px, readable from the back of a room
# body, captions and widget labels ≥ 20 px (1.3rem at Streamlit's 16 px root); callouts larger; the
# Deploy button and the developer menu hidden
PRESENTATION_CSS = (
    "<style>"
    "[data-testid='stMain'] p, [data-testid='stMain'] li {font-size: 1.3rem; line-height: 1.45;}"
    "[data-testid='stMain'] [data-testid='stCaptionContainer'], "
    "[data-testid='stMain'] [data-testid='stCaptionContainer'] p {font-size: 1.3rem;}"
    "[data-testid='stMain'] [data-testid='stWidgetLabel'] p {font-size: 1.3rem;}"
    "[data-testid='stMain'] [data-testid='stAlertContainer'] p, "
    "[data-testid='stMain'] [data-testid='stAlertContainer'] li {font-size: 1.5rem; line-height: 1.45;}"
    "[data-testid='stMain'] [data-testid='stMetricValue'], "
    "[data-testid='stMain'] [data-testid='stMetricValue'] * {font-size: 2.6rem;}"
    "[data-testid='stMain'] h1 {font-size: 3rem;} [data-testid='stMain'] h2, [data-testid='stMain'] h3 "
    "{font-size: 2.1rem;}"
    "[data-testid='stMain'] [data-testid='stImageCaption'], [data-testid='stMain'] [data-testid='stImageCaption'] * "
    "{font-size: 1.3rem !important; color: #31333F !important;}"
    "[data-testid='stMain'] [data-baseweb='tab'] p {font-size: 1.4rem !important;}"
    "[data-testid='stAppDeployButton'], [data-testid='stMainMenu'] {display: none !important;}"
    # the sidebar folds away (the page's own "Exit presentation" button brings it back)
    "section[data-testid='stSidebar'], [data-testid='stSidebarCollapsedControl'] {display: none !important;}"
    # one 1920×1080 screen holds each page's key chart: the page starts right under the bar of page
    # links (Streamlit's 6rem top padding is for its own toolbar), whose links grow to be read, and
    # the Exit button sits in that bar's right end instead of a row of its own
    "[data-testid='stMainBlockContainer'] {padding-top: 4.2rem !important; padding-bottom: 2rem !important;}"
    "[data-testid='stTopNavLink'] span {font-size: 1.15rem !important;}"
    ".st-key-exit_presentation {position: fixed; top: 0.55rem; right: 1.5rem; z-index: 1000020; width: auto !important;}"
    # the experiment switcher sits in the same bar, left of the Exit button, its text as large as the links
    ".st-key-present_experiment {position: fixed; top: 0.45rem; right: 19rem; z-index: 1000020; width: 16rem !important;}"
    ".st-key-present_experiment input {font-size: 1.25rem !important;}"
    # inputs read from the back too: selectbox, number and text inputs (and a selectbox's open list) ≥ 20 px
    "[data-testid='stMain'] input, [data-testid='stMain'] textarea {font-size: 1.3rem !important;}"
    "[role='listbox'] [role='option'], [role='listbox'] [role='option'] * {font-size: 1.3rem !important;}"
    "</style>")


def _leave_presentation() -> None:
    st.session_state["presentation"] = False
    st.session_state["_w_presentation"] = False


def _switch_experiment() -> None:
    st.session_state["_present_pick"] = st.session_state["present_experiment"]


def exit_presentation_button() -> None:
    """In Presentation mode: the page's larger text and hidden chrome (PRESENTATION_CSS, drawn in the
    main area: a style inside the hidden sidebar would not apply), and, the sidebar being hidden, a
    button at the top of every page that ends it."""
    if presenting():
        st.markdown(PRESENTATION_CSS, unsafe_allow_html=True)
        st.button("Exit presentation mode", key="exit_presentation", on_click=_leave_presentation,
                  icon=":material/close_fullscreen:")
        names = st.session_state.get("_experiments") or []
        if len(names) > 1:  # a lecture goes clean → noisy → frontier without leaving the mode
            current = st.session_state.get("experiment", names[0])
            st.selectbox("Experiment", names, index=names.index(current) if current in names else 0,
                         key="present_experiment", label_visibility="collapsed", on_change=_switch_experiment,
                         help="The experiment on screen (the sidebar's Experiment box, hidden while presenting)")


def chart(fig, caption: str, key: Optional[str] = None, height: Optional[int] = None, secondary: bool = False,
          present_height: Optional[int] = None, **kw):
    """Draw a plotly figure (plotly_white, compact margins) with its one-line caption below, in
    normal-size text. In Presentation mode fonts and markers grow, and a `secondary` chart is not
    drawn at all (returns None); `present_height` (px) is then the figure's height: a page's key
    chart gets the one that keeps it within a 1920×1080 screen (tests/test_browser.py measures it).

    One layout update only, and no explicit template (the default is already plotly_white):
    setting a template re-validates it and costs ~0.1 s per figure.
    """
    if secondary and presenting():
        return None
    layout = dict(margin=dict(l=60, r=20, t=50, b=50), font=dict(size=13))
    if height:
        layout["height"] = height
    if presenting():
        f = PRESENTATION_FONT
        layout.update(font=dict(size=f["tick"]), margin=dict(l=80, r=30, t=70, b=70),
                      title_font=dict(size=f["title"]), legend=dict(font=dict(size=f["legend"])),
                      hoverlabel=dict(font=dict(size=f["tick"])))
        axis = dict(tickfont=dict(size=f["tick"]), title_font=dict(size=f["axis"]))
        fig.update_xaxes(**axis)
        fig.update_yaxes(**axis)
        fig.update_annotations(font=dict(size=f["axis"]))
        for tr in fig.data:  # larger markers and lines where the trace has them as plain numbers
            marker = getattr(tr, "marker", None)
            if marker is not None and isinstance(getattr(marker, "size", None), (int, float)):
                marker.size = 1.7 * marker.size
            line = getattr(tr, "line", None)
            if line is not None and isinstance(getattr(line, "width", None), (int, float)) and line.width:
                line.width = 1.6 * line.width
        if present_height:
            layout["height"] = int(present_height)
        elif height or fig.layout.height:
            layout["height"] = int(1.15 * (height or fig.layout.height))
    xtitle = fig.layout.xaxis.title.text or ""
    if xtitle.startswith(("round", "epoch")):  # whole rounds only, about a dozen ticks
        xs = [v for tr in fig.data if getattr(tr, "x", None) is not None for v in tr.x
              if isinstance(v, (int, float, np.integer, np.floating))]
        if xs:
            layout["xaxis"] = dict(dtick=max(1, int(np.ceil((max(xs) - min(xs) + 1) / 12))), tick0=0)
    fig.update_layout(**layout)
    out = st.plotly_chart(fig, theme=None, key=key, **kw)
    if caption:
        st.markdown(caption)
    return out


def picked_samples(event, trace_sample_ids: list) -> list[int]:
    """Sample ids of the points a plotly selection event picked (st.plotly_chart(on_select=...)).

    Streamlit's event is {"selection": {"points": [{"curve_number", "point_index", "customdata", x, y,
    ...}], "point_indices", "box", "lasso"}}. Each point names its trace (curve_number) and its index
    within that trace (point_index), which index `trace_sample_ids` (one sequence of sample ids per
    trace, in drawing order). customdata is only a fallback: plotly.js turns a numpy customdata row
    into a typed array, which reaches Python as a dict {"0": .., "1": ..}, not a list.
    """
    try:
        points = event["selection"]["points"] if event else []
    except (KeyError, TypeError):
        return []
    out = []
    for p in points or []:
        curve, idx = p.get("curve_number"), p.get("point_index", p.get("point_number"))
        if isinstance(curve, int) and isinstance(idx, int) and 0 <= curve < len(trace_sample_ids) \
                and 0 <= idx < len(trace_sample_ids[curve]):
            out.append(int(trace_sample_ids[curve][idx]))
            continue
        cd = p.get("customdata")
        first = cd.get("0") if isinstance(cd, dict) else cd[0] if isinstance(cd, (list, tuple)) and cd else cd
        if isinstance(first, (int, float)) and not isinstance(first, bool) and np.isfinite(first):
            out.append(int(first))
    return list(dict.fromkeys(out))


def takeaway(text: str) -> None:
    """A page's takeaway, computed from the data: a bold callout in Presentation mode, else normal
    dark text (never a small grey caption)."""
    if presenting():  # keyed (class st-key-takeaway_…): the browser test measures where it ends
        import hashlib
        with st.container(key="takeaway_" + hashlib.md5(text.encode()).hexdigest()[:12]):
            st.info(f"**{text}**" if "**" not in text else text, icon=":material/lightbulb:")
    else:
        st.markdown(text)


def lines(df: pd.DataFrame, x: str, y: str, group: str, colors: Optional[dict] = None, title: str = "",
          markers: bool = True, order: Optional[list] = None, palette: Optional[list] = None):
    """A line per group (plotly.graph_objects; several times faster than plotly.express)."""
    import plotly.graph_objects as go
    palette = palette or ["#332288", "#CC6677", "#117733", "#DDCC77", "#88CCEE", "#AA4499", "#44AA99", "#999933"]
    groups = order or list(dict.fromkeys(df[group]))
    fig = go.Figure()
    for i, g in enumerate(groups):
        d = df[df[group] == g]
        color = (colors or {}).get(g, palette[i % len(palette)])
        fig.add_trace(go.Scatter(x=d[x], y=d[y], name=str(g), mode="lines+markers" if markers else "lines",
                                 line=dict(color=color, width=2), marker=dict(size=5)))
    fig.update_layout(title=title, xaxis_title=x, yaxis_title=y)
    return fig


def download(df: pd.DataFrame, name: str, label: str = "Download CSV", key: Optional[str] = None) -> None:
    """A CSV download of a shown frame; the CSV is built only when clicked. Hidden in Presentation mode."""
    if presenting():
        return
    st.download_button(f"⬇ {label}", data=lambda: df.to_csv(index=False).encode(),
                       file_name=f"{name}.csv", mime="text/csv", key=key or f"dl_{name}")


def live_area(body: Callable[[], None], live: bool) -> None:
    """Run `body` inside a fragment that reruns every LIVE_REFRESH_S seconds while a run trains;
    once no run on screen trains any more, the whole app reruns (the sidebar still says ● live)."""
    def guarded():
        with error_box():
            body()
        ctx = st.session_state.get("_ctx_obj")
        if live and ctx is not None and not any(still_live(r) for r in ctx.runs):
            st.rerun()
    if live:
        st.fragment(run_every=LIVE_REFRESH_S)(guarded)()
    else:
        guarded()


def still_live(run: RunReader) -> bool:
    """Whether the run trains, from its run.json as it is now (unreadable mid-write: yes, ask again)."""
    try:
        return run.refresh().is_live
    except RunStoreError:
        return True


def first_view(live: bool = False) -> bool:
    """True on a session's first run (a new visitor waiting for the dashboard): the page then draws
    its key chart and `rest_follows()` below it, and skips the rest. What a page draws below its
    key chart would otherwise reach the browser with it and be laid out (tables, further charts)
    before the chart is painted. Never while a run trains (the page is a live fragment then).
    Measured with `benchmarks/bench_app.py --first-load`."""
    return not live and not st.session_state.get("_viewed")


SIDEBAR_KEYS = ("root", "experiment", "f_curricula", "f_seeds", "f_setting", "focus_run")


def end_of_run() -> None:
    """main.py, after every run: the session's first run is over; its sidebar values are kept for
    the full run that `rest_follows` asks for."""
    if not st.session_state.get("_viewed"):
        st.session_state["_first_view_widgets"] = {k: st.session_state[k] for k in SIDEBAR_KEYS
                                                   if k in st.session_state}
    st.session_state["_viewed"] = True


def rest_follows() -> None:
    """Below a first view's key chart: a fragment timer that the browser fires once it is idle
    again (the chart drawn) asks for a full rerun, which draws the whole page; the chart is
    unchanged there and is not redrawn. (The run is left to finish normally, not st.stop()ped:
    a stopped run does not keep the sidebar's widget values.)"""
    def rest():
        if st.session_state.get("_viewed"):  # the timer fired after the first run ended
            # the browser may fire it before it has taken the sidebar's values from the first run (a
            # select box then reports its first option): the full run gets the first run's values
            for k, v in st.session_state.get("_first_view_widgets", {}).items():
                st.session_state[k] = v
            st.rerun(scope="app")
        st.caption("Loading the rest of the page…")

    st.fragment(run_every=FIRST_CHART_REST_S)(rest)()


class error_box:
    """Context manager: RunStoreError → its message in st.error; other errors → a short box
    (details go to the server log), never a traceback on the page."""

    def __enter__(self):
        return self

    def __exit__(self, et, e, tb):
        if e is None or not isinstance(e, Exception):
            return False  # no error, or Streamlit's own control flow (st.stop, st.rerun)
        if isinstance(e, RunStoreError):
            st.error(str(e))
        else:
            log.error("page error", exc_info=(et, e, tb))
            st.error(f"Something went wrong drawing this part ({type(e).__name__}: {str(e)[:200]}). "
                     "The details are in the server log; try Refresh, or another run.")
        return True
