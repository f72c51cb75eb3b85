"""Frames for the dashboard: every number a page draws is shaped here, from a RunReader.

The app's pages are thin (docs/design.md §4): they ask this package for small, plot-ready frames and
draw them. Nothing here imports Streamlit or plotly, so every view can be tested on its own.
Large runs stay cheap: only the needed columns are read, (R, N) matrices are float32, and
heatmaps are reduced to at most a few hundred rows by sorted-quantile binning.

One module per concern; every name is importable from `docl_core.views` as before:
    runs      score columns named by their estimator, (R, N) matrices, a sample's history, protocols
    ranks     the Scores page: heatmaps, bands, trajectories, tie-aware ranks, churn, agreement
    subsets   what S_t holds: selection frames and tables, balance, noise share, summary, data map, pass order
    kernel    tangent-kernel frames and How it works' live example (torch only inside it)
    compare   curves, the final table, timings, paired intervals, verdicts, headline, Table 1
    maps      the Embedding page's axes refitted on one round's stored coordinates
"""
from __future__ import annotations

from ..store import RunReader, RunStoreError, feature_columns  # noqa: F401 (importable from here, as before)
from .runs import (  # noqa: F401
    SCORE_COLUMNS, ESTIMATOR_LABELS, SCORE_NAMES, SHORT_NAMES, driving_estimator, score_label,
    HISTORY_COLUMNS, sample_columns, round_matrix, round_matrices, logged_estimators, history_from_matrices,
    sample_history, protocol_of, with_samples_seen)
from .ranks import (  # noqa: F401
    heatmap_bins, quantile_bands, histogram, trajectories, default_trajectory_samples, row_ranks, rank_churn,
    estimator_agreement)
from .subsets import (  # noqa: F401
    SELECTION_SAMPLE_COLUMNS, HARDER, EASIER, BALANCED_TV, selection_frame, selection_table, class_balance,
    noisy_selected_over_time, jaccard_matrix, subset_summary, data_map, downsample_rows,
    PASS_ORDER_COLUMNS, ORDER_WORDS, pass_order, pass_order_rho, pass_order_name, pass_order_caption)
from .kernel import (  # noqa: F401
    kernel_similarity, kernel_view, eigenvalue_frame, contributions_for, representative_probe,
    kernel_neighbours, tiny_example, alignment_summary)
from .compare import (  # noqa: F401
    accuracy_curves, final_accuracy_table, TIMING_PHASES, timing_table, reference_curriculum, MIN_SEEDS,
    paired_differences, winner, TABLE1_DATASETS, TABLE1, paper_claim, compare_headline, verdict_sentence,
    lead_sentence, and_list, t_quantile, study_answer, study_sentence)
from .maps import project, refit_axes  # noqa: F401
