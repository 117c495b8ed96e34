"""The report's facts: numbers computed from saved results, and the conditions a sentence checks before it
draws a conclusion. Functions take tables and return plain values or one sentence, so every wording rule can
be tested on synthetic data.

Layout: results.py (loading a model's tables), format.py (numbers as printed), quality.py (metrics, rankings
and the conclusions on quality), weights.py (roles, layer collapse, casts, distribution sentences),
runtime.py (latency verdicts, crossovers). The package re-exports every name, so `facts.X` reads as it did
when this was one module.
"""
from .format import (fixed1, join, megabytes, millions, num, pct, plural, ratio, shared_values, span)
from .quality import (ACCURACY, COUNTED_UNITS, LOWER_BETTER, METRIC_WORDS, OBJECTIVES, PRIMARY, SHORT_METRIC,
                      TIE, calibrated_count, calibrated_sentence, collapsed, counted_units, counts,
                      dense_value, global_against_layerwise, hidden_by_loss,
                      half_sparsity_clause, interval, iterative_runs, kept, kl_by_target, kl_leaders,
                      lowest_target_is_best, metrics_scored, model_note, objectives_scored, primary_metric,
                      quality_rows, ranking, ranking_words, relative_words, scale_sentence, separated,
                      usable_sentence, value_text, wilson)
from .results import (CALIBRATED, MAGNITUDE, ModelResults, TEXT_COLUMNS, _json, column, crossovers_of,
                      load_model, per_matrix_table, read_table, run_label, skipped_sentence)
from .runtime import (DISTURBED, all_hold_one, bsr_sentence, crossover_words, crossovers_measured,
                      crossovers_timed_once,
                      csr_rules, disturbed, e2e_words, not_measured, rows_of, speed_cell, speed_interval,
                      speed_words)
from .weights import (BASELINE_WORDS, COLLAPSED, ROLE_LABELS, _dims, beside_weights, casting_sentence,
                      casting_sentences, cdf_sentence, collapse_lead, collapse_overview, collapse_sentence,
                      depth_sentence, histogram_sentence, itemsize, layer_collapse, matrix_roles, most_pruned,
                      near_collapse, role_label, role_order, role_table, size_baselines, threshold_sentence,
                      worst_collapse)
