"""Analysis: exact streaming statistics of weight magnitudes (notebook 01)."""
