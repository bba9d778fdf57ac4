"""A baseline revision checked out beside the working tree, for benchmark comparisons."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hft.bench import _baseline


def test_processes_given_its_environment_import_hft_from_the_revision() -> None:
    with _baseline.BaselineTree("HEAD") as tree:
        src = tree.src
        probe = (
            "import hft, hft._core, hft.api.trading.entry as entry\n"
            "print(hft.__file__); print(entry.__file__); print(hft._core.__file__)"
        )
        out = subprocess.run(
            [sys.executable, "-c", probe],
            env=tree.env(dict(os.environ)),
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        assert len(out) == 3
        assert all(Path(p).is_relative_to(src) for p in out), out
        assert tree.commit == _baseline._git(tree.repo, "rev-parse", "HEAD").stdout.strip()
    # Removed afterwards, worktree registration included.
    assert not src.exists()
    listed = _baseline._git(tree.repo, "worktree", "list", "--porcelain").stdout
    assert str(src.parent) not in listed


def test_an_unknown_revision_is_refused() -> None:
    with pytest.raises(_baseline.BaselineError, match="is not a commit"):
        _baseline.BaselineTree("no-such-revision-anywhere")


def test_a_revision_with_another_cpp_core_is_refused() -> None:
    repo = _baseline.repository()
    last = _baseline._git(repo, "log", "-1", "--format=%H", "--", "core").stdout.strip()
    parent = _baseline._git(repo, "rev-parse", "--verify", "--quiet", f"{last}~1", check=False)
    if not last or parent.returncode != 0:
        pytest.skip("no history of the C++ core in this clone")
    with pytest.raises(_baseline.BaselineError, match="C\\+\\+ core differs"):
        _baseline.resolve(repo, f"{last}~1")
