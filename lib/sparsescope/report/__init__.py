"""Report: the words, tables and figures computed from saved results, and the HTML/PDF build (build.py);
running the notebooks that make the results and the report is sparsescope.run's."""
