"""The deployment files agree with the code and with each other (issue 19).

``make image-test`` builds and runs the image; these checks are cheap and run in ``make test``:
every ``GATEHOUSE_*`` variable a deployment file sets is a real setting, the Compose file's
balancer is the one nginx.conf describes, and the Kubernetes manifests probe the routes that
exist and run as the image's user.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from gatehouse.settings import Settings

ROOT = Path(__file__).parents[1]
DEPLOY = ROOT / "deploy"
DOCKERFILE = (ROOT / "Dockerfile").read_text()
SETTINGS = {f"GATEHOUSE_{name.upper()}" for name in Settings.model_fields}


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return data


def manifests() -> dict[str, dict[str, Any]]:
    """kind/name -> manifest, for every file kustomization.yaml lists."""
    kustomization = yaml.safe_load((DEPLOY / "kubernetes" / "kustomization.yaml").read_text())
    found: dict[str, dict[str, Any]] = {}
    for name in kustomization["resources"]:
        for doc in yaml.safe_load_all((DEPLOY / "kubernetes" / name).read_text()):
            found[f"{doc['kind']}/{doc['metadata']['name']}"] = doc
    return found


def gatehouse_services() -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in compose()["services"].items()
        if "gatehouse" in str(service.get("image", ""))
    }


def dockerfile_value(instruction: str) -> str:
    """The argument of the last ``instruction`` in the Dockerfile (the runtime stage's)."""
    found = re.findall(rf"^{instruction} (.+)$", DOCKERFILE, flags=re.MULTILINE)
    assert found, instruction
    return str(found[-1]).strip()


def test_every_variable_the_deployment_files_set_is_a_setting() -> None:
    named: dict[str, set[str]] = {}
    for name, service in gatehouse_services().items():
        named[f"compose {name}"] = set(service["environment"])
    for key, doc in manifests().items():
        if doc["kind"] == "ConfigMap":
            named[key] = set(doc["data"])
        for container in (
            doc.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])
        ):
            named[f"{key} env"] = {e["name"] for e in container.get("env", [])}
    example = (DEPLOY / "kubernetes" / "secret.env.example").read_text()
    named["secret.env.example"] = set(re.findall(r"^(GATEHOUSE_\w+)=", example, re.MULTILINE))
    named["Dockerfile"] = set(re.findall(r"\b(GATEHOUSE_[A-Z_]+)=", DOCKERFILE))
    unknown = {where: sorted(names - SETTINGS) for where, names in named.items()}
    assert not any(unknown.values()), unknown
    assert named["secret.env.example"] == {"GATEHOUSE_DATABASE_URL", "GATEHOUSE_SECRET_KEY"}


def test_image_keeps_its_data_in_the_volume_and_checks_healthz() -> None:
    assert "GATEHOUSE_DATA_DIR=/var/lib/gatehouse" in DOCKERFILE
    assert dockerfile_value("VOLUME") == '["/var/lib/gatehouse"]'
    assert dockerfile_value("USER") == "10001:10001"
    assert dockerfile_value("EXPOSE") == "8000"
    healthcheck = re.search(r"^HEALTHCHECK [^\n]*\\\n\s*CMD (.+)$", DOCKERFILE, re.MULTILINE)
    assert healthcheck is not None and "/healthz" in healthcheck.group(1)
    assert dockerfile_value("ENTRYPOINT") == '["gatehouse"]'


def test_compose_balances_two_console_replicas_and_trusts_only_the_balancer() -> None:
    data = compose()
    services = gatehouse_services()
    consoles = sorted(
        n
        for n, s in services.items()
        if s["environment"].get("GATEHOUSE_ROLE") == "console" and "command" not in s
    )
    assert consoles == ["console-a", "console-b"]
    assert services["console-a"]["environment"] == services["console-b"]["environment"]
    assert services["environment"]["environment"]["GATEHOUSE_ROLE"] == "environment"
    assert services["migrate"]["command"] == ["db", "upgrade"]
    nginx = (DEPLOY / "nginx.conf").read_text()
    assert sorted(re.findall(r"server (console-[ab]):8000", nginx)) == consoles
    balancer = data["services"]["lb"]["networks"]["gatehouse"]["ipv4_address"]
    assert services["console-a"]["environment"]["GATEHOUSE_TRUSTED_PROXIES"] == balancer
    assert "X-Forwarded-For $remote_addr" in nginx  # replaced, never appended
    for name, service in services.items():
        assert service["read_only"] is True, name
        assert service["cap_drop"] == ["ALL"], name


@pytest.mark.parametrize("kind_name", ["Deployment/gatehouse", "Job/gatehouse-migrate"])
def test_kubernetes_pods_run_the_image_as_its_user_on_a_read_only_root(kind_name: str) -> None:
    doc = manifests()[kind_name]
    pod = doc["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    (container,) = pod["containers"]
    assert container["image"] == "gatehouse"  # kustomization.yaml's images: entry
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert "/var/lib/gatehouse" in mounts
    refs = {next(iter(r.values()))["name"] for r in container["envFrom"]}
    assert refs == {"gatehouse"}  # the ConfigMap and the generated Secret


def test_kubernetes_probes_use_liveness_and_readiness_routes_and_the_job_migrates() -> None:
    found = manifests()
    (console,) = found["Deployment/gatehouse"]["spec"]["template"]["spec"]["containers"]
    assert console["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert console["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert console["ports"] == [{"name": "http", "containerPort": 8000}]
    (migrate,) = found["Job/gatehouse-migrate"]["spec"]["template"]["spec"]["containers"]
    assert migrate["args"] == ["db", "upgrade"]
    kustomization = yaml.safe_load((DEPLOY / "kubernetes" / "kustomization.yaml").read_text())
    assert kustomization["secretGenerator"][0]["envs"] == ["secret.env"]
    assert [i["name"] for i in kustomization["images"]] == ["gatehouse"]
