"""Benchmarks of the preprocessing pipeline (``make bench``; see bench/run.py)."""
