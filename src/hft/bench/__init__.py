"""Benchmarks (`hft bench ...`); they measure and report, nothing asserts a speed.

Benchmark modules are plain modules in this package, found by name: `hft bench NAME`
runs `hft.bench.NAME`, and `hft bench all` runs every module here that exposes `run`
(core first, the rest in name order), skipping modules that are absent. A module provides

* ``TITLE: str`` (optional) - the section heading in the report;
* ``add_arguments(parser: argparse.ArgumentParser) -> None`` (optional) - its options;
  under `hft bench all` every module's options share one parser, so name them
  distinctly (for example ``--grpc-clients``);
* ``run(args: argparse.Namespace) -> dict`` - runs the benchmark and returns a JSON-able
  dict. The report uses ``title`` (str), ``rows`` (list of flat dicts with the same keys:
  one markdown table) and ``notes`` (list of str) when present, and keeps the whole dict
  as JSON beside the table.

`hft.bench.report` renders the results with a description of the machine.
"""
