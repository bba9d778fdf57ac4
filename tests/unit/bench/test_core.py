"""`hft bench core` and `hft bench all`: structure and consistency, never speed."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from hft.bench import cli, report
from hft.bench import core as bench_core
from hft.engine import core_available

pytestmark = pytest.mark.skipif(not core_available(), reason="hft._core is not built")


def _args(**kw: object) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    bench_core.add_arguments(p)
    args = p.parse_args(
        ["--ops", "3000", "--ref-ops", "1500", "--resting", "2000", "--chunk", "500"]
    )
    for k, v in kw.items():
        setattr(args, k, v)
    return args


def test_core_benchmark_paths_agree() -> None:
    result = bench_core.run(_args())
    batch, per_call, facade, ref = result["results"]
    assert [r["path"] for r in result["results"]] == ["batch", "per_call", "facade", "reference"]
    assert facade["trades"] == batch["trades"]
    assert facade["state_hash"] == batch["state_hash"]
    assert batch["ops"] == per_call["ops"] == 3000
    # Both paths ran the same commands: the same trades and the same final state.
    assert batch["trades"] == per_call["trades"] > 0
    assert batch["state_hash"] == per_call["state_hash"]
    assert ref["same_state_as_core"] is True
    for r in (batch, per_call):
        assert r["p50_ns"] <= r["p99_ns"] <= r["p999_ns"] <= r["max_ns"]
        assert r["ops_per_s"] > 0
    assert result["resting_memory"]["resting_orders"] == 2000
    assert result["peak_rss_mb"] > 0
    assert [row["path"] for row in result["rows"]] == ["batch", "per_call", "facade", "reference"]
    json.dumps(result)


def test_missing_native_binary_is_reported(tmp_path: Path) -> None:
    result = bench_core.run(_args(native=str(tmp_path / "nope"), ref_ops=0, resting=0))
    assert "not found" in result["native"]["error"]
    assert any("native" in n for n in result["notes"])


def test_cli_workload_then_core_replay(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "w.npy"
    assert (
        cli.main(["workload", "--ops", "2000", "--symbols", "2", "--seed", "4", "--out", str(out)])
        == 0
    )
    info = json.loads(capsys.readouterr().out)
    assert info["ops"] == 2000
    assert out.exists()
    assert out.with_suffix(".csv").exists()
    argv = ["core", "--workload", str(out.with_suffix(".csv")), "--ref-ops", "0", "--resting", "0"]
    assert cli.main(argv) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["ops"] == 2000
    assert "| batch |" in captured.err


def test_bench_all_writes_a_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "bench.md"
    argv = ["all", "--only", "core", "--ops", "2000", "--ref-ops", "0", "--resting", "1000"]
    code = cli.main([*argv, "--report", str(target)])
    results = json.loads(capsys.readouterr().out)
    assert list(results) == ["core"]
    text = target.read_text()
    assert "## Machine" in text
    assert "hft bench all --only core --ops 2000" in text
    assert "## Matching core" in text
    assert "| batch |" in text
    assert code == 0


def test_bench_all_only_and_skip_validate_names(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["all", "--only", "core,nonexistent"])
    assert "no benchmark module nonexistent" in capsys.readouterr().err
    # Skipping everything runs nothing and reports nothing.
    everything = ",".join(cli.available_modules())
    assert cli.main(["all", "--skip", everything]) == 0
    assert json.loads(capsys.readouterr().out) == {}


def test_module_discovery() -> None:
    names = cli.available_modules()
    assert names[0] == "core"
    assert not {"cli", "workload", "report"} & set(names)
    assert cli.main(["no_such_benchmark"]) == 2


def test_report_render_handles_errors_and_tables() -> None:
    text = report.render(
        {
            "x": {"title": "X bench", "rows": [{"a": 1, "b": "p|q"}, {"a": 2.5, "c": 3}]},
            "y": {"title": "Y bench", "error": "RuntimeError: boom"},
        },
        "hft bench all",
    )
    assert "| a | b | c |" in text
    assert "p\\|q" in text
    assert "Failed: `RuntimeError: boom`" in text
    assert "CPU" in text


def _script(tmp_path: Path, body: str) -> str:
    path = tmp_path / "fake_core_bench"
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return str(path)


def test_native_json_is_included_and_cross_checked(tmp_path: Path) -> None:
    # A stand-in for core_bench: prints the hash the batch path will reach, and its args.
    first = bench_core.run(_args(ref_ops=0, resting=0))
    want = first["results"][0]["state_hash"]
    fake = _script(
        tmp_path,
        f'echo "{{\\"ops\\": 3000, \\"ops_per_s\\": 1, \\"state_hash\\": \\"{want}\\", '
        f'\\"trades\\": 1, \\"arg\\": \\"$1\\"}}"',
    )
    result = bench_core.run(_args(native=fake, ref_ops=0, resting=0))
    assert result["native"]["same_state_as_batch"] is True
    assert result["native"]["arg"].endswith("workload.npy")
    assert result["rows"][-1]["path"] == "native (C++)"


def test_native_failure_is_reported(tmp_path: Path) -> None:
    fake = _script(tmp_path, "echo boom >&2; exit 3")
    assert bench_core.run_native(fake, "x.npy") == {"error": "exit 3: boom"}
    silent = _script(tmp_path, "echo not json")
    assert "no JSON" in bench_core.run_native(silent, "x.npy")["error"]


def test_bench_all_rejects_options_no_module_knows(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["all", "--only", "core", "--no-such-option", "3"])
    assert "unrecognized arguments: --no-such-option" in capsys.readouterr().err


def test_bench_all_help_lists_modules(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["all", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--report" in out
    assert "core:" in out
    assert "--ops" in out
