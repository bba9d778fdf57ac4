"""The committed protobuf modules match proto/ (regenerate with `make proto`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[4]


def test_generated_code_is_current(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHON=sys.executable)
    subprocess.run(
        ["bash", str(REPO / "scripts" / "gen_proto.sh"), str(tmp_path)],
        cwd=REPO,
        env=env,
        check=True,
        capture_output=True,
    )
    for name in ("engine_pb2.py", "engine_pb2.pyi", "engine_pb2_grpc.py", "engine_pb2_grpc.pyi"):
        fresh = (tmp_path / "hft" / "engine" / "pb" / name).read_text()
        committed = (REPO / "src" / "hft" / "engine" / "pb" / name).read_text()
        assert fresh == committed, f"src/hft/engine/pb/{name} is stale: run `make proto`"
