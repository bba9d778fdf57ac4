"""Benchmarks (`hft bench ...`); they measure and report, nothing asserts a speed.

Benchmark modules are plain modules in this package, found by name: `hft bench NAME`
runs `hft.bench.NAME`, and `hft bench all` runs every module here that exposes `run`
(core first, the rest in name order), skipping modules that are absent. A module provides

* ``TITLE: str`` (optional) - the section heading in the report;
* ``add_arguments(parser: argparse.ArgumentParser) -> None`` (optional) - its options.
  Under `hft bench all` each module parses the command line with its own parser and
  takes the options it knows, so a shared name such as ``--ops`` reaches every module
  that defines it; an option no module knows is an error;
* ``run(args: argparse.Namespace) -> dict`` - runs the benchmark and returns a JSON-able
  dict. The report uses ``title`` (str), ``rows`` (list of flat dicts with the same keys:
  one markdown table) and ``notes`` (list of str) when present, and keeps the whole dict
  as JSON beside the table.

`hft.bench.report` renders the results with a description of the machine.
"""
