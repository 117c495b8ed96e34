"""Figures shared by the notebooks and the report, drawn at print size: a full-width figure is PRINT_WIDTH
inches wide and its smallest text 7 pt, so the PDF shows it 1:1. Magnitudes span decades, so |w| is always on
a log axis; numeric axes (blocks, sparsity) are in numeric order.

Layout: common.py (print size and theme, palette, markers, ratio axes, the "not measured" note),
distributions.py (histograms, CDFs, CDFs by layer, depth), sparsification.py (heatmaps, sparsity by method),
quality.py, size.py, runtime.py, frontier.py. The package re-exports every public name, so
`from sparsescope.report.plots import ...` reads as it did when this was one module.
"""
from .common import DECADE_MARKS, METHOD_MARKERS, PALETTE, PRINT_RC, PRINT_WIDTH, log_ticks, marker, times
from .distributions import (block_cdf_figure, block_quantile_figure, cdf_figure, depth_figure,
                            histogram_figure, layer_cdf_figure, model_panels, plot_cdf, plot_log10_histogram)
from .frontier import KIND_WORDS, frontier_figure
from .quality import METRIC_LABELS, quality_figure, quality_overview_figure
from .runtime import runtime_figure
from .size import size_figure, size_overview_figure
from .sparsification import layer_sparsity_heatmap, sparsity_size_figure
