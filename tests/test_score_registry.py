"""names.SCORES is the one registry of scores: the package's lists, directions and the pages' labels
all derive from it, so one score has one name everywhere (issue 31: the authors' byproduct read
"authors' byproduct score" on Sample, "a (paper)" on the atlas and "score" on Embedding)."""
from docl_core import atlas, config, names, views
from docl_core.store import RunReader
from test_export_tables import DEMO_RUN


def test_the_package_lists_come_from_the_registry():
    reg = names.SCORES
    assert config.ESTIMATORS == tuple(n for n, s in reg.items() if s.kind == "estimator")
    assert config.SAMPLE_SCORES == {n: s.hard for n, s in reg.items() if s.kind != "estimator"}
    assert set(views.SCORE_COLUMNS) == {"score"} | {s.column for s in reg.values() if s.kind == "estimator"} - {
        "score_none"}
    assert {c: d for c, (_, d) in atlas.ATLAS_SCORES.items()} == {s.column: s.hard for n, s in reg.items()
                                                                  if n != "none"}
    assert all(s.hard in ("high", "low") and s.kind in ("estimator", "sample", "data map") for s in reg.values())
    assert len({s.column for s in reg.values()}) == len(reg)            # one column per score


def test_one_score_has_one_name_on_every_page():
    for n, s in names.SCORES.items():
        if n == "none":
            continue
        assert atlas.label(s.column) == s.short == names.SCORE_LABELS[n]
        if s.kind == "estimator":
            assert views.score_label(s.column, "exact", short=True) == s.short
            assert views.score_label("score", n, short=True) == s.short  # the driving score is named as itself
            assert views.score_label(s.column, "exact") == s.long              # titles: the long form
    assert names.curriculum_display("score-paper-hard") == "authors' byproduct score, hard first"


def test_every_score_a_real_run_logs_is_in_the_registry():
    cols = RunReader(DEMO_RUN).samples(0).columns
    not_scores = {"sample_id", "round", "label", "correct", "p_true", "p_clean", "residual_norm", "speed_norm", "score",
                  "presentations", "selected", "weight", "times_selected", "pass_position"}
    unknown = set(cols) - not_scores - set(names.BY_COLUMN)
    assert not unknown, f"logged but not in names.SCORES: {sorted(unknown)}"
    assert {"score_paper", "score_exact", "el2n", "aum", "confidence"} <= set(cols)
