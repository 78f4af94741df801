"""Benchmarks (``nemg bench``): each a ratio against a reference in the same run."""
