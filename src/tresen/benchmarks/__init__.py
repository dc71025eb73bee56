"""The measuring code behind `tresen bench NAME`; each run prints one JSON line.

The scripts in the repository's top-level `benchmarks/` folder are thin command-line wrappers
around these modules (`benchmarks/ingest.py` runs `tresen.benchmarks.ingest`), for running a
figure from a checkout without installing the `tresen` command (see docs/performance.md).
"""
