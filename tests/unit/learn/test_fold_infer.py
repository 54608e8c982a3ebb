"""Folding paths and inferring the policy from a recording (no kernel needed)."""

from __future__ import annotations

from pathlib import Path

import yaml

from stockade.learn.document import build, merge, suggested_resources
from stockade.learn.fold import canonical, fold_reads, fold_writes
from stockade.learn.infer import learn
from stockade.learn.output import check_and_write
from stockade.learn.recording import Recording
from stockade.policy.loader import load_policy
from stockade.policy.semantics import decide


def _rec(**kw: object) -> Recording:
    base: dict[str, object] = {
        "syscalls": frozenset({("x86_64", n) for n in ("read", "write", "socket", "clone", "ioctl",
                                                        "bind", "execve", "exit_group", "clone3")}),
        "values": frozenset({("socket", 0, 2), ("socket", 1, 1 | 0o2000000), ("clone", 0, 0x1200011),
                             ("ioctl", 1, 0x5401)}),
        "paths": frozenset({("x", "/bin/busybox"), ("w", "/tmp/a/b"), ("r", "/etc/passwd"),
                            ("w", "/var/lib/app/new.db")}),
        "sockaddrs": frozenset({("bind", 2, 8080, True)}),
        "started": True,
    }
    base.update(kw)
    return Recording(**base)  # type: ignore[arg-type]


def test_canonical_proc_pid() -> None:
    assert canonical("/proc/1234/status") == "/proc/self/status"
    assert canonical("/proc/self/task/77/stat") == "/proc/self/stat"
    assert canonical("/proc/cpuinfo") == "/proc/cpuinfo"


def test_fold_writes_tmpfs_created_and_pruned() -> None:
    out = fold_writes([("/tmp/x/y", True), ("/dev/null", False), ("/srv/data/new", True),
                       ("/srv/data/sub/f", False), ("/etc/app.conf", False)], ["/run/app"])
    # /dev/null is writable under every policy: no entry (never `/dev`, which grants creating)
    assert out == ["/etc/app.conf", "/srv/data", "/tmp"]


def test_fold_reads_into_globs() -> None:
    out = fold_reads(["/usr/lib/a.so", "/usr/lib/b.so", "/usr/lib/c.so", "/usr/lib", "/etc/passwd", "/",
                      "/tmp/x"], covered=["/tmp"])
    assert out == ["/", "/etc/passwd", "/usr/lib/**"]


def test_infer_rules_paths_network_caps() -> None:
    learned = learn(_rec(), "x86_64")
    assert "socket" not in learned.allow and "read" in learned.allow
    assert "restart_syscall" in learned.allow
    kinds = {(r["syscalls"][0], r["action"]) for r in learned.rules}
    assert ("socket", "allow") in kinds and ("clone", "allow") in kinds and ("clone3", "enosys") in kinds
    assert learned.sockets == ("inet:tcp",)
    assert learned.bind == (8080,)
    assert "/tmp" in learned.write and "/var/lib/app" in learned.write
    assert "/bin/busybox" in learned.exec
    assert learned.caps == ()
    low = learn(_rec(sockaddrs=frozenset({("bind", 2, 80, True)})), "x86_64")
    assert "NET_BIND_SERVICE" in low.caps


def test_document_loads_and_means_what_was_seen(tmp_path: Path) -> None:
    learned = learn(_rec(), "x86_64")
    doc = build(learned, name="t", description="d", base=None, base_ref=None,
                default_action="kill", resources=suggested_resources(50 << 20, 3),
                recorded_under=load_policy("default"))
    out = tmp_path / "t.yaml"
    check_and_write(doc, str(out))
    p = load_policy(str(out))
    assert decide(p, "read", "x86_64").action.is_allow
    assert str(decide(p, "mount", "x86_64").action) == "kill"
    assert decide(p, "socket", "x86_64", (2, 1, 0, 0, 0, 0)).action.is_allow
    assert not decide(p, "socket", "x86_64", (10, 1, 0, 0, 0, 0)).action.is_allow
    assert decide(p, "clone", "x86_64", (0x1200011, 0, 0, 0, 0, 0)).action.is_allow
    assert not decide(p, "clone", "x86_64", (0x10000000, 0, 0, 0, 0, 0)).action.is_allow
    assert p.resources.memory == 100 << 20 and p.resources.pids == 32
    assert p.network.mode == "loopback"
    assert not list(tmp_path.glob(".stockade-*"))  # no temporary file left behind


def test_extends_base_adds_only_what_base_lacks(tmp_path: Path) -> None:
    learned = learn(_rec(syscalls=frozenset({("x86_64", "read"), ("x86_64", "mount")})), "x86_64")
    base = load_policy("default")
    doc = build(learned, name="t", description="d", base=base, base_ref="default",
                default_action="kill", resources={})
    assert doc["extends"] == ["default"]
    assert doc["syscalls"]["allow"] == ["mount"]  # read: the base allows it already
    out = tmp_path / "t.yaml"
    check_and_write(doc, str(out))
    assert decide(load_policy(str(out)), "mount", "x86_64").action.is_allow


def test_merge_unions_and_takes_maxima() -> None:
    a = {"stockade": 1, "name": "x", "description": "learned",
         "syscalls": {"allow": ["read"], "rules": [{"syscalls": ["ioctl"], "action": "allow"}]},
         "filesystem": {"writable": ["/srv/a"]}, "network": {"mode": "none", "allow": []},
         "resources": {"memory": "64Mi", "pids": 40}}
    b = {"stockade": 1, "name": "x", "description": "learned",
         "syscalls": {"allow": ["write"], "rules": [{"syscalls": ["ioctl"], "action": "allow"}]},
         "filesystem": {"writable": ["/srv/a/b", "/srv/c"]}, "network": {"mode": "loopback", "allow": ["unix"]},
         "resources": {"memory": "128Mi", "pids": 32}}
    m = merge(a, b)
    assert m["syscalls"]["allow"] == ["read", "write"]
    assert len(m["syscalls"]["rules"]) == 1
    assert m["filesystem"]["writable"] == ["/srv/a", "/srv/c"]
    assert m["network"]["mode"] == "loopback"
    assert m["resources"] == {"memory": "128Mi", "pids": 40}
    assert "(merged: 2 runs)" in m["description"]
    assert "(merged: 3 runs)" in merge(m, b)["description"]


def test_yaml_roundtrip_of_rules_is_plain() -> None:
    learned = learn(_rec(), "x86_64")
    text = yaml.safe_dump(list(learned.rules))
    assert "!!" not in text
