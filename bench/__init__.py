"""Benchmarks: ratios of personae against the raw libraries.

Run one as `PYTHONPATH=. python bench/NAME.py --help`."""
