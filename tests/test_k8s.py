"""The Kubernetes manifests (deploy/k8s/) are valid for Kubernetes 1.30 to the newest schema kubernetes-validate
ships, and say what the product needs: probes on the app's routes, an HPA on the gauge metrics.py exports, the
shipped nginx.conf, Redis with AOF and Sentinel, Chroma on a volume, vLLM on a GPU, secrets from a Secret.

No cluster and no kubectl here: the schemas are the ones the PyPI package ships (offline), and the kustomization is
assembled by this file (its resource list and namespace).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

import metrics
from settings import SECRET_WORDS, Settings
from tools.redis_client import parse_sentinel_url

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
K8S = DEPLOY / "k8s"
OLDEST = "1.30"  # preStop `sleep` and the other fields used here exist from 1.30 on


def load(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


@pytest.fixture(scope="module")
def kustomization() -> dict[str, Any]:
    return yaml.safe_load((K8S / "kustomization.yaml").read_text())


@pytest.fixture(scope="module")
def resources(kustomization: dict[str, Any]) -> list[dict[str, Any]]:
    """What `kubectl apply -k deploy/k8s` applies: the listed files' documents."""
    return [doc for name in kustomization["resources"] for doc in load(K8S / name)]


def find(resources: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [r for r in resources if r["kind"] == kind and r["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} found"
    return matches[0]


def container(workload: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in workload["spec"]["template"]["spec"]["containers"] if c["name"] == name)


def workloads(resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in resources if r["kind"] in ("Deployment", "StatefulSet")]


def config_data(resources: list[dict[str, Any]], name: str) -> dict[str, str]:
    return find(resources, "ConfigMap", name)["data"]


def service_port(resources: list[dict[str, Any]], service: str) -> set[int]:
    return {port["port"] for port in find(resources, "Service", service)["spec"]["ports"]}


def test_the_kustomization_lists_every_manifest_and_one_namespace(kustomization: dict, resources: list) -> None:
    files = {path.name for path in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files
    namespace = kustomization["namespace"]
    find(resources, "Namespace", namespace)
    for resource in resources:
        if resource["kind"] != "Namespace":
            assert resource["metadata"].get("namespace") == namespace, resource["metadata"]["name"]


@pytest.mark.parametrize("version", [OLDEST, kubernetes_validate.latest_version()])
def test_every_manifest_follows_the_kubernetes_schema(version: str, resources: list) -> None:
    """Strict: an unknown field (a typo such as `readinesProbe`) fails as well as a wrong type."""
    assert resources
    for resource in resources:
        try:
            kubernetes_validate.validate(resource, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            where = ".".join(str(part) for part in error.path)
            pytest.fail(f"{resource['kind']}/{resource['metadata']['name']} at {where}: {error.message}")


def test_every_service_and_budget_selects_pods_that_exist(resources: list) -> None:
    pod_labels = [w["spec"]["template"]["metadata"]["labels"] for w in workloads(resources)]
    for workload in workloads(resources):
        assert (
            workload["spec"]["selector"]["matchLabels"].items()
            <= workload["spec"]["template"]["metadata"]["labels"].items()
        )
    selectors = [(r["metadata"]["name"], r["spec"]["selector"]) for r in resources if r["kind"] == "Service"]
    selectors += [
        (r["metadata"]["name"], r["spec"]["selector"]["matchLabels"])
        for r in resources
        if r["kind"] == "PodDisruptionBudget"
    ]
    for name, selector in selectors:
        assert any(selector.items() <= labels.items() for labels in pod_labels), name
    budgets = {
        r["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"]
        for r in resources
        if r["kind"] == "PodDisruptionBudget"
    }
    assert budgets == {"app", "nginx", "redis"}  # the replicated parts; Chroma and vLLM are single pods


def test_every_container_has_resource_requests_and_limits(resources: list) -> None:
    for workload in workloads(resources):
        for item in workload["spec"]["template"]["spec"]["containers"]:
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(item["resources"][bound]), (workload["metadata"]["name"], bound)


def test_the_app_is_probed_on_ready_and_health_on_the_port_it_listens_on(resources: list) -> None:
    app = container(find(resources, "Deployment", "app"), "app")
    listens = int(re.search(r'"--port", "(\d+)"', (DEPLOY / "Dockerfile").read_text().rsplit("CMD", 1)[1])[1])
    ports = {port["name"]: port["containerPort"] for port in app["ports"]}

    def probe(kind: str) -> tuple[str, int]:
        get = app[kind]["httpGet"]
        return get["path"], ports.get(get["port"], get["port"])

    assert probe("readinessProbe") == ("/ready", listens)
    assert probe("livenessProbe") == ("/health", listens)
    # nginx and the HPA reach the pods through these
    assert {p["targetPort"] for p in find(resources, "Service", "app-pods")["spec"]["ports"]} <= {listens, *ports}


def test_the_hpa_scales_the_app_on_the_streams_gauge_metrics_py_exports(resources: list) -> None:
    exported = metrics.STREAMS._name  # the series name Prometheus scrapes from /metrics
    assert isinstance(metrics.STREAMS, metrics.Gauge)
    hpa = find(resources, "HorizontalPodAutoscaler", "app")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["apiVersion"]) == ("Deployment", "apps/v1")
    find(resources, "Deployment", target["name"])
    assert target["name"] == "app"
    pods = [m["pods"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"]
    assert [m["metric"]["name"] for m in pods] == [exported]
    assert pods[0]["target"]["type"] == "AverageValue"
    assert hpa["spec"]["minReplicas"] >= 2

    rule = yaml.safe_load((K8S / "monitoring" / "prometheus-adapter-values.yaml").read_text())["rules"]["custom"]
    assert [r["name"]["as"] for r in rule] == [exported]
    assert rule[0]["seriesQuery"].startswith(exported + "{")
    assert rule[0]["resources"]["overrides"]["pod"] == {"resource": "pod"}


def test_prometheus_scrapes_metrics_with_the_admin_token_from_the_secret(resources: list) -> None:
    (monitor,) = load(K8S / "monitoring" / "servicemonitor.yaml")
    assert (
        monitor["spec"]["selector"]["matchLabels"].items()
        <= find(resources, "Service", "app")["metadata"]["labels"].items()
    )
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    assert endpoint["authorization"]["credentials"] == {"name": "support-chatbot", "key": "ADMIN_TOKEN"}


UPSTREAM = re.compile(r"\n    upstream app \{\n.*?\n    \}\n", re.S)


def test_the_proxy_runs_the_shipped_nginx_conf_with_only_its_upstream_changed(
    kustomization: dict, resources: list
) -> None:
    shipped = (DEPLOY / "nginx.conf").read_text()
    in_cluster = config_data(resources, "nginx-conf")["nginx.conf"]
    assert UPSTREAM.sub("\nUPSTREAM\n", in_cluster) == UPSTREAM.sub("\nUPSTREAM\n", shipped)
    upstream = UPSTREAM.search(in_cluster)[0]
    assert "least_conn;" in upstream and "keepalive" in upstream
    # Every ready app pod, re-resolved as the HPA scales: the headless Service, by its full name (nginx's resolver
    # has no search domains), with `resolve`.
    server = re.search(r"server (\S+):(\d+) resolve;", upstream)
    assert server and server[1] == f"app-pods.{kustomization['namespace']}.svc.cluster.local"
    assert int(server[2]) in service_port(resources, "app-pods")
    assert find(resources, "Service", "app-pods")["spec"]["clusterIP"] == "None"

    nginx = find(resources, "Deployment", "nginx")
    mount = container(nginx, "nginx")["volumeMounts"][0]
    assert (mount["mountPath"], mount["subPath"]) == ("/etc/nginx/nginx.conf", "nginx.conf")
    volume = nginx["spec"]["template"]["spec"]["volumes"][0]
    assert volume["name"] == mount["name"] and volume["configMap"]["name"] == "nginx-conf"
    version = tuple(int(n) for n in container(nginx, "nginx")["image"].split(":")[1].split("."))
    assert version >= (1, 27, 3) or version[:2] >= (1, 28)  # `server … resolve` in open-source nginx
    # The customer's address reaches nginx (kube-proxy's SNAT would give every customer a node's address).
    service = find(resources, "Service", "nginx")
    assert (service["spec"]["type"], service["spec"]["externalTrafficPolicy"]) == ("LoadBalancer", "Local")


def test_the_app_trusts_forwarded_addresses_only_from_pods_that_nginx_alone_may_be(resources: list) -> None:
    trusted = Settings(trusted_proxies=config_data(resources, "app-config")["TRUSTED_PROXIES"]).trusted_proxies
    assert trusted and all("/" in network for network in trusted)  # a pod network: nginx pods' IPs change
    (policy,) = [r for r in resources if r["kind"] == "NetworkPolicy"]
    assert (
        policy["spec"]["podSelector"]["matchLabels"]
        == find(resources, "Deployment", "app")["spec"]["selector"]["matchLabels"]
    )
    (rule,) = policy["spec"]["ingress"]
    pod_peers = [peer["podSelector"]["matchLabels"] for peer in rule["from"] if "podSelector" in peer]
    assert pod_peers == [find(resources, "Deployment", "nginx")["spec"]["selector"]["matchLabels"]]


def test_the_app_sets_only_known_settings_and_takes_every_secret_from_the_secret(resources: list) -> None:
    app = container(find(resources, "Deployment", "app"), "app")
    (source,) = app["envFrom"]
    plain = config_data(resources, source["configMapRef"]["name"])
    from_secret = {
        e["name"]: e["valueFrom"]["secretKeyRef"] for e in app["env"] if "secretKeyRef" in e.get("valueFrom", {})
    }
    known = {name.upper() for name in Settings.model_fields}
    assert set(plain) | {e["name"] for e in app["env"]} <= known
    assert {"LLM_BASE_URL", "LLM_MODEL", "REDIS_URL", "CHROMA_URL", "TRUSTED_PROXIES"} <= set(plain)
    assert "ADMIN_TOKEN" in from_secret
    assert not [r for r in resources if r["kind"] == "Secret"]  # created by hand, never committed
    for workload in workloads(resources):
        for item in workload["spec"]["template"]["spec"]["containers"]:
            for env in item.get("env", []):
                if any(word in env["name"].lower() for word in SECRET_WORDS):
                    assert "value" not in env and "secretKeyRef" in env["valueFrom"], env["name"]
    for config in (r for r in resources if r["kind"] == "ConfigMap"):
        assert not [key for key in config["data"] if any(word in key.lower() for word in SECRET_WORDS)]


def test_the_app_accepts_every_setting_the_manifests_give_it(resources: list) -> None:
    """What a pod starts with passes the app's own checks (docs/configuration.md#validation), REDIS_URL's form too."""
    plain = config_data(resources, "app-config")
    Settings(**{key.lower(): value for key, value in plain.items()}, admin_token="x")


def test_redis_keeps_an_aof_on_a_volume_and_the_app_finds_the_master_through_sentinel(resources: list) -> None:
    redis = find(resources, "StatefulSet", "redis")
    assert redis["spec"]["replicas"] >= 3  # a Sentinel quorum survives one lost pod
    scripts = config_data(resources, "redis-scripts")
    server = container(redis, "redis")
    script = scripts[server["command"][-1].rsplit("/", 1)[1]]
    assert "--appendonly yes" in script and "--dir /data" in script
    (claim,) = redis["spec"]["volumeClaimTemplates"]
    assert {"name": claim["metadata"]["name"], "mountPath": "/data"} in server["volumeMounts"]

    sentinel = scripts[container(redis, "sentinel")["command"][-1].rsplit("/", 1)[1]]
    monitor = re.search(r"sentinel monitor (\S+) \S+ (\d+) (\d+)", sentinel)
    assert monitor and int(monitor[3]) == redis["spec"]["replicas"] // 2 + 1

    # REDIS_URL as the app reads it: every Sentinel pod by its stable name and port, and the monitored master's name
    url = parse_sentinel_url(config_data(resources, "app-config")["REDIS_URL"])
    pods = {f"redis-{n}.{redis['spec']['serviceName']}" for n in range(redis["spec"]["replicas"])}
    sentinel_port = {p["containerPort"] for p in container(redis, "sentinel")["ports"]}
    assert {host for host, _ in url.sentinels} == pods and {port for _, port in url.sentinels} == sentinel_port
    assert sentinel_port <= service_port(resources, redis["spec"]["serviceName"])
    assert url.service == monitor[1]
    assert find(resources, "Service", "redis-headless")["spec"]["publishNotReadyAddresses"] is True


def test_the_redis_scripts_are_valid_shell(resources: list) -> None:
    """`sh -n` reads each start script as the redis:7 image's /bin/sh would (no cluster here to run them)."""
    for name, script in config_data(resources, "redis-scripts").items():
        result = subprocess.run(["sh", "-n"], input=script, capture_output=True, text=True)
        assert result.returncode == 0, f"{name}: {result.stderr}"


def test_chroma_is_one_server_on_a_persistent_volume(resources: list) -> None:
    chroma = find(resources, "StatefulSet", "chroma")
    assert chroma["spec"]["replicas"] == 1  # two processes on one Chroma folder corrupt it
    (claim,) = chroma["spec"]["volumeClaimTemplates"]
    assert {"name": claim["metadata"]["name"], "mountPath": "/data"} in container(chroma, "chroma")["volumeMounts"]
    url = urlsplit(config_data(resources, "app-config")["CHROMA_URL"])
    assert url.hostname == "chroma" and url.port in service_port(resources, "chroma")


def test_vllm_serves_llama_3_1_8b_on_a_gpu_and_names_the_production_stack(resources: list) -> None:
    vllm = find(resources, "Deployment", "vllm")
    server = container(vllm, "vllm")
    assert server["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert "--model=meta-llama/Llama-3.1-8B-Instruct" in server["args"]
    assert "--enable-prefix-caching" in server["args"]
    served = next(a for a in server["args"] if a.startswith("--served-model-name=")).split("=", 1)[1]
    config = config_data(resources, "app-config")
    assert config["LLM_MODEL"] == served
    url = urlsplit(config["LLM_BASE_URL"])
    assert url.hostname == "vllm" and url.port in service_port(resources, "vllm") and url.path == "/v1"
    assert vllm["spec"]["strategy"]["type"] == "Recreate"
    assert "production-stack" in (K8S / "vllm.yaml").read_text()
