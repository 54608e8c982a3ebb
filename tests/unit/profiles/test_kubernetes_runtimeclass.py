"""The RuntimeClass `stockade compile --target kubernetes` emits for nodes that run
stockade through containerd (docs/OCI.md, Kubernetes)."""

from __future__ import annotations

import pytest
import yaml

from stockade.linux.hostfacts import HostFacts
from stockade.policy.model import Policy
from stockade.profiles import kubernetes


def test_runtimeclass_is_emitted_and_validates(example_policy: Policy, host: HostFacts) -> None:
    kv = pytest.importorskip("kubernetes_validate",
                             reason="pip package kubernetes-validate (test extra)")
    art = kubernetes.compile(example_policy, host)
    doc = yaml.safe_load(next(f for f in art.files if f.filename == "runtimeclass.yaml").text
                         or "")
    kv.validate(doc, kv.latest_version(), strict=True)
    # the handler is the name of containerd's runtime entry in docs/OCI.md's snippet
    assert (doc["kind"], doc["handler"], doc["metadata"]["name"]) == \
        ("RuntimeClass", "stockade", "stockade")


def test_runtimeclass_invalid_is_caught() -> None:
    kv = pytest.importorskip("kubernetes_validate",
                             reason="pip package kubernetes-validate (test extra)")
    bad = kubernetes.runtime_class()
    bad["handler"] = ["stockade"]  # a list where the schema wants a string
    with pytest.raises(kv.ValidationError):
        kv.validate(bad, kv.latest_version(), strict=True)


def test_pod_does_not_require_the_handler(example_policy: Policy, host: HostFacts) -> None:
    """The Pod must still run on nodes without stockade: it does not name the class."""
    assert "runtimeClassName" not in kubernetes.pod(example_policy, host)["spec"]
