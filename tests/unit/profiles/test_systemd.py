from __future__ import annotations

import dataclasses
from types import MappingProxyType

from _policies import with_fs

from stockade.errors import Location
from stockade.linux.hostfacts import HostFacts
from stockade.policy.model import PathEntry, Policy
from stockade.profiles import systemd


def _directives(p: Policy, host: HostFacts) -> dict[str, str]:
    text, _ = systemd.render(p, host)
    lines = [line for line in text.splitlines() if "=" in line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def test_web_api(web_api: Policy, host: HostFacts) -> None:
    d = _directives(web_api, host)
    assert d["NoNewPrivileges"] == "yes"
    assert d["ProtectSystem"] == "strict"
    assert d["CapabilityBoundingSet"] == "CAP_NET_BIND_SERVICE"
    assert d["ReadWritePaths"] == "-/tmp -/var/cache/web"
    assert "-/etc/shadow" in d["InaccessiblePaths"].split()
    assert d["RestrictAddressFamilies"] == "AF_INET AF_INET6 AF_UNIX"
    assert d["MemoryMax"] == str(256 * 2**20) and d["TasksMax"] == "64" and d["CPUQuota"] == "50%"
    assert d["SystemCallErrorNumber"] == "EPERM"
    allowed = d["SystemCallFilter"].split()
    assert "read" in allowed and "ptrace" not in allowed and "mount" not in allowed


def test_legacy_protect_system_full(legacy: Policy, host: HostFacts) -> None:
    d = _directives(legacy, host)
    assert d["ProtectSystem"] == "full" and d["ReadOnlyPaths"] == "-/etc -/usr"
    assert "PrivateNetwork" not in d  # host network


def test_batch_kill_default_has_no_errno(batch: Policy, host: HostFacts) -> None:
    d = _directives(batch, host)
    assert "SystemCallErrorNumber" not in d
    assert d["CapabilityBoundingSet"] == "" and d["User"] == "1000"
    assert d["RestrictAddressFamilies"] == "AF_UNIX"


def test_denylist_mode(web_api: Policy, host: HostFacts) -> None:
    from stockade.policy.model import ALLOW

    sc = dataclasses.replace(web_api.syscalls, default=ALLOW)
    d = _directives(dataclasses.replace(web_api, syscalls=sc), host)
    assert d["SystemCallFilter"].startswith("~") and "ptrace" in d["SystemCallFilter"]


def test_globs_skipped_with_warning(web_api: Policy, host: HostFacts) -> None:
    p = with_fs(web_api, exec=(PathEntry("/usr/lib/**", Location("p")), PathEntry("/x/*/y", Location("p"))))
    text, warnings = systemd.render(p, host)
    assert "ExecPaths=-/usr/lib\n" in text and "NoExecPaths=/\n" in text
    assert any("/x/*/y" in w for w in warnings)


def test_unknown_rlimit_warns(web_api: Policy, host: HostFacts) -> None:
    p = dataclasses.replace(web_api, rlimits=MappingProxyType({"bogus": 1}))
    assert any("bogus" in w for w in systemd.render(p, host)[1])
