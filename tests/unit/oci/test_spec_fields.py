"""Issue #15: fields stockade refused or mistranslated, read as the runtime spec and runc
read them (no privileges: the translation, the stored plan's rules, the hooks' order and
the log format; tests/integration/oci/test_spec_conformance.py runs them against runc)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from stockade.linux import consts as L
from stockade.oci import fastplan, hooks, notice
from stockade.oci.config import ConfigError
from stockade.oci.translate import check_grantable
from stockade.runner.cgroups import Hierarchy
from stockade.runner.cgroups.v1 import v1_writes
from stockade.runner.cgroups.v2 import v2_writes
from tests.unit.oci.test_translate import _cfg, _tr, bundle  # noqa: F401 - a fixture

V1 = Hierarchy("v1", (("memory", "/sys/fs/cgroup/memory", "/"),), None, "/")


def _mounts(c: Any) -> dict[str, Any]:
    return {m.dst: m for m in c.plan.mounts}


def test_mount_source_is_the_configs(bundle: Path) -> None:  # noqa: F811
    """mountinfo's source field: the config's `source` (runc passes it to mount(2))."""
    cfg = _cfg()
    cfg["mounts"] = [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs"},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue"},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs"},
        {"destination": "/run", "type": "tmpfs", "source": "my-run"},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup"},
    ]
    m = _mounts(_tr(cfg, bundle))
    assert (m["/proc"].source, m["/dev"].source, m["/sys"].source) == ("proc", "tmpfs", "sysfs")
    assert (m["/dev/mqueue"].source, m["/run"].source) == ("mqueue", "my-run")
    assert m["/sys/fs/cgroup"].source == "tmpfs"  # stockade's empty tmpfs, as runc's


@pytest.mark.parametrize("name", sorted(L.PROPAGATION))
def test_propagation_options(name: str, bundle: Path) -> None:  # noqa: F811
    """Every propagation option is set on the mount (was: shared and unbindable refused,
    the others silently dropped)."""
    cfg = _cfg()
    cfg["mounts"] = [{"destination": "/mnt", "type": "bind", "source": str(bundle),
                      "options": ["rbind", name]},
                     {"destination": "/run", "type": "tmpfs", "options": [name]}]
    cfg["linux"]["rootfsPropagation"] = name
    c = _tr(cfg, bundle)
    m = _mounts(c)
    assert m["/mnt"].propagation == m["/run"].propagation == L.PROPAGATION[name]
    assert c.plan.propagation == ("rslave" if name == "slave" else name)


def test_bad_rootfs_propagation(bundle: Path) -> None:  # noqa: F811
    with pytest.raises(ConfigError, match="rootfsPropagation: 'sideways' is not a propagation"):
        _tr(_cfg(linux__rootfsPropagation="sideways"), bundle)


def test_devices_beyond_the_fixed_nodes(bundle: Path) -> None:  # noqa: F811
    cfg = _cfg()
    cfg["linux"]["devices"] = [
        {"path": "/dev/null", "type": "c", "major": 1, "minor": 3},  # a fixed node: as is
        {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o20640,
         "uid": 1, "gid": 2},
        {"path": "/dev/net/tun", "type": "u", "major": 10, "minor": 200},
        {"path": "/dev/loop7", "type": "b", "major": 7, "minor": 7},
    ]
    dev = _mounts(_tr(cfg, bundle))["/dev"]
    assert dev.data == (("fuse", "c 10 229 416 1 2"), ("net/tun", "c 10 200 438 0 0"),
                        ("loop7", "b 7 7 438 0 0"))


@pytest.mark.parametrize(("device", "needle"), [
    ({"path": "/etc/x", "type": "c", "major": 1, "minor": 1}, "below /dev/"),
    ({"path": "/dev/../etc/x", "type": "c", "major": 1, "minor": 1}, "clean path"),
    ({"path": "/dev/null", "type": "c", "major": 8, "minor": 0}, "fixed nodes"),
    ({"path": "/dev/x", "type": "q", "major": 1, "minor": 1}, "must be c, b, u or p"),
    ({"path": "/dev/x", "type": "c", "major": -1, "minor": 1}, "major: must be >= 0"),
])
def test_bad_devices(device: dict[str, Any], needle: str, bundle: Path) -> None:  # noqa: F811
    with pytest.raises(ConfigError, match=r"linux\.devices\[0\]"):
        try:
            _tr(_cfg(linux__devices=[device]), bundle)
        except ConfigError as exc:
            assert needle in str(exc)
            raise


def test_memory_and_cpuset(bundle: Path) -> None:  # noqa: F811
    """runc's cgroup v1 files for memory.reservation/swappiness/disableOOMKiller and
    cpu.cpus/mems (v2: memory.low, cpuset.*); kernel memory ignored with a warning."""
    c = _tr(_cfg(linux__resources={
        "memory": {"limit": 1 << 26, "reservation": 1 << 25, "swappiness": 10,
                   "disableOOMKiller": True, "kernel": 1 << 26, "kernelTCP": 1 << 26},
        "cpu": {"cpus": "0-1", "mems": "0"}}), bundle)
    lim = c.plan.policy.limits
    assert ("memory", "memory.soft_limit_in_bytes", str(1 << 25)) in v1_writes(lim)
    assert ("memory", "memory.swappiness", "10") in v1_writes(lim)
    assert ("memory", "memory.oom_control", "1") in v1_writes(lim)
    assert ("cpuset", "cpuset.cpus", "0-1") in v1_writes(lim)
    assert ("cpuset", "cpuset.mems", "0") in v1_writes(lim)
    assert ("memory", "memory_reservation", "memory.low", str(1 << 25)) in v2_writes(lim)
    assert any("kernel memory settings are ignored" in w for w in c.warnings)
    # the front end makes the cpuset as the executor does (its directories inherit their
    # parent's lists): only the warning keeps this one on the Python path
    assert fastplan.why_not(c, V1) in ("warnings to log", "not root")


@pytest.mark.parametrize(("res", "needle"), [
    ({"memory": {"swappiness": 101}}, "swappiness: must be in 0..100"),
    ({"cpu": {"cpus": "0;1"}}, "cpu.cpus: '0;1' is not a list"),
])
def test_bad_new_resources(res: dict[str, Any], needle: str, bundle: Path) -> None:  # noqa: F811
    with pytest.raises(ConfigError, match=needle):
        _tr(_cfg(linux__resources=res), bundle)


def test_what_the_front_end_does_not_store(bundle: Path) -> None:  # noqa: F811
    plain = _tr(_cfg(), bundle)
    assert fastplan.why_not(plain, V1) is None or os.geteuid() != 0
    cfg = _cfg(linux__devices=[{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}])
    assert fastplan.why_not(_tr(cfg, bundle), V1) in (None, "not root")  # the executor's /dev
    warned = _cfg()
    warned["somethingNew"] = 1
    c = _tr(warned, bundle)
    assert c.warnings == ("config.json: somethingNew: unknown property, ignored",)
    assert fastplan.why_not(c, V1) in ("warnings to log", "not root")


def test_uts_joined_by_path_takes_the_hostname(bundle: Path, tmp_path: Path) -> None:  # noqa: F811
    """runc sets the hostname (and domainname) in a uts namespace joined by path."""
    uts = tmp_path / "uts"
    uts.touch()
    cfg = _cfg(hostname="h1", domainname="d1")
    cfg["linux"]["namespaces"] = [{"type": "mount"}, {"type": "uts", "path": str(uts)}]
    c = _tr(cfg, bundle)
    assert c.plan.hostname == "h1" and ("kernel.domainname", "d1") in c.plan.sysctl
    assert ("uts", str(uts)) in c.join
    cfg["linux"]["namespaces"] = [{"type": "mount"}]
    with pytest.raises(ConfigError, match="hostname: needs a uts namespace"):
        _tr(cfg, bundle)


def test_effective_not_permitted_is_refused(bundle: Path) -> None:  # noqa: F811
    caps = {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL", "CAP_SYS_ADMIN"],
            "permitted": ["CAP_KILL"], "inheritable": [], "ambient": []}
    with pytest.raises(ConfigError, match=r"capabilities\.effective: CAP_SYS_ADMIN not in "
                                          "permitted"):
        _tr(_cfg(process__capabilities=caps), bundle)


def _status(prm: int, inh: int = 0, bnd: int = (1 << 41) - 1) -> str:
    return f"Name:\tx\nCapInh:\t{inh:016x}\nCapPrm:\t{prm:016x}\nCapBnd:\t{bnd:016x}\n"


def test_capabilities_the_runtime_cannot_grant(bundle: Path) -> None:  # noqa: F811
    """Without no_new_privs capset runs after `start`, where nothing reports it: create
    refuses what the runtime's own sets cannot give (runc fails create there too)."""
    caps = {k: ["CAP_KILL", "CAP_SYS_NICE"] for k in ("bounding", "effective", "permitted")}
    c = _tr(_cfg(process__capabilities=caps, process__noNewPrivileges=False), bundle)
    everything = (1 << 41) - 1
    check_grantable(c.plan, _status(everything))
    with pytest.raises(ConfigError, match=r"permitted: CAP_SYS_NICE: the runtime does not "
                                          "hold it"):
        check_grantable(c.plan, _status(everything & ~(1 << 23)))
    caps["inheritable"] = ["CAP_SYS_ADMIN"]  # root: inheritable only within bounding
    c = _tr(_cfg(process__capabilities=caps), bundle)
    with pytest.raises(ConfigError, match=r"inheritable: CAP_SYS_ADMIN: outside the bounding"):
        check_grantable(c.plan, _status(everything))


def test_poststart_poststop_failures_do_not_stop_the_rest(tmp_path: Path) -> None:
    """The spec: poststart/poststop failures are logged and the remaining hooks run;
    other kinds stop at the first failure."""
    out = tmp_path / "ran"

    def hook(n: int, code: int) -> hooks.Hook:
        return hooks.Hook("/bin/sh", ("sh", "-c", f"echo {n} >> {out}; exit {code}"), (), None)

    chain = (hook(1, 3), hook(2, 0), hook(3, 4), hook(4, 0))
    with pytest.raises(hooks.HookError) as err:
        hooks.run("poststop", chain, {"id": "c"}, keep_going=True)
    assert out.read_text().split() == ["1", "2", "3", "4"]
    assert "poststop[0]" in err.value.message and "poststop[2]" in err.value.message
    out.unlink()
    with pytest.raises(hooks.HookError, match=r"prestart\[0\].*exit status 3"):
        hooks.run("prestart", chain, {"id": "c"})
    assert out.read_text().split() == ["1"]


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_warnings_go_to_the_log(fmt: str, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "log"
    notice.configure(str(log), fmt)
    try:
        notice.warn('config.json: "x": unknown property, ignored')
    finally:
        notice.configure(None, "text")
    line = log.read_text().strip()
    if fmt == "json":
        import json

        got = json.loads(line)
        assert (got["level"], got["msg"]) == ("warning",
                                              'config.json: "x": unknown property, ignored')
    else:
        assert 'level=warning msg="config.json: \\"x\\": unknown property, ignored"' in line
    assert "stockade: warning: config.json" in capsys.readouterr().err
