"""Report: the words, tables and figures computed from saved results, and the pipeline that runs the
notebooks per model and stitches the report."""
