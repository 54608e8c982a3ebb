"""The default view as planned (issue 16), without privileges: the jail's mounts, expose,
read_only under a tmpfs, secrets, strict's missing /sys, preset limits as best-effort."""

from __future__ import annotations

from pathlib import Path

import pytest

from stockade.errors import RunnerError
from stockade.policy.loader import load_policy
from stockade.runner._record import replace
from stockade.runner.plan import RunSpec, build_plan, describe, without_preset_limits
from stockade.runner.prepare import policy_part
from stockade.runner.view import secret_masks, system_ops

FAKE_BPF = b"\x06\x00\x00\x00\x00\x00\xff\x7f"  # one instruction: RET ALLOW
RUN = RunSpec(argv=("/bin/true",))


def _part(ref: str):  # type: ignore[no-untyped-def]
    return policy_part(load_policy(ref), seccomp_bpf=FAKE_BPF)


def _dsts(plan, kind: str) -> list[str]:  # type: ignore[no-untyped-def]
    return [op.dst for op in plan.mounts if op.kind == kind]


def test_no_rootfs_is_a_jail_without_the_host_tree() -> None:
    plan = build_plan(_part("default"), RUN, euid=0)
    assert plan.jail and plan.host_root
    root = plan.mounts[0]
    assert (root.kind, root.src, root.readonly) == ("root", "", True)  # a fresh tmpfs
    binds = {op.src for op in plan.mounts if op.kind in ("bind", "writable")}
    assert "/" not in binds and "/home" not in binds and "/etc" not in binds
    assert "/usr" in binds and "/etc/passwd" in binds
    assert not any(op.dst in ("/etc/shadow", "/etc/gshadow") for op in plan.mounts
                   if op.kind == "bind")
    assert "rootfs      a fresh tmpfs (jail, read-only)" in describe(plan)


def test_rootfs_slash_keeps_the_host_view() -> None:
    plan = build_plan(_part("default"), RunSpec(argv=("/bin/true",), rootfs="/"), euid=0)
    assert not plan.jail and plan.mounts[0].src == "/"
    assert "/etc/shadow" in _dsts(plan, "mask")  # secrets masked there too


def test_strict_has_no_sysfs_default_does() -> None:
    assert "/sys" not in _dsts(build_plan(_part("strict"), RUN, euid=0), "sysfs")
    assert "/sys" in _dsts(build_plan(_part("default"), RUN, euid=0), "sysfs")


def test_expose_and_writable_are_bound_from_the_host(tmp_path: Path) -> None:
    part = replace(_part("default"), fs_expose=(str(tmp_path),), fs_writable=("/srv/x",))
    plan = build_plan(part, RUN, euid=0)
    [shown] = [op for op in plan.mounts if op.why == "filesystem.expose"]
    assert (shown.src, shown.dst, shown.readonly) == (str(tmp_path), str(tmp_path), True)
    [rw] = [op for op in plan.mounts if op.kind == "writable"]
    assert (rw.src, rw.readonly) == ("/srv/x", False)


def test_expose_outside_the_jail_is_a_note(tmp_path: Path) -> None:
    part = replace(_part("default"), fs_expose=(str(tmp_path),))
    plan = build_plan(part, RunSpec(argv=("/bin/true",), rootfs=str(tmp_path)), euid=0)
    assert any("filesystem.expose applies to the default view only" in n for n in plan.notes)


@pytest.mark.parametrize("path", ["/tmp/inputs", "/run/x/y"])
def test_read_only_under_a_tmpfs_is_refused(path: str) -> None:
    part = replace(_part("default"), fs_read_only=(path,))
    with pytest.raises(RunnerError, match=f"filesystem.read_only {path}: under the tmpfs"):
        build_plan(part, RUN, euid=0)


@pytest.mark.parametrize("path", ["/tmp", "/tmp/**", "/usr/lib"])
def test_read_only_not_hidden_is_fine(path: str) -> None:
    build_plan(replace(_part("default"), fs_read_only=(path,)), RUN, euid=0)


def test_read_only_under_a_bound_path_is_fine() -> None:
    part = replace(_part("default"), fs_read_only=("/tmp/data/in",), fs_writable=("/tmp/data",))
    build_plan(part, RUN, euid=0)


def test_system_ops_follow_the_host_layout(tmp_path: Path) -> None:
    (tmp_path / "usr" / "bin").mkdir(parents=True)
    (tmp_path / "bin").symlink_to("usr/bin")
    (tmp_path / "lib").mkdir()
    (tmp_path / "etc" / "ssl" / "private").mkdir(parents=True)
    (tmp_path / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (tmp_path / "etc" / "shadow").write_text("root:$6$secret\n")
    (tmp_path / "etc" / "resolv.conf").symlink_to("/nonexistent/stub")  # dangling: skipped
    ops = system_ops("box", host=str(tmp_path))
    kinds = {(op.kind, op.dst, op.src) for op in ops if op.kind != "file"}
    assert kinds == {("bind", "/usr", "/usr"), ("symlink", "/bin", "usr/bin"),
                     ("bind", "/lib", "/lib"), ("bind", "/etc/passwd", "/etc/passwd"),
                     ("bind", "/etc/ssl", "/etc/ssl")}
    hosts = next(op for op in ops if op.dst == "/etc/hosts")
    assert "127.0.1.1\tbox" in dict(hosts.data)["content"]
    masks = [op.dst for op in secret_masks(["/etc/ssl"], host=str(tmp_path))]
    assert masks == ["/etc/ssl/private"]  # /etc/shadow: not under what is shown
    masks = [op.dst for op in secret_masks(["/etc"], host=str(tmp_path))]
    assert masks == ["/etc/shadow", "/etc/ssl/private"]


def test_preset_limits_become_nproc() -> None:
    part = _part("default")
    assert part.limits_best_effort and part.limits.pids == 1024
    plan, note = without_preset_limits(build_plan(part, RUN, euid=0), "no cgroup (v1)")
    assert not plan.policy.limits.any
    assert ("nproc", 1024, 1024) in plan.policy.rlimits
    assert "pids=1024" in note and "no cgroup (v1)" in note


def test_own_limits_are_not_best_effort(tmp_path: Path) -> None:
    own = tmp_path / "own.yaml"
    own.write_text("stockade: 1\nname: own\nextends: [default]\nresources: {pids: 64}\n")
    assert not _part(str(own)).limits_best_effort
    none = tmp_path / "none.yaml"
    none.write_text("stockade: 1\nname: none\nsyscalls: {default: allow}\n")
    assert not _part(str(none)).limits_best_effort  # no limits at all


def test_dry_run_says_what_writable_paths_get_at_run_time(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """--dry-run names the idmapped mount and the set-id guard a writable host path brings
    (before, the plan showed a plain `writable` mount and CAP_SETFCAP kept, unlike the run)."""
    from stockade.runner import idmount

    part = replace(_part("default"), fs_writable=("/srv/x",))
    monkeypatch.setattr(idmount.os, "geteuid", lambda: 0)
    text = describe(build_plan(part, RUN, euid=0))
    assert "idmap       /srv/x: idmapped through the sandbox's maps" in text
    assert "idmap       set-id guard: CAP_SETFCAP dropped" in text
    assert "idmap" not in describe(build_plan(_part("default"), RUN, euid=0))  # nothing to map
    monkeypatch.setattr(idmount.os, "geteuid", lambda: 1000)
    rootless = describe(build_plan(part, RUN, euid=1000))
    assert "idmap       /srv/x: no idmapped mount (rootless)" in rootless
    assert "set-id guard" not in rootless
