"""Kubernetes objects against schemas: the Pod against the Kubernetes OpenAPI-derived
JSON schema shipped by the `kubernetes-validate` package (offline), the Security Profiles
Operator objects against schemas transcribed from SPO's CRDs (spo_schemas.py)."""

from __future__ import annotations

import jsonschema
import pytest
import yaml
from spo_schemas import SCHEMAS

from stockade.linux.hostfacts import HostFacts
from stockade.policy.model import Policy
from stockade.profiles import kubernetes


def test_pod_validates_against_kubernetes_schema(example_policy: Policy, host: HostFacts) -> None:
    kv = pytest.importorskip("kubernetes_validate", reason="pip package kubernetes-validate (test extra)")
    pod = kubernetes.pod(example_policy, host)
    kv.validate(pod, kv.latest_version(), strict=True)


def test_pod_invalid_is_caught(web_api: Policy, host: HostFacts) -> None:
    kv = pytest.importorskip("kubernetes_validate", reason="pip package kubernetes-validate (test extra)")
    pod = kubernetes.pod(web_api, host)
    pod["spec"]["securityContext"]["runAsUser"] = "root"
    with pytest.raises(kv.ValidationError):
        kv.validate(pod, kv.latest_version(), strict=True)


def test_spo_objects_validate(example_policy: Policy, host: HostFacts) -> None:
    art = kubernetes.compile(example_policy, host)
    kinds = []
    for f in art.files:
        if f.filename in ("pod.yaml", "all.yaml", "runtimeclass.yaml"):
            continue
        doc = yaml.safe_load(f.text or "")
        jsonschema.validate(doc, SCHEMAS[doc["kind"]])
        kinds.append(doc["kind"])
    assert "SeccompProfile" in kinds


def test_pod_security_context(web_api: Policy, legacy: Policy, host: HostFacts) -> None:
    pod = kubernetes.pod(web_api, host)
    sc = pod["spec"]["securityContext"]
    assert sc["seccompProfile"] == {"type": "Localhost", "localhostProfile": "operator/default/web-api.json"}
    assert sc["appArmorProfile"] == {"type": "Localhost", "localhostProfile": "web-api"}
    csc = pod["spec"]["containers"][0]["securityContext"]
    assert csc["allowPrivilegeEscalation"] is False and csc["readOnlyRootFilesystem"] is True
    assert csc["capabilities"] == {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}
    assert kubernetes.pod(legacy, host)["spec"]["securityContext"]["seLinuxOptions"] == {"type": "legacy-daemon.process"}


def test_all_yaml_lists_profiles_before_pod(legacy: Policy, host: HostFacts) -> None:
    art = kubernetes.compile(legacy, host)
    docs = list(yaml.safe_load_all(next(f for f in art.files if f.filename == "all.yaml").text or ""))
    assert [d["kind"] for d in docs] == ["AppArmorProfile", "SeccompProfile", "SelinuxProfile", "Pod"]
