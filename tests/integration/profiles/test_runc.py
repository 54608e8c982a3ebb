"""The OCI fragment merged into a real `runc spec` config runs under real runc, and the
process inside sees the policy's capabilities, no_new_privs and seccomp filter."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest
from _policies import EXAMPLE_NAMES, example
from _profiles_env import HOST, require_root, require_tool

from stockade.policy.model import Policy
from stockade.policy.vocab.capabilities import cap_mask
from stockade.profiles import oci


def _status(text: str) -> dict[str, str]:
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def _bundle(tmp_path: Path, rootfs: Path, policy: Policy) -> tuple[Path, list[str]]:
    runc = require_tool("runc")
    # With a user namespace, container root is an unprivileged host uid: every directory
    # on the way to the rootfs must be traversable by it (pytest's tmp dirs are 0700).
    bundle = Path(tempfile.mkdtemp(prefix="stockade-runc-", dir="/tmp"))
    bundle.chmod(0o755)
    # A private copy: runc creates mount points (e.g. /var/cache/web) inside the rootfs.
    shutil.copytree(rootfs, bundle / "rootfs", symlinks=True)
    subprocess.run([runc, "spec"], cwd=bundle, check=True, capture_output=True)
    config = json.loads((bundle / "config.json").read_text())
    frag, _ = oci.fragment(policy, HOST)
    merged = oci.merge_into(config, frag)
    skipped = []
    # This machine has neither SELinux nor AppArmor active: runc refuses a process label
    # for an LSM that is off, and the AppArmor profile cannot be loaded. Everything else
    # in the fragment is applied as generated.
    for key in ("selinuxLabel", "apparmorProfile"):
        if merged["process"].pop(key, None) is not None:
            skipped.append(key)
    merged["process"]["args"] = ["cat", "/proc/self/status"]
    merged["process"]["terminal"] = False
    # With a user namespace the rootfs must belong to the mapped ids (as a runtime's
    # image store would prepare it), or container root cannot create mount points.
    if "uidMappings" in merged["linux"]:
        uid = merged["linux"]["uidMappings"][0]["hostID"]
        gid = merged["linux"]["gidMappings"][0]["hostID"]
        for path in [bundle / "rootfs", *(bundle / "rootfs").rglob("*")]:
            os.lchown(path, uid, gid)
    (bundle / "config.json").write_text(json.dumps(merged))
    return bundle, skipped


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_fragment_runs_under_runc(name: str, tmp_path: Path, busybox_rootfs: Path) -> None:
    require_root()
    runc = require_tool("runc")
    policy = example(name)
    bundle, _ = _bundle(tmp_path, busybox_rootfs, policy)
    root = tmp_path / "state"
    cid = f"stockade-test-{uuid.uuid4().hex[:8]}"
    try:
        res = subprocess.run([runc, "--root", str(root), "run", "-b", str(bundle), cid],
                             capture_output=True, text=True, timeout=60)
    finally:
        subprocess.run([runc, "--root", str(root), "delete", "-f", cid], capture_output=True)
        shutil.rmtree(bundle, ignore_errors=True)
    assert res.returncode == 0, f"runc failed: {res.stderr}"
    st = _status(res.stdout)
    want = cap_mask(set(policy.capabilities.kept))
    assert int(st["CapEff"], 16) == want and int(st["CapBnd"], 16) == want
    assert int(st["CapPrm"], 16) == want and int(st["CapInh"], 16) == 0
    assert st["NoNewPrivs"].strip() == ("1" if policy.no_new_privileges else "0")
    assert st["Seccomp"].strip() == "2"  # filter mode
    uid = st["Uid"].split()
    assert uid[0] == str(policy.user.uid)
