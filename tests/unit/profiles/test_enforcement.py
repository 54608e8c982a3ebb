from __future__ import annotations

import pytest

from stockade.linux.hostfacts import HostFacts
from stockade.policy.model import Policy
from stockade.profiles import enforcement as enf
from stockade.profiles import registry
from stockade.profiles.base import Enforcement


@pytest.fixture(autouse=True)
def _no_seccomp(monkeypatch: pytest.MonkeyPatch) -> None:
    # seccomp's own records are the seccomp tests' business; here only ours count.
    real = registry.backend_enforcements

    def without_seccomp(backend: str, policy: Policy, host: HostFacts) -> tuple[Enforcement, ...]:
        return () if backend == "seccomp" else real(backend, policy, host)

    monkeypatch.setattr(registry, "backend_enforcements", without_seccomp)
    monkeypatch.setattr(enf, "backend_enforcements", without_seccomp)


def test_path_rules_need_a_path_backend(web_api: Policy, host: HostFacts) -> None:
    rows = enf.enforcement_table(web_api, host, ["capabilities"])
    missing = enf.unenforced_rules(rows)
    assert "filesystem.deny[/etc/shadow]" in missing and "network.bind[8080]" in missing
    assert "capabilities.kept[NET_BIND_SERVICE]" not in missing
    assert "filesystem.writable[/tmp]" not in missing  # a grant, nothing to enforce


def test_apparmor_covers_paths_landlock_covers_bind(web_api: Policy, host: HostFacts) -> None:
    rows = {r.rule: r for r in enf.enforcement_table(web_api, host, ["apparmor", "landlock"])}
    assert [e.backend for e in rows["filesystem.deny[/etc/shadow]"].by] == ["apparmor"]
    assert [e.backend for e in rows["network.bind[8080]"].by] == ["landlock"]
    assert enf.unenforced_rules(rows.values()) == ["no_new_privileges"]


def test_docker_brings_apparmor_only_when_asked(web_api: Policy, batch: Policy) -> None:
    assert "apparmor" in enf.backends_for(["docker"], web_api)
    assert "apparmor" not in enf.backends_for(["docker"], batch)


def test_all_targets_leave_nothing_unenforced(example_policy: Policy, host: HostFacts) -> None:
    rows = enf.enforcement_table(example_policy, host, registry.TARGETS)
    assert enf.unenforced_rules(rows) == []
    assert "NOT ENFORCED" not in enf.format_table(rows)


def test_landlock_without_abi_enforces_nothing(web_api: Policy) -> None:
    rows = enf.enforcement_table(web_api, HostFacts(landlock_abi=0), ["landlock"])
    assert all(not r.by for r in rows)


def test_unenforced_from_compiled_artifacts(web_api: Policy, host: HostFacts) -> None:
    """What `compile --strict` calls: composite targets carry their constituents' records."""
    from stockade.profiles import capabilities, docker

    only_caps = [capabilities.compile(web_api, host)]
    assert "filesystem.deny[/etc/shadow]" in enf.unenforced(web_api, only_caps)
    with_docker = [docker.compile(web_api, host)]
    missing = enf.unenforced(web_api, with_docker)
    assert "filesystem.deny[/etc/shadow]" not in missing  # the AppArmor profile docker ships
    assert missing == ["network.bind[8080]"]  # only Landlock/SELinux can carry it


def test_enforcers_for_syscall(web_api: Policy, host: HostFacts) -> None:
    who = enf.enforcers_for_syscall(web_api, host, "socket")
    assert who[0].startswith("seccomp") and "argument conditions" in who[1]
    assert any(w.startswith("systemd") for w in enf.enforcers_for_syscall(web_api, host, "ptrace"))
