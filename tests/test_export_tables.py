"""`docl export --to npz|parquet|csv`: read back with numpy and pandas alone (docl_core blocked from
importing) and checked against the run's own parquet files, on a real run (the bundled demo) and
on a synthetic experiment; bad sources and taken folders write nothing."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from docl_core.cli import main  # noqa: E402
from synthetic_runs import SyntheticSpec, write_experiment  # noqa: E402
from test_bad_input import tree_hash  # noqa: E402

DEMO_RUN = Path(__file__).resolve().parents[1] / "assets" / "demo" / "noisy-digits" / "docl-s0"

# Runs in a fresh interpreter where `import docl_core` fails: what a user with numpy and pandas has.
CHECK = textwrap.dedent('''
    import json, sys
    sys.modules["docl_core"] = None                      # any import of docl_core now raises
    from pathlib import Path
    import numpy as np, pandas as pd
    run, out, fmt = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    T = json.loads((run / "run.json").read_text())["last_complete_round"] + 1
    ds = pd.read_parquet(run / "dataset.parquet", columns=None)
    ds = ds[ds["split"] == "train"].drop(columns=["thumbnail"], errors="ignore").sort_values("sample_id")
    ids = ds["sample_id"].to_numpy()
    frames = [pd.read_parquet(run / "samples" / f"round={t:04d}.parquet").set_index("sample_id").reindex(ids)
              for t in range(T)]
    cols = [c for c in frames[0].columns if c not in ("round", "label")]
    if fmt == "npz":
        z = np.load(out / "samples.npz")
        assert z["rounds"].tolist() == list(range(T)) and z["sample_id"].tolist() == ids.tolist()
        assert (z["noisy"] == ds["noisy"].to_numpy(bool)).all()
        assert (z["label"] == ds["label"].to_numpy()).all() and (z["clean_label"] == ds["clean_label"].to_numpy()).all()
        if "source_row" in ds:
            assert (z["source_row"] == ds["source_row"].to_numpy()).all()
        get = lambda c, t: z[c][:, t]
    else:
        df = pd.read_parquet(out / "samples.parquet") if fmt == "parquet" else pd.read_csv(out / "samples.csv")
        assert len(df) == len(ids) * T
        get = lambda c, t: df[df["round"] == t].set_index("sample_id").reindex(ids)[c].to_numpy()
        wide = df.pivot(index="sample_id", columns="round", values="score")
        assert wide.shape == (len(ids), T)
    for c in cols:
        for t in range(T):
            want = frames[t][c].to_numpy()
            got = get(c, t)
            if want.dtype.kind == "f":
                np.testing.assert_allclose(np.asarray(got, float), want.astype(float), rtol=1e-6 if fmt == "csv" else 0,
                                           equal_nan=True, err_msg=f"{c} round {t}")
            else:
                assert (np.asarray(got) == want).all(), (c, t)
    rounds = pd.read_csv(out / "rounds.csv")
    assert rounds["round"].tolist() == list(range(T))
    print(len(cols), "columns ×", T, "rounds ×", len(ids), "samples")
''')


def _check(run: Path, out: Path, fmt: str) -> str:
    r = subprocess.run([sys.executable, "-c", CHECK, str(run), str(out), fmt], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout


@pytest.mark.parametrize("fmt", ["npz", "parquet", "csv"])
def test_a_real_run_exports_and_reads_back_without_docl(tmp_path, fmt):
    out = tmp_path / "out"
    assert main(["export", str(DEMO_RUN), "--to", fmt, str(out)]) == 0
    said = _check(DEMO_RUN, out / DEMO_RUN.name, fmt)
    assert "× 16 rounds × 1222 samples" in said


def test_an_experiment_exports_every_run(tmp_path):
    exp = write_experiment(tmp_path / "exp", SyntheticSpec(n=60, rounds=4))
    out = tmp_path / "tables"
    assert main(["export", str(exp), "--to", "npz", str(out)]) == 0
    runs = sorted(p.name for p in exp.iterdir() if (p / "run.json").exists())
    assert sorted(p.name for p in out.iterdir()) == runs
    for name in runs[:2]:
        _check(exp / name, out / name, "npz")


def test_bad_sources_and_taken_folders_write_nothing(tmp_path, capsys):
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    before = tree_hash(taken)
    assert main(["export", str(DEMO_RUN), "--to", "csv", str(taken)]) == 2
    assert "not an empty folder" in capsys.readouterr().err and tree_hash(taken) == before
    assert main(["export", str(tmp_path / "nope"), "--to", "npz", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err and not (tmp_path / "o").exists()


def test_the_dashboards_downloads_hold_what_the_export_writes(tmp_path):
    """Scores' whole-run npz (run_npz_bytes) and one-round CSV (round_table) are the exported files' contents."""
    import io

    import numpy as np
    import pandas as pd

    from docl_core import export
    from docl_core.store import RunReader
    run = RunReader(DEMO_RUN)
    assert main(["export", str(DEMO_RUN), "--to", "npz", str(tmp_path / "npz")]) == 0
    assert main(["export", str(DEMO_RUN), "--to", "csv", str(tmp_path / "csv")]) == 0
    z, f = np.load(io.BytesIO(export.run_npz_bytes(run))), np.load(tmp_path / "npz" / DEMO_RUN.name / "samples.npz")
    assert z.files == f.files and all(np.array_equal(z[k], f[k], equal_nan=z[k].dtype.kind == "f") for k in z.files)
    one = pd.read_csv(io.StringIO(export.round_table(run, 7).to_csv(index=False)))
    whole = pd.read_csv(tmp_path / "csv" / DEMO_RUN.name / "samples.csv")
    pd.testing.assert_frame_equal(one, whole[whole["round"] == 7].reset_index(drop=True))
