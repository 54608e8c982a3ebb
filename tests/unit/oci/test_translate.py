"""config.json validation and translation, the policy overlay and `spec`: no privileges."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest

from stockade.linux import syscalls as L
from stockade.oci import config, state
from stockade.oci.config import ConfigError
from stockade.oci.lifecycle import parse_signal
from stockade.oci.translate import translate

BASE: dict[str, Any] = {
    "ociVersion": "1.0.2",
    "process": {"terminal": False, "user": {"uid": 0, "gid": 0}, "args": ["sh"],
                "env": ["PATH=/bin", "HOME=/root"], "cwd": "/",
                "capabilities": {k: ["CAP_KILL", "CAP_AUDIT_WRITE"] for k in
                                 ("bounding", "effective", "permitted")},
                "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
                "noNewPrivileges": True},
    "root": {"path": "rootfs", "readonly": True},
    "hostname": "h",
    "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
               {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
                "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
               {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
                "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620",
                            "gid=5"]}],
    "linux": {"namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
              "resources": {"devices": [{"allow": False, "access": "rwm"}]},
              "maskedPaths": ["/proc/kcore"], "readonlyPaths": ["/proc/sys"]},
}


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    (tmp_path / "rootfs" / "etc").mkdir(parents=True)
    (tmp_path / "rootfs" / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n"
                                                        "u:x:1000:1000::/home/u:/bin/sh\n")
    return tmp_path


def _tr(cfg: dict[str, Any], bundle: Path) -> Any:
    config.validate(cfg)
    return translate(config.strip_nulls(cfg), str(bundle), "c1", last_cap=40, euid=0)


def _cfg(**edits: Any) -> dict[str, Any]:
    cfg = copy.deepcopy(BASE)
    for path, value in edits.items():
        cur = cfg
        keys = path.split("__")
        for k in keys[:-1]:
            cur = cur.setdefault(k, {})
        cur[keys[-1]] = value
    return cfg


def test_basic_translation(bundle: Path) -> None:
    c = _tr(_cfg(), bundle)
    p = c.plan
    assert p.argv == ("sh",) and p.cwd == "/" and not p.init
    assert set(p.policy.namespaces) == {"pid", "net", "ipc", "uts", "mount"}
    assert p.hostname == "h" and p.policy.network == "loopback"
    assert p.policy.caps.bounding == (1 << 5) | (1 << 29)
    assert p.policy.rlimits == (("nofile", 1024, 1024),)
    assert p.policy.no_new_privs and p.policy.seccomp_bpf == b""
    kinds = [(m.kind, m.dst) for m in p.mounts]
    assert kinds[:3] == [("root", "/"), ("proc", "/proc"), ("dev", "/dev")]
    assert ("mask", "/proc/kcore") in kinds and ("readonly", "/proc/sys") in kinds
    assert p.policy.limits.devices_allow is not None
    assert "c 1:3 rwm" in p.policy.limits.devices_allow
    assert not p.identity.userns


def test_unimplemented_spec_fields_are_named() -> None:
    """Properties the runtime spec defines and stockade does not implement: an error
    naming the field and why."""
    for where, key in (("linux", "intelRdt"), ("process", "scheduler"),
                       ("linux", "timeOffsets"), ("linux", "personality")):
        cfg = copy.deepcopy(BASE)
        (cfg[where] if where else cfg)[key] = {"x": 1}
        with pytest.raises(ConfigError, match=(f"{where}." if where else "") + key +
                           r": not supported by stockade \(.+\)"):
            config.validate(cfg)


def test_unknown_properties_are_ignored_and_reported() -> None:
    """The spec: a runtime MUST NOT error on unknown properties. Each is returned (a
    warning), at any depth, and translation goes on without it."""
    cfg = copy.deepcopy(BASE)
    cfg["vm"] = {"hypervisor": {"path": "/x"}}  # another platform's section
    cfg["process"]["futureThing"] = 1
    cfg["linux"]["resources"]["memory"] = {"limit": 1 << 26, "novel": True}
    cfg["mounts"] = [{"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
                      "extra": "x"}]
    assert sorted(config.validate(cfg)) == ["linux.resources.memory.novel",
                                            "mounts[0].extra", "process.futureThing", "vm"]


def test_empty_engine_fields_accepted() -> None:
    cfg = copy.deepcopy(BASE)
    cfg["linux"]["mountLabel"] = ""
    cfg["linux"]["resources"]["blockIO"] = {}
    config.validate(cfg)


@pytest.mark.parametrize("version,ok", [("1.0.2", True), ("1.2.0", True), ("1.0.2-dev", True),
                                        ("2.0.0", False), ("0.9", False), ("x", False)])
def test_oci_version(version: str, ok: bool) -> None:
    cfg = _cfg(ociVersion=version)
    if ok:
        config.validate(cfg)
    else:
        with pytest.raises(ConfigError, match="ociVersion"):
            config.validate(cfg)


def test_userns_maps_and_groups(bundle: Path) -> None:
    cfg = _cfg(process__user={"uid": 1000, "gid": 1000, "additionalGids": [5, 6]},
               linux__uidMappings=[{"containerID": 0, "hostID": 100000, "size": 65536}],
               linux__gidMappings=[{"containerID": 0, "hostID": 100000, "size": 65536}])
    cfg["linux"]["namespaces"].append({"type": "user"})
    c = _tr(cfg, bundle)
    ident = c.plan.identity
    assert ident.userns and ident.uid == 1000 and ident.groups == (5, 6)
    assert ident.uid_map[0].outside == 100000
    env = dict(c.plan.env)
    assert env["HOME"] == "/root"  # given in env: kept


def test_home_from_passwd(bundle: Path) -> None:
    c = _tr(_cfg(process__env=["PATH=/bin"], process__user={"uid": 1000, "gid": 1000}), bundle)
    assert dict(c.plan.env)["HOME"] == "/home/u"


def test_resources(bundle: Path) -> None:
    c = _tr(_cfg(linux__resources={"memory": {"limit": 1 << 26, "swap": 1 << 27},
                                   "pids": {"limit": 5},
                                   "cpu": {"quota": 5000, "period": 10000, "shares": 100}}),
            bundle)
    lim = c.plan.policy.limits
    assert (lim.memory, lim.swap, lim.pids) == (1 << 26, 1 << 26, 5)
    assert (lim.cpu_quota_us, lim.cpu_period_us, lim.cpu_shares) == (5000, 10000, 100)
    assert lim.devices_allow is None


def test_device_rules(bundle: Path) -> None:
    c = _tr(_cfg(linux__resources={"devices": [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rw"}]}), bundle)
    assert c.plan.policy.limits.devices_allow[-1] == "c 10:229 rw"
    with pytest.raises(ConfigError, match="deny rule"):
        _tr(_cfg(linux__resources={"devices": [
            {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"},
            {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "rw"}]}), bundle)


def test_mount_options(bundle: Path) -> None:
    cfg = _cfg()
    cfg["mounts"] += [
        {"destination": "/tmp", "type": "tmpfs", "source": "t",
         "options": ["ro", "noexec", "size=1m", "mode=1777"]},
        {"destination": "/data", "type": "bind", "source": "rootfs/etc", "options": ["rbind", "ro"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue"},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup"},
    ]
    ops = {m.dst: m for m in _tr(cfg, bundle).plan.mounts}
    tmp = ops["/tmp"]
    assert tmp.kind == "fs" and tmp.fstype == "tmpfs" and tmp.readonly
    assert tmp.attrs & L.MOUNT_ATTR_NOEXEC and dict(tmp.data) == {"size": "1m", "mode": "1777"}
    assert ops["/data"].kind == "bind" and ops["/data"].readonly
    assert ops["/data"].src == str((bundle / "rootfs" / "etc").resolve())
    assert ops["/dev/mqueue"].fstype == "mqueue"
    assert ops["/sys/fs/cgroup"].attrs & L.MOUNT_ATTR_RDONLY  # an empty read-only tmpfs
    assert "/dev/pts" not in ops  # part of stockade's /dev


def test_seccomp(bundle: Path) -> None:
    cfg = _cfg(linux__seccomp={"defaultAction": "SCMP_ACT_ALLOW",
                               "architectures": ["SCMP_ARCH_X86_64"],
                               "flags": ["SECCOMP_FILTER_FLAG_LOG"],
                               "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO",
                                             "errnoRet": 28}]})
    part = _tr(cfg, bundle).plan.policy
    assert part.seccomp_bpf and len(part.seccomp_bpf) % 8 == 0 and part.seccomp_flags == 2
    with pytest.raises(ConfigError, match="unknown flag"):
        _tr(_cfg(linux__seccomp={"defaultAction": "SCMP_ACT_ALLOW", "flags": ["NOPE"]}), bundle)


def test_sysctl_rules(bundle: Path) -> None:
    c = _tr(_cfg(linux__sysctl={"net.ipv4.ip_forward": "1", "kernel.shmmax": "1000"}), bundle)
    assert dict(c.plan.sysctl) == {"net.ipv4.ip_forward": "1", "kernel.shmmax": "1000"}
    with pytest.raises(ConfigError, match="not a namespaced sysctl"):
        _tr(_cfg(linux__sysctl={"vm.swappiness": "1"}), bundle)
    cfg = _cfg(linux__sysctl={"net.ipv4.ip_forward": "1"})
    cfg["linux"]["namespaces"] = [{"type": "mount"}, {"type": "uts"}]
    with pytest.raises(ConfigError, match="network namespace"):
        _tr(cfg, bundle)


def test_rootfs_escape(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    b = tmp_path / "b"
    b.mkdir()
    (b / "rootfs").symlink_to(tmp_path / "out")
    with pytest.raises(ConfigError, match="outside the bundle"):
        _tr(_cfg(), b)


def test_joined_namespaces(bundle: Path) -> None:
    cfg = _cfg()
    cfg["linux"]["namespaces"] = [{"type": "mount"}, {"type": "network",
                                                       "path": "/proc/self/ns/net"}]
    cfg.pop("hostname")
    c = _tr(cfg, bundle)
    assert c.join == (("network", "/proc/self/ns/net"),)
    assert "net" not in c.plan.policy.namespaces and c.plan.policy.network == "host"
    cfg["linux"]["namespaces"].append({"type": "user", "path": "/proc/self/ns/user"})
    with pytest.raises(ConfigError, match="joining a user namespace"):
        _tr(cfg, bundle)


def test_ids_and_signals() -> None:
    for good in ("a", "A-b_c.d+e", "0" * 64):
        assert state.check_id(good) == good
    for bad in ("", ".", "..", "a/b", "a b", "é", "x" * 1025):
        with pytest.raises(state.StateError):
            state.check_id(bad)
    assert parse_signal("KILL") == parse_signal("SIGKILL") == parse_signal("9") == 9
    assert parse_signal("usr1") == 10
    for bad in ("NOPE", "0", "65", "-1"):
        with pytest.raises(Exception, match="signal"):
            parse_signal(bad)


def test_overlay_is_stricter(bundle: Path) -> None:
    from stockade.oci.overlay import merge
    from stockade.policy.loader import load_policy
    from stockade.runner.prepare import policy_part

    cfg = _cfg(linux__resources={"pids": {"limit": 5000}, "memory": {"limit": 1 << 20}},
               process__noNewPrivileges=False, root__readonly=False)
    cfg["process"]["capabilities"] = {k: ["CAP_SYS_ADMIN", "CAP_KILL"] for k in
                                      ("bounding", "effective", "permitted")}
    cfg["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW"}
    c = _tr(cfg, bundle)
    pol = policy_part(load_policy("default"))
    if os.geteuid() != 0:
        pytest.skip("the overlay adds a user namespace, which needs root here")
    merged, lines = merge(c, pol)
    p = merged.plan.policy
    assert not p.caps.bounding >> 21 & 1  # CAP_SYS_ADMIN is not in the default policy
    assert p.caps.bounding >> 5 & 1  # CAP_KILL is in both
    assert p.no_new_privs and p.fs_root != "writable" and merged.plan.mounts[0].readonly
    assert p.limits.pids == min(5000, pol.limits.pids or 5000)
    assert p.limits.memory == 1 << 20
    assert p.seccomp_bpf and p.seccomp_extra  # both filters
    assert any("caps.bounding" in line for line in lines)


def test_overlay_of_a_private_network_says_it_is_not_applied(
        bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The jail is `stockade run`'s: over a bundle its egress/publish/rates were dropped
    without a word. Now a warning, the container on lo only; a joined netns is refused
    with the reason."""
    from stockade.errors import StockadeError
    from stockade.oci.overlay import merge
    from stockade.policy.loader import load_policy
    from stockade.runner.prepare import policy_part

    if os.geteuid() != 0:
        pytest.skip("the overlay adds a user namespace, which needs root here")
    jail = bundle / "jail.yaml"
    jail.write_text("stockade: 1\nname: jail\nextends: [default]\nnetwork:\n  mode: private\n"
                    "  egress: [{to: 10.99.0.0/24, ports: [443]}]\n"
                    "  publish: ['127.0.0.1:18080:80']\n  bandwidth: {egress: 10Mbit}\n")
    pol = policy_part(load_policy(str(jail)))
    merged, lines = merge(_tr(_cfg(), bundle), pol)
    assert merged.plan.policy.network == "loopback" and "net" in merged.plan.policy.namespaces
    assert "network.mode private is not applied to an OCI bundle" in capsys.readouterr().err
    assert any("network.mode: config=- policy=private -> loopback" in line for line in lines)
    joined = _cfg()
    joined["linux"]["namespaces"] = [{"type": t} for t in ("pid", "ipc", "uts", "mount")] + [
        {"type": "network", "path": "/proc/self/ns/net"}]
    with pytest.raises(StockadeError, match="the engine owns the container's network"):
        merge(_tr(joined, bundle), pol)


def test_spec_generation() -> None:
    from stockade.oci.spec import generate

    cfg = generate("default", rootless=False)
    config.validate(cfg)
    assert cfg["process"]["noNewPrivileges"] is True
    assert cfg["linux"]["seccomp"]["defaultAction"]
    assert "CAP_SYS_ADMIN" not in cfg["process"]["capabilities"]["bounding"]
    rl = generate("default", rootless=True)
    config.validate(rl)
    assert rl["linux"]["uidMappings"][0]["size"] == 1
    assert "resources" not in rl["linux"]
    json.dumps(rl)


@pytest.mark.parametrize("argv,expected", [
    (["create", "--bundle", "/b", "--pid-file", "/p", "c1"],
     {"oci_command": "create", "bundle": "/b", "pid_file": "/p", "id": "c1"}),
    (["--root", "/r", "--log", "/l", "--log-format", "json", "create", "-b", "/b", "c1"],
     {"root": "/r", "log": "/l", "log_format": "json", "bundle": "/b", "id": "c1"}),
    (["--root=/r", "run", "--detach", "--console-socket=/s", "--policy", "default", "c1"],
     {"root": "/r", "oci_command": "run", "detach": True, "console_socket": "/s",
      "policy": "default", "id": "c1"}),
    (["start", "c1"], {"oci_command": "start", "id": "c1"}),
    (["state", "c1"], {"oci_command": "state", "id": "c1"}),
    (["kill", "c1"], {"oci_command": "kill", "id": "c1", "signal": "SIGTERM", "all": False}),
    (["kill", "--all", "c1", "KILL"], {"id": "c1", "signal": "KILL", "all": True}),
    (["delete", "--force", "c1"], {"oci_command": "delete", "force": True, "id": "c1"}),
    (["delete", "-f", "c1"], {"force": True, "id": "c1"}),
    (["--debug", "delete", "c1"], {"debug": True, "force": False, "id": "c1"}),
    (["delete", "--root", "/r", "c1"], {"root": "/r", "id": "c1"}),
])
def test_engine_command_lines_parse(argv: list[str], expected: dict[str, object]) -> None:
    """The runc command lines engines send (global flags before the verb, --root after
    it too) parse to what the verbs read."""
    import argparse

    from stockade.cli import oci

    parser = argparse.ArgumentParser()
    oci.configure(parser)
    ns = vars(parser.parse_args(argv))
    assert {key: ns[key] for key in expected} == expected
    assert oci.parse_fast(argv) == ns  # the fast reader takes each, exactly as argparse


@pytest.mark.parametrize("res,needle", [
    ({"memory": {"limit": "1G"}}, "memory.limit"),
    ({"pids": {"limit": 1.5}}, "pids.limit"),
    ({"cpu": {"period": 10}}, "cpu.period"),
    ({"memory": {"limit": 100, "swap": 50}}, "memory.swap"),
    ({"cpu": {"quota": True}}, "cpu.quota"),
])
def test_bad_resources(res: dict[str, Any], needle: str, bundle: Path) -> None:
    with pytest.raises(ConfigError, match=needle):
        _tr(_cfg(linux__resources=res), bundle)


@pytest.mark.parametrize("edit,needle", [
    ({"process__args": "sh"}, "process.args"),
    ({"process__env": ["NOEQUALS"]}, "process.env"),
    ({"process__cwd": "relative"}, "process.cwd"),
    ({"process__terminal": "yes"}, "process.terminal"),
    ({"process__oomScoreAdj": 5000}, "oomScoreAdj"),
    ({"process__user": {"uid": -1, "gid": 0}}, "process.user.uid"),
    ({"hostname": 5}, "hostname"),
    ({"linux__cgroupsPath": "machine.slice:libpod:x"}, "cgroupsPath"),
    ({"linux__maskedPaths": "/proc"}, "maskedPaths"),
])
def test_bad_values(edit: dict[str, Any], needle: str, bundle: Path) -> None:
    with pytest.raises(ConfigError, match=needle):
        _tr(_cfg(**edit), bundle)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


def test_wrong_types_are_config_errors(bundle: Path) -> None:
    """Every field of a full config, replaced by values of the wrong type: either it
    still translates or it is a ConfigError, never a crash."""
    cfg = _cfg(linux__seccomp={"defaultAction": "SCMP_ACT_ALLOW",
                               "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO",
                                             "errnoRet": 1}]},
               linux__sysctl={"kernel.shmmax": "1"},
               hooks={"poststop": [{"path": "/bin/true", "args": ["true"]}]})
    for path in _paths(cfg):
        if path[0] == "root" and path[-1] == "path":
            continue  # the rootfs directory itself (tested elsewhere)
        for bad in (1, "x", [], {}, True, [1], {"a": 1}):
            doc = copy.deepcopy(cfg)
            cur = doc
            for k in path[:-1]:
                cur = cur[k]
            cur[path[-1]] = bad
            try:
                config.validate(doc)
                translate(config.strip_nulls(doc), str(bundle), "c1", last_cap=40, euid=0)
            except ConfigError:
                pass
        doc = copy.deepcopy(cfg)  # and the field left out
        cur = doc
        for k in path[:-1]:
            cur = cur[k]
        del cur[path[-1]]
        try:
            config.validate(doc)
            translate(config.strip_nulls(doc), str(bundle), "c1", last_cap=40, euid=0)
        except ConfigError:
            pass
