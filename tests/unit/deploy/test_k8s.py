"""deploy/k8s: Kubernetes schemas (kubernetes-validate, strict) and references between objects."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import K8S, REPO, load_yaml_documents, require_module

require_module("kubernetes_validate", "kubernetes-validate==1.37.0")
import kubernetes_validate  # noqa: E402

Resources = dict[tuple[str, str], dict[str, Any]]
WORKLOADS = {"Deployment", "StatefulSet"}
MANIFESTS = sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
K8S_VERSION = "1.30.0"  # the oldest release we support; native gRPC probes are GA since 1.27


def _validate(doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_schema_strict(path: Path) -> None:
    for doc in load_yaml_documents(path):
        _validate(doc)


def test_schema_check_catches_mistakes(k8s_resources: Resources) -> None:
    engine = copy.deepcopy(k8s_resources[("StatefulSet", "hft-engine")])
    engine["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["grpcc"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate(engine)
    backend = copy.deepcopy(k8s_resources[("Deployment", "hft-backend")])
    backend["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate(backend)


def _pod_specs(resources: Resources) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    return [
        (name, doc["spec"]["template"]["metadata"]["labels"], doc["spec"]["template"]["spec"])
        for (kind, name), doc in resources.items()
        if kind in WORKLOADS
    ]


def test_everything_is_in_one_namespace(k8s_resources: Resources) -> None:
    assert ("Namespace", "hft") in k8s_resources
    for (kind, name), doc in k8s_resources.items():
        if kind != "Namespace":
            assert doc["metadata"].get("namespace") == "hft", f"{kind}/{name}"


def test_workload_selectors_match_their_pods(k8s_resources: Resources) -> None:
    for (kind, name), doc in k8s_resources.items():
        if kind in WORKLOADS:
            selector = doc["spec"]["selector"]["matchLabels"]
            labels = doc["spec"]["template"]["metadata"]["labels"]
            assert selector.items() <= labels.items(), f"{kind}/{name}"


def test_services_select_pods_and_named_ports_exist(k8s_resources: Resources) -> None:
    pods = _pod_specs(k8s_resources)
    for (kind, name), doc in k8s_resources.items():
        if kind != "Service":
            continue
        selector = doc["spec"]["selector"]
        matching = [spec for _, labels, spec in pods if selector.items() <= labels.items()]
        assert len(matching) == 1, f"Service/{name} selects {len(matching)} workloads"
        container_ports = {
            p.get("name"): p["containerPort"]
            for c in matching[0]["containers"]
            for p in c.get("ports", [])
        }
        for port in doc["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            if isinstance(target, str):
                assert target in container_ports, f"Service/{name}: no port named {target}"
                assert container_ports[target] == port["port"]
            else:
                assert target in container_ports.values()


def test_statefulsets_have_a_headless_service_and_claims(k8s_resources: Resources) -> None:
    for (kind, name), doc in k8s_resources.items():
        if kind != "StatefulSet":
            continue
        service = k8s_resources[("Service", doc["spec"]["serviceName"])]
        assert service["spec"]["clusterIP"] == "None", f"{name}: service is not headless"
        assert doc["spec"]["replicas"] == 1, f"{name}: one writer per volume"
        claims = {c["metadata"]["name"] for c in doc["spec"]["volumeClaimTemplates"]}
        mounts = {
            m["name"]
            for c in doc["spec"]["template"]["spec"]["containers"]
            for m in c["volumeMounts"]
        }
        assert claims <= mounts, f"{name}: claim not mounted"


def test_volume_config_and_secret_references_resolve(k8s_resources: Resources) -> None:
    secret = yaml.safe_load((K8S / "secret.example.yaml").read_text())
    secrets = {secret["metadata"]["name"]: set(secret["stringData"])}
    configmaps = {
        name: set(doc["data"]) for (kind, name), doc in k8s_resources.items() if kind == "ConfigMap"
    }
    for (kind, name), doc in k8s_resources.items():
        if kind not in WORKLOADS:
            continue
        spec = doc["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        claims = {c["metadata"]["name"] for c in doc["spec"].get("volumeClaimTemplates", [])}
        for volume in volumes.values():
            if "configMap" in volume:
                keys = configmaps[volume["configMap"]["name"]]
                assert {i["key"] for i in volume["configMap"].get("items", [])} <= keys
        for container in spec["containers"]:
            for mount in container.get("volumeMounts", []):
                assert mount["name"] in volumes or mount["name"] in claims, (
                    f"{kind}/{name}: volume {mount['name']} is not defined"
                )
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["key"] in secrets[ref["name"]], f"{name}: {ref}"


def test_probes(k8s_resources: Resources) -> None:
    engine = k8s_resources[("StatefulSet", "hft-engine")]["spec"]["template"]["spec"]
    (container,) = engine["containers"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == 50051
    backend = k8s_resources[("Deployment", "hft-backend")]
    assert backend["spec"]["replicas"] == 2
    (api,) = backend["spec"]["template"]["spec"]["containers"]
    assert api["readinessProbe"]["httpGet"]["path"] == "/health"
    # /health is 503 when the engine is down; restarting backends would not help then.
    assert "httpGet" not in api["livenessProbe"]


def test_runs_as_non_root(k8s_resources: Resources) -> None:
    for name, _, spec in _pod_specs(k8s_resources):
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        for container in spec["containers"]:
            assert container["securityContext"]["allowPrivilegeEscalation"] is False, name


def test_network_policies_select_pods_and_named_ports(k8s_resources: Resources) -> None:
    pods = _pod_specs(k8s_resources)

    def ports_of(selector: dict[str, str]) -> set[str]:
        matching = [s for _, labels, s in pods if selector.items() <= labels.items()]
        assert len(matching) == 1, f"{selector} selects {len(matching)} workloads"
        return {p["name"] for c in matching[0]["containers"] for p in c.get("ports", [])}

    policies = {n: d for (k, n), d in k8s_resources.items() if k == "NetworkPolicy"}
    assert set(policies) == {"hft-engine", "hft-postgres"}
    for name, policy in policies.items():
        own_ports = ports_of(policy["spec"]["podSelector"]["matchLabels"])
        for rule in policy["spec"]["ingress"]:
            for port in rule["ports"]:
                assert port["port"] in own_ports, f"{name}: no port {port['port']}"
            for peer in rule["from"]:
                if "podSelector" in peer:
                    ports_of(peer["podSelector"]["matchLabels"])
    # The engine's order port admits the backend only.
    (grpc_rule,) = [
        r for r in policies["hft-engine"]["spec"]["ingress"] if r["ports"][0]["port"] == "grpc"
    ]
    (peer,) = grpc_rule["from"]
    assert peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "backend"


def test_ingress_routes_to_services_with_tls(k8s_resources: Resources) -> None:
    ingress = k8s_resources[("Ingress", "hft")]
    assert ingress["spec"]["tls"][0]["secretName"]
    hosts = set(ingress["spec"]["tls"][0]["hosts"])
    for rule in ingress["spec"]["rules"]:
        assert rule["host"] in hosts
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            service = k8s_resources[("Service", backend["name"])]
            port_names = {p["name"] for p in service["spec"]["ports"]}
            assert backend["port"]["name"] in port_names
    paths = {p["path"] for r in ingress["spec"]["rules"] for p in r["http"]["paths"]}
    assert {"/api", "/"} <= paths


def test_backend_and_frontend_addresses_point_at_services(k8s_resources: Resources) -> None:
    def env_of(kind: str, name: str) -> dict[str, str]:
        spec = k8s_resources[(kind, name)]["spec"]["template"]["spec"]
        return {e["name"]: e.get("value", "") for e in spec["containers"][0]["env"]}

    for kind, name, var in (
        ("Deployment", "hft-backend", "HFT_ENGINE_ADDRESS"),
        ("Deployment", "hft-frontend", "HFT_BACKEND_UPSTREAM"),
    ):
        host, port = env_of(kind, name)[var].split(":")
        service = k8s_resources[("Service", host)]
        assert int(port) in {p["port"] for p in service["spec"]["ports"]}, var
    secret = yaml.safe_load((K8S / "secret.example.yaml").read_text())
    assert "@hft-postgres:5432/" in secret["stringData"]["database-url"]
    # Every replica must share the secrets the backend would otherwise generate per pod.
    spec = k8s_resources[("Deployment", "hft-backend")]["spec"]["template"]["spec"]
    from_secret = {
        e["name"] for e in spec["containers"][0]["env"] if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert {"HFT_JWT_SECRET", "HFT_API_KEY_MASTER_KEY", "HFT_DATABASE_URL"} <= from_secret


def test_configmap_is_a_valid_platform_config(k8s_resources: Resources) -> None:
    shipped = yaml.safe_load(k8s_resources[("ConfigMap", "hft-config")]["data"]["config.yaml"])
    default = yaml.safe_load((REPO / "config" / "default.yaml").read_text())
    assert set(shipped) == set(default)
    fields = set(default["instruments"][0])
    for instrument in shipped["instruments"]:
        assert set(instrument) == fields


def test_kustomization_lists_every_manifest_but_the_example_secret() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    expected = {p.name for p in MANIFESTS} - {"secret.example.yaml"}
    assert listed == expected
    assert kustomization["namespace"] == "hft"
    images = {i["name"] for i in kustomization["images"]}
    used = {
        c["image"].split(":")[0]
        for path in MANIFESTS
        for doc in load_yaml_documents(path)
        if doc["kind"] in WORKLOADS
        for c in doc["spec"]["template"]["spec"]["containers"]
        if c["image"].startswith("hft/")
    }
    assert used == images == {"hft/engine", "hft/backend", "hft/frontend"}
