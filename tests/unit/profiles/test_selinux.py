from __future__ import annotations

import dataclasses

import pytest

from stockade.errors import PolicyError
from stockade.linux.hostfacts import HostFacts
from stockade.policy.model import Lsm, Policy, SELinux
from stockade.profiles import selinux
from stockade.profiles.selinux import cil


def _typed(p: Policy, t: str, base: str = "container") -> Policy:
    return dataclasses.replace(p, lsm=Lsm(selinux=SELinux(t, base)))


@pytest.mark.parametrize("bad", ["web-api_t", "1web_t", "web.api_t", "web_api", "web api_t", ""])
def test_invalid_type_name_is_a_policy_error(web_api: Policy, host: HostFacts, bad: str) -> None:
    with pytest.raises(PolicyError) as exc:
        selinux.compile(_typed(web_api, bad), host)
    assert "lsm.selinux.type" in str(exc.value) and exc.value.exit_code == 2


def test_unknown_base(web_api: Policy, host: HostFacts) -> None:
    with pytest.raises(PolicyError, match="unknown SELinux base"):
        selinux.compile(_typed(web_api, "web_api_t", "nosuch"), host)


def test_module_shape(web_api: Policy, host: HostFacts) -> None:
    text = selinux.compile(web_api, host).files[0].text or ""
    assert "(type web_api_t)\n(call container_domain (web_api_t))" in text
    assert "(portcon tcp 8080 (system_u object_r web_api_port_t ((s0) (s0))))" in text
    assert "(allow web_api_t self (capability (net_bind_service)))" in text
    assert "(neverallow web_api_t web_api_deny_file_t (file" in text


def test_legacy_uses_declared_type(legacy: Policy, host: HostFacts) -> None:
    art = selinux.compile(legacy, host)
    assert art.files[0].filename == "stockade_legacy_daemon.cil"
    assert "semodule -i stockade_container.cil stockade_legacy_daemon.cil" in (art.files[2].text or "")
    text = art.files[0].text or ""
    for cap in ("chown", "dac_override", "setgid", "setuid", "net_bind_service"):
        assert cap in text


def test_nodes_reject_bad_identifiers() -> None:
    with pytest.raises(cil.CilError):
        cil.TypeDecl("a b")
    with pytest.raises(cil.CilError):
        cil.allow("a_t", "b_t", "file", [])
    with pytest.raises(cil.CilError):
        cil.allow("a_t", "b_t", "file", ["read)"])
    with pytest.raises(cil.CilError):
        cil.PortCon("tcp", 70000, cil.Context("u", "r", "t"))


def test_printer() -> None:
    m = cil.Module("x", ("hdr",), (cil.TypeDecl("x_t"), cil.Comment("c"),
                                    cil.allow("x_t", "self", "process", ["fork", "signal"])))
    assert cil.render(m) == "; hdr\n(type x_t)\n; c\n(allow x_t self (process (fork signal)))\n"
