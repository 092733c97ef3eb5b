"""Benchmarks: ``gridlink bench`` (run.py and its stages) and standalone scripts of
the pure core, the store and the timers, each printing its figures."""
