"""Bad bundles: a clear message naming the problem, and nothing left behind."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.integration.oci.conftest import Bundles, leftovers, oci


def _expect_error(root: Path, bundle: Path, cid: str, *needles: str) -> None:
    r = oci(root, "create", "--bundle", str(bundle), cid)
    assert r.returncode != 0
    for n in needles:
        assert n in r.stderr, r.stderr
    assert not (root / "stockade" / cid).exists()
    assert oci(root, "state", cid).returncode != 0
    assert not leftovers(cid)


def test_malformed_json(tmp_path: Path, oci_root: Path) -> None:
    (tmp_path / "config.json").write_text('{"ociVersion": "1.0.2", "root": ')
    _expect_error(oci_root, tmp_path, "m1", "not valid JSON")


def test_missing_config(tmp_path: Path, oci_root: Path) -> None:
    _expect_error(oci_root, tmp_path, "m2", "no config.json")


@pytest.mark.parametrize("edit,needle", [
    (lambda c: c.pop("process"), "process is missing"),
    (lambda c: c["root"].pop("path"), "root.path is missing"),
    (lambda c: c.__setitem__("ociVersion", "2.0.0"), "unsupported major version"),
    (lambda c: c.pop("ociVersion"), "ociVersion is missing"),
    (lambda c: c["linux"].__setitem__("intelRdt", {"closID": "x"}), "linux.intelRdt"),
    (lambda c: c["linux"].__setitem__("personality", {"domain": "LINUX32"}),
     "linux.personality"),
    (lambda c: c["process"].__setitem__("user", {"uid": 0, "gid": 0, "umask": 0o7777}),
     "process.user.umask"),
    (lambda c: c["linux"]["resources"].__setitem__("blockIO", {"weight": 100}),
     "linux.resources.blockIO"),
    (lambda c: c["process"].__setitem__("args", []), "process.args"),
    (lambda c: c["process"]["capabilities"]["bounding"].append("CAP_NOPE"), "CAP_NOPE"),
    (lambda c: c["process"].__setitem__("rlimits", [{"type": "RLIMIT_X", "soft": 1,
                                                     "hard": 1}]), "RLIMIT_X"),
    (lambda c: c["mounts"].append({"destination": "/x", "type": "nfs", "source": "a:/b"}),
     "mount type 'nfs'"),
    (lambda c: c["mounts"].append({"destination": "/x", "type": "tmpfs",
                                   "options": ["sideways"]}), "'sideways'"),
    (lambda c: c["linux"].__setitem__("sysctl", {"kernel.panic": "1"}), "kernel.panic"),
    (lambda c: c["linux"].__setitem__("rootfsPropagation", "sideways"), "rootfsPropagation"),
    (lambda c: c["linux"]["namespaces"].append({"type": "time"}), "'time'"),
    (lambda c: c.__setitem__("hooks", {"startContainer": [{"path": "bin/true"}]}),
     "hooks.startContainer[0].path"),
    (lambda c: c["linux"].__setitem__("seccomp", {"defaultAction": "SCMP_ACT_ALLOW",
                                                 "listenerPath": "/x"}),
     "linux.seccomp.listenerPath"),
    (lambda c: c["linux"]["namespaces"].append({"type": "user"}), "mappings"),
])
def test_config_errors(edit: Any, needle: str, bundles: Bundles, oci_root: Path) -> None:
    cfg = bundles.config()
    edit(cfg)
    b = bundles.make(cfg)
    if needle == "root.path is missing":  # make() sets it: take it out again
        data = json.loads((b / "config.json").read_text())
        data["root"].pop("path")
        (b / "config.json").write_text(json.dumps(data))
    _expect_error(oci_root, b, "bad1", needle)


def test_rootfs_symlink_escape(tmp_path: Path, oci_root: Path, bundles: Bundles) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    b = tmp_path / "b"
    b.mkdir()
    (b / "rootfs").symlink_to(outside)
    cfg = bundles.config()
    cfg["root"]["path"] = "rootfs"
    (b / "config.json").write_text(json.dumps(cfg))
    _expect_error(oci_root, b, "esc1", "outside the bundle")
    (b / "rootfs").unlink()
    (b / "rootfs").symlink_to("../b/../../" + os.path.basename(tmp_path) + "/elsewhere")
    _expect_error(oci_root, b, "esc2", "outside the bundle")


def test_failure_during_setup_leaves_nothing(bundles: Bundles, oci_root: Path) -> None:
    """A step fails inside the new namespaces (cwd missing), after the cgroup exists."""
    cfg = bundles.config()
    cfg["process"]["cwd"] = "/does/not/exist"
    cfg["linux"]["resources"]["pids"] = {"limit": 10}
    b = bundles.make(cfg)
    _expect_error(oci_root, b, "late1", "hygiene")


def test_failing_hook_leaves_nothing(bundles: Bundles, oci_root: Path) -> None:
    cfg = bundles.config()
    cfg["hooks"] = {"createRuntime": [{"path": "/bin/false"}]}
    b = bundles.make(cfg)
    _expect_error(oci_root, b, "hook1", "hooks.createRuntime[0]")


def test_missing_bind_source(bundles: Bundles, oci_root: Path) -> None:
    cfg = bundles.config()
    cfg["mounts"].append({"destination": "/mnt", "type": "bind", "source": "/nonexistent-x",
                          "options": ["rbind"]})
    _expect_error(oci_root, bundles.make(cfg), "bind1", "mounts[", "/nonexistent-x")


def test_runtime_killed_mid_create(bundles: Bundles, oci_root: Path, tmp_path: Path) -> None:
    """SIGKILL to `create` itself (from its createRuntime hook): the container dies with
    it, the state says stopped, and delete removes the recorded cgroup."""
    hook = tmp_path / "kill-creator.sh"
    hook.write_text("#!/bin/sh\nkill -9 $PPID\n")
    hook.chmod(0o755)
    cfg = bundles.config()
    cfg["linux"]["resources"]["pids"] = {"limit": 10}
    cfg["hooks"] = {"createRuntime": [{"path": str(hook)}]}
    b = bundles.make(cfg)
    r = oci(oci_root, "create", "--bundle", str(b), "kc1")
    assert r.returncode == -9
    state = json.loads(oci(oci_root, "state", "kc1").stdout)
    assert state["status"] == "stopped"
    assert leftovers("kc1")  # the cgroup is still there, and recorded
    assert oci(oci_root, "delete", "kc1").returncode == 0
    assert not leftovers("kc1")
