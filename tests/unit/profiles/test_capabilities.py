from __future__ import annotations

import dataclasses

import pytest

from stockade.errors import PolicyError
from stockade.linux.hostfacts import HostFacts
from stockade.policy.model import Capabilities, Policy
from stockade.profiles import capabilities as caps


def _with_caps(p: Policy, kept: set[str], ambient: tuple[str, ...] = ()) -> Policy:
    return dataclasses.replace(p, capabilities=Capabilities(("ALL",), tuple(kept), ambient, frozenset(kept)))


def test_normalize_accepts_all_spellings() -> None:
    assert caps.normalize_cap("net_bind_service") == "CAP_NET_BIND_SERVICE"
    assert caps.normalize_cap("CAP_Net_Admin") == "CAP_NET_ADMIN"


def test_unknown_capability_is_an_error_with_suggestion() -> None:
    with pytest.raises(PolicyError) as exc:
        caps.validate_capabilities(["CHOWN", "NET_BIND_SERVIC"])
    assert "did you mean 'NET_BIND_SERVICE'" in str(exc.value)
    assert exc.value.exit_code == 2


def test_oci_sets_inheritable_empty_ambient_subset(web_api: Policy, host: HostFacts) -> None:
    p = _with_caps(web_api, {"CAP_NET_BIND_SERVICE", "CAP_CHOWN"}, ("CAP_NET_BIND_SERVICE",))
    oci = caps.oci_capabilities(p, host)
    assert oci["bounding"] == oci["effective"] == oci["permitted"] == ["CAP_CHOWN", "CAP_NET_BIND_SERVICE"]
    assert oci["ambient"] == ["CAP_NET_BIND_SERVICE"]
    assert oci["inheritable"] == ["CAP_NET_BIND_SERVICE"]  # ambient needs inheritable


def test_no_ambient_means_empty_inheritable(web_api: Policy, host: HostFacts) -> None:
    oci = caps.oci_capabilities(web_api, host)
    assert oci["inheritable"] == [] and oci["ambient"] == []


def test_docker_kubernetes_systemd(web_api: Policy, host: HostFacts) -> None:
    assert caps.docker_flags(web_api, host) == ["--cap-drop", "ALL", "--cap-add", "CAP_NET_BIND_SERVICE"]
    assert caps.kubernetes_capabilities(web_api, host) == {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}
    assert dict(caps.systemd_lines(web_api, host))["CapabilityBoundingSet"] == "CAP_NET_BIND_SERVICE"


def test_drop_all_gives_empty_sets(batch: Policy, host: HostFacts) -> None:
    assert caps.kubernetes_capabilities(batch, host) == {"drop": ["ALL"]}
    assert dict(caps.systemd_lines(batch, host))["CapabilityBoundingSet"] == ""


def test_critical_capability_warns(web_api: Policy, host: HostFacts) -> None:
    p = _with_caps(web_api, {"CAP_SYS_ADMIN", "CAP_CHOWN"})
    art = caps.compile(p, host)
    assert any("CAP_SYS_ADMIN" in w and "critical" in w for w in art.warnings)
    assert not any("CAP_CHOWN" in w for w in art.warnings)


def test_caps_beyond_host_are_left_out_with_warning(web_api: Policy) -> None:
    p = _with_caps(web_api, {"CAP_BPF", "CAP_CHOWN"})
    old = HostFacts(cap_last_cap=37)
    assert caps.oci_capabilities(p, old)["bounding"] == ["CAP_CHOWN"]
    assert any("CAP_BPF" in w and "cap_last_cap=37" in w for w in caps.compile(p, old).warnings)
