"""New run: a form that starts `python -m docl_core run ...` in the background and shows its progress.

Two ways to start: the quick live run, a preset that goes into a fresh experiment folder of its own
(quick-digits-<n>, beside the experiment on screen, never among the user's runs), and the form, into
the experiment on screen. The form's problems show once Start is pressed with bad values and go once
they are fixed or a run started: nothing that happens by itself (a run finishing, a folder appearing)
puts an error box under a form the user has not submitted. Start reads a data file whole through the
run's own loader first, so a file the run would refuse starts no process. Once a started run has
written its run.json the sidebar follows it (its experiment folder, the run to inspect), and the
app reruns once more when it ends, so the sidebar shows it complete instead of live.
"""
import time
from pathlib import Path

import streamlit as st

from app import common, launch
from docl_core.config import CURRICULA, ESTIMATORS, PREFER, SCORE_CURRICULUM, SELECTION_SCORES
from docl_core.names import SCORE_LABELS, SCORES
from docl_core.data import DATASETS
from docl_core.store import RunReader, RunStoreError, is_run_dir

# the score that ranks samples for selection, one line each (docl_core/config.py ESTIMATORS)
ESTIMATOR_LABELS = {e: f"{e} — {SCORES[e].long}" for e in ESTIMATORS}  # names.SCORES, the one registry
ESTIMATOR_HELP = (
    "The score a_i that ranks samples for selection.\n\n"
    "- **exact**: a_i = r_i·v_i, the residual times the output speed, computed exactly.\n"
    "- **fast**: central finite differences instead of the exact product: an approximation "
    "(relative error about 1e-4), faster.\n"
    "- **byproduct**: our free estimate from outputs training already computed (stale for samples "
    "not selected lately).\n"
    "- **paper**: the authors' byproduct, as their code computes it (mean-teacher logits).\n"
    "- **none**: no score: DoCL's recipe with a uniform draw, the ablation that shows what the score adds.")

ctx = st.session_state.get("_ctx_obj")
st.title("Start a new run")
st.caption("Trains in a background process on this machine. The form writes into the experiment folder below, the "
           "quick run into a new folder of its own; a run shows up in the sidebar and its pages refresh while it trains.")
st.session_state.pop("nr_open", None)  # a full run: the sidebar has already opened the folder asked for

root = Path(st.session_state.get("root") or common.DEFAULT_ROOT).expanduser()
exp_dir = ctx.exp_dir if ctx is not None else root
demo = common.DEFAULT_ROOT.resolve()
if exp_dir.resolve() == demo or demo in exp_dir.resolve().parents:
    # the bundled demo is what every new user opens first: new runs go beside it, never into it
    exp_dir = common.REPO / "runs" / "my-experiment"
    st.markdown(f"**Experiment folder:** `{exp_dir}`" + ("" if exp_dir.exists() else " (will be created)")
                + " — the bundled demo stays as it is; the sidebar switches to this folder once the run starts.")
else:
    st.markdown(f"**Experiment folder:** `{exp_dir}`" + ("" if exp_dir.exists() else " (will be created)"))
# defaults from the experiment on screen, so a new run is comparable with the ones beside it
config = (ctx.runs[0].meta.get("config") or {}) if ctx is not None and ctx.runs else {}
default_dataset = str(config.get("dataset") or "digits")
if ctx is not None and len(ctx.summary()) and ctx.summary()["dataset"].notna().any():
    default_dataset = str(ctx.summary()["dataset"].dropna().iloc[0])
try:  # the experiment's dataset, when it resolves on this machine (a path may not)
    launch.check_dataset(launch.dataset_arg(default_dataset))
except ValueError:
    default_dataset = "digits"
schedule = config.get("schedule") or {}


def _start(req: "launch.RunRequest", into: Path, quick: bool = False) -> bool:
    """Start the request in the experiment folder `into`; False (with the reason on screen) when it cannot."""
    try:
        cmd, run_dir, log = launch.build_command(req, into)
    except ValueError as e:
        st.error(str(e))
        return False
    st.code(" ".join(cmd), language="bash", wrap_lines=True)
    try:
        into.mkdir(parents=True, exist_ok=True)
        proc = launch.start(cmd, log)
    except OSError as e:
        st.error(f"Could not start the run ({e}): check that {into} is writable.")
        return False
    planned = int(req.epochs if req.protocol == "paper" else req.rounds)
    unit = "epochs" if req.protocol == "paper" else "rounds"  # the protocol's unit, before and after run.json
    name = f"{into.name}/{run_dir.name}" if quick else run_dir.name
    # one card per run folder: this attempt replaces earlier, finished ones (their logs stay on disk)
    earlier = [j for j in st.session_state.get("jobs", []) if j["run_dir"] != str(run_dir)
               or (j.get("proc") is not None and j["proc"].poll() is None)]
    st.session_state["jobs"] = earlier + [
        {"name": name, "run_dir": str(run_dir), "log": str(log), "proc": proc, "rounds": planned, "unit": unit,
         "exp_dir": str(into), "quick": quick}]
    st.success(f"Started {name} (pid {proc.pid}); progress below.")
    return True


def _open(folder: str) -> None:
    """Show the experiment `folder` in the sidebar: pick it in the experiment list when the runs
    folder on screen holds it, else open it as the runs folder. A button callback: it runs before
    the sidebar is drawn (from a fragment, progress() then reruns the whole app)."""
    folder = Path(folder)
    root = ctx.root if ctx is not None else None
    if root is not None and not is_run_dir(root) and folder.resolve().parent == root.resolve():
        st.session_state["experiment"] = folder.name
    else:
        st.session_state["root"] = str(folder)
    st.session_state["nr_open"] = True


def _follow(job: dict) -> None:
    """Have the sidebar show the job's run: its experiment folder (picked in the experiment list when
    the runs folder on screen holds it, else opened as the runs folder) and the run itself. Called
    from progress(), often a fragment, where the sidebar's widgets cannot be set: common.sidebar
    takes these before it draws them, on the full rerun that follows."""
    folder = Path(job["exp_dir"])
    root = ctx.root if ctx is not None else None
    if not _on_screen(job["exp_dir"]):
        if root is not None and not is_run_dir(root) and folder.resolve().parent == root.resolve():
            st.session_state["_experiment_next"] = folder.name
        else:
            st.session_state["_root_next"] = str(folder)
    st.session_state["_focus_next"] = Path(job["run_dir"]).name


def _on_screen(folder: str) -> bool:
    return ctx is not None and Path(folder).resolve() == ctx.exp_dir.resolve()


# run folders of jobs this page started that still run (their folder may not exist yet)
busy = tuple(j["run_dir"] for j in st.session_state.get("jobs", [])
             if j.get("proc") is not None and j["proc"].poll() is None)

with st.container(border=True):
    st.markdown("**Quick live run** — DoCL on digits under the paper protocol: 8 epochs of a small MLP, the "
                "exact score and kernel logged every epoch. About a minute on a 2-core laptop; its pages fill in "
                "epoch by epoch while it trains.")
    quick_exp = launch.quick_dir(exp_dir)
    q1, q2 = st.columns([1, 2])
    quick_curriculum = q1.selectbox("Curriculum", CURRICULA, index=CURRICULA.index("docl"), key="nr_quick_curriculum",
                                    format_func=common.curriculum_label)
    clicked = q2.button("Start the quick run", key="nr_quick", icon=":material/bolt:")
    q2.caption(f"Goes into `{quick_exp}`, a new experiment folder of its own: the runs of your experiments stay "
               "as they are. The sidebar switches to it once the run has started.")
    if clicked:
        _start(launch.quick_request(quick_curriculum), quick_exp, quick=True)

# No st.form: Enter in a field only commits that field (a form would submit on it, and a typo
# started a job). Only the button starts. Its problems show once it is pressed with bad values
# (nr_check); from then on every change is checked again, so the box goes as soon as the input is
# fixed, until a run starts and the form is fresh again.
st.session_state.setdefault("nr_dataset", default_dataset)
st.session_state.setdefault("nr_name", "")
if st.session_state.pop("nr_started", False):  # after a start the form moves on to a free seed and the default name
    st.session_state["nr_name"] = ""
    st.session_state["nr_seed_auto"] = st.session_state.get("nr_seed")
form_curriculum = launch.RunRequest(curriculum=st.session_state.get("nr_curriculum", "docl"),
                                    score=st.session_state.get("nr_score", "el2n"),
                                    prefer=st.session_state.get("nr_prefer", "hard")).stem
seed_auto = st.session_state.get("nr_seed_auto")
if "nr_seed" not in st.session_state or (
        st.session_state["nr_seed"] == seed_auto and not st.session_state["nr_name"].strip()
        and launch.run_taken(exp_dir, f"{form_curriculum}-s{seed_auto}", busy)):
    # a seed the page picked (never one the user typed) moves on once its run folder is taken
    st.session_state["nr_seed"] = st.session_state["nr_seed_auto"] = \
        launch.next_free_seed(exp_dir, form_curriculum, taken=busy)
c1, c2, c3 = st.columns(3)
dataset = c1.text_input("Dataset", key="nr_dataset",
                        help=f"A built-in name ({', '.join(DATASETS)}) or a path to a .npz/.csv file or a "
                             f"CIFAR-10 / Fashion-MNIST folder; relative paths start at {launch.REPO}.")
curriculum = c2.selectbox("Curriculum", (*CURRICULA, SCORE_CURRICULUM), key="nr_curriculum",
                          index=CURRICULA.index("docl"),
                          format_func=lambda c: "a logged score (EL2N, forgetting, AUM, …)" if c == SCORE_CURRICULUM
                          else common.curriculum_label(c),
                          help="The last option selects through DoCL's machinery by any score the tracker logs, "
                               "hard or easy first (`--curriculum score`); pick the score below.")
score, prefer = "el2n", "hard"
if curriculum == SCORE_CURRICULUM:
    s1, s2, _ = st.columns(3)
    score = s1.selectbox("Score", SELECTION_SCORES, key="nr_score", index=SELECTION_SCORES.index("el2n"),
                         format_func=lambda n: SCORE_LABELS.get(n, n),
                         help="loss, EL2N, GraNd, margin, entropy, forgetting events, AUM, data-map confidence, "
                              "variability, correctness, or a DoCL estimator's score a.")
    prefer = s2.selectbox("First", PREFER, key="nr_prefer",
                          help="hard: the samples the score calls hard first (a large loss, EL2N, forgetting; a "
                               "small margin, AUM, confidence); easy: the opposite.")
estimator = c3.selectbox("Estimator (drives selection)", ESTIMATORS, key="nr_estimator",
                         index=ESTIMATORS.index(config["estimator"]) if config.get("estimator") in ESTIMATORS else 0,
                         format_func=lambda e: ESTIMATOR_LABELS.get(e, e), help=ESTIMATOR_HELP)  # the experiment's
rounds = c1.number_input("Rounds", min_value=1, max_value=1000, value=int(config.get("rounds") or 10), step=1)
seed = c2.number_input("Seed", key="nr_seed", min_value=0, max_value=2**31 - 1, step=1)
label_noise = c3.number_input("Label noise (fraction flipped)", min_value=0.0, max_value=0.95,
                              value=float(config.get("label_noise") or 0.0), step=0.05)
k_start = c1.number_input("k_start (fraction of N in round 0)", min_value=0.01, max_value=1.0,
                          value=float(schedule.get("k_start") or 0.2), step=0.05)
lr = c2.number_input("Peak learning rate", min_value=1e-5, max_value=10.0,
                     value=float(schedule.get("lr") or 0.05), step=0.01, format="%.4f")
device = c3.selectbox("Device", ["cpu", "auto", "cuda"])
protocol = c1.selectbox("Protocol", ["steps", "paper"], key="nr_protocol",
                        index=1 if config.get("protocol") == "paper" else 0,
                        help="steps: equal-step rounds (Rounds, k_start and the learning rate apply). "
                             "paper: the authors' episodes of epochs, their k and learning-rate schedules.")
epochs = c2.number_input("Epochs (paper protocol)", key="nr_epochs", min_value=2, max_value=1000,
                         value=int((config.get("paper") or {}).get("epochs") or 16), step=1)
label_column = c3.text_input("Label column (.csv only)", value="", key="nr_label_column", placeholder="label",
                             help="The column of a .csv file that holds the labels; empty: the column named 'label'.")
name = st.text_input("Run name (optional)", key="nr_name", placeholder="<curriculum>-s<seed>",
                     help="A plain folder name inside the experiment: letters, digits, '.', '_' and '-'.")
request = launch.RunRequest(dataset=dataset, curriculum=curriculum, rounds=int(rounds), seed=int(seed),
                            label_noise=float(label_noise), estimator=estimator, k_start=float(k_start),
                            lr=float(lr), name=name, device=device, protocol=protocol, epochs=int(epochs),
                            label_column=label_column, score=score, prefer=prefer)
# after a Start, the data file is read whole by the run's own loader (cached per file version)
problems = launch.problems(request, exp_dir, busy=busy, load=bool(st.session_state.get("nr_check")))
if problems and st.session_state.get("nr_check"):
    st.error("Fix this to start the run:\n\n" + "\n".join(f"- {p}" for p in problems), icon=":material/error:")
if st.button("Start training", key="nr_submit", type="primary", icon=":material/rocket_launch:",
             on_click=lambda: st.session_state.update(nr_check=True)) and not problems:
    if _start(request, exp_dir):
        st.session_state["nr_check"] = False  # a fresh form: its problems wait for the next Start
        st.session_state["nr_started"] = True  # the next full run moves the form to a free seed


def progress():
    if st.session_state.pop("nr_open", False):  # an Open button in this fragment: redraw the sidebar too
        st.rerun()
    jobs = st.session_state.get("jobs", [])
    if not jobs:
        st.caption("Runs you start here are listed below with their progress.")
        return
    st.subheader("Runs started from this page")
    for job in reversed(jobs):
        proc = job.get("proc")
        code = proc.poll() if proc is not None else None
        try:
            meta = RunReader(job["run_dir"]).meta
        except RunStoreError:
            meta = None
        # the card trusts run.json only when this job's process wrote it: another attempt under
        # the same name has its own card, its own status and its own log
        state = launch.job_status(code, meta, getattr(proc, "pid", None))
        own = state["own"]
        if own and not job.get("listed"):
            job["listed"] = True  # its run.json exists: rerun the whole app so the sidebar lists it
            _follow(job)  # and shows it: its folder, and it as the run to inspect
            st.rerun()
        if code is not None and not job.get("ended"):
            job["ended"] = True  # it has ended: a full rerun redraws the sidebar, which still says ● live
            st.rerun()
        done, planned = state["done"], state["planned"] or job["rounds"]
        unit = job.get("unit", "rounds")  # the protocol's, from the start: not "rounds" until run.json says epochs
        eta = launch.eta_text(meta, time.time()) if own and state["status"] == "running" else ""
        with st.container(border=True):
            st.markdown(f"**{job['name']}** — {state['status']}, {done}/{planned} {unit}" + (f"; {eta}" if eta else ""))
            st.progress(min(1.0, done / max(planned, 1)))
            if state["error"] is not None or state["status"] in ("failed", "interrupted"):
                reason = state["error"] or state["status"]
                st.error(f"{job['name']} stopped: {reason}. Last lines of its log, `{job['log']}`:")
                st.code(launch.log_tail(Path(job["log"])), language="text", wrap_lines=True)
            elif code == 0:
                st.success(f"{job['name']} finished.")
            if job.get("quick") and own and state["error"] is None and state["status"] != "interrupted":
                folder = Path(job["exp_dir"])
                if _on_screen(job["exp_dir"]):
                    st.caption(f"`{folder.name}` is the experiment on screen: its pages show this run.")
                else:
                    st.button(f"Open {folder.name}", key=f"nr_open:{job['run_dir']}", on_click=_open,
                              args=(job["exp_dir"],), icon=":material/folder_open:",
                              help=f"Show {folder} in the sidebar, so every page shows this run"
                                   + (" as it trains." if code is None else "."))
    if any(j["proc"].poll() is None for j in jobs if j.get("proc") is not None):
        st.caption("Refreshing every 2 s while a run trains.")


running = any(j["proc"].poll() is None for j in st.session_state.get("jobs", []) if j.get("proc") is not None)
if running:
    st.fragment(run_every=2.0)(progress)()
else:
    progress()
