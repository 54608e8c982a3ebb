"""Helpers for the tests that run inside the LSM lab's guest: a busybox root with the
files the proofs use, policies written to disk, `stockade run` / runc / `stockade audit`
as subprocesses (their output is the evidence), and the kernel log."""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import REPO, make_busybox_rootfs

STOCKADE = str(REPO / ".venv" / "bin" / "stockade")
SECRET = "lab-secret-contents"


@dataclass(frozen=True)
class Ran:
    rc: int
    out: str
    err: str


def rootfs(dest: Path) -> Path:
    """busybox root + /secret.txt (world-readable: DAC never refuses it), /data (the
    writable path, world-writable), /opt/other (a script outside the exec list)."""
    make_busybox_rootfs(dest)
    (dest / "secret.txt").write_text(SECRET + "\n")
    (dest / "secret.txt").chmod(0o644)
    (dest / "data").mkdir()
    (dest / "data").chmod(0o777)
    (dest / "opt").mkdir()
    (dest / "opt" / "other").write_text("#!/bin/sh\necho other-ran\n")
    (dest / "opt" / "other").chmod(0o755)
    return dest


def policy(dest: Path, name: str, lsm: str, *, exec_list: bool = True,
           landlock: str = "off") -> Path:
    """One policy for every proof: root read-only, /data writable, /secret.txt denied,
    only /bin/busybox may run (when exec_list), Landlock off (unless asked) so that
    what refuses is the LSM under test; lsm.required."""
    lines = ["stockade: 1", f"name: {name}", "extends: [default]", "filesystem:",
             "  root: read-only", "  writable: [/data]", "  tmpfs: [/tmp]",
             "  deny: [/secret.txt]"]
    if exec_list:
        lines.append("  exec: [/bin/busybox]")
    lines += ["lsm:", "  required: true", f"  landlock: {{mode: '{landlock}'}}"]
    lines += ["  " + line for line in lsm.splitlines()]
    path = dest / f"{name}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def run(*args: str, timeout: int = 600) -> Ran:
    proc = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout,
                          check=False)
    return Ran(proc.returncode, proc.stdout, proc.stderr)


def stockade_run(pol: Path, root: Path, script: str, *extra: str) -> Ran:
    return run(STOCKADE, "run", "--policy", str(pol), "--rootfs", str(root), *extra,
               "--", "/bin/sh", "-c", script)


def run_with_failing_tool(pol: Path, root: Path, tool: str, message: str,
                          scratch: Path) -> Ran:
    """`stockade run` of a payload that would write /data/broken-ran, with a fake `tool`
    (apparmor_parser, semodule) first on PATH that prints `message` and fails."""
    fake = scratch / "bin"
    fake.mkdir()
    (fake / tool).write_text(f"#!/bin/sh\necho '{message}' >&2\nexit 1\n")
    (fake / tool).chmod(0o755)
    proc = subprocess.run([STOCKADE, "run", "--policy", str(pol), "--rootfs", str(root),
                           "--", "/bin/sh", "-c", "echo ran > /data/broken-ran"],
                          capture_output=True, text=True, timeout=600, check=False,
                          env={"PATH": f"{fake}:/usr/sbin:/usr/bin:/sbin:/bin"})
    return Ran(proc.returncode, proc.stdout, proc.stderr)


def kmsg_mark() -> int:
    """The kernel log's length now: later lines are this test's."""
    return len(kernel_log())


def kernel_log(since: int = 0) -> list[str]:
    out = subprocess.run(["dmesg"], capture_output=True, text=True, check=False).stdout
    return out.splitlines()[since:]


def wait_for_log(since: int, *needles: str, seconds: float = 10) -> list[str]:
    """Kernel log lines after `since` holding every needle (audit lines come async)."""
    deadline = time.monotonic() + seconds
    while True:
        hits = [line for line in kernel_log(since) if all(n in line for n in needles)]
        if hits or time.monotonic() > deadline:
            return hits
        time.sleep(0.2)


def runc_bundle(dest: Path, root: Path, argv: list[str], **process: object) -> Path:
    """A runc bundle on `root` (read-only, /data bound writable) running argv."""
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(["runc", "spec", "--bundle", str(dest)], check=True)
    spec = json.loads((dest / "config.json").read_text())
    spec["root"] = {"path": str(root), "readonly": True}
    spec["process"]["args"] = argv
    spec["process"]["terminal"] = False
    spec["process"].update(process)
    spec["mounts"].append({"destination": "/data", "type": "bind", "source": str(root / "data"),
                           "options": ["rbind", "rw"]})
    spec["linux"].pop("networkNamespace", None)
    (dest / "config.json").write_text(json.dumps(spec))
    return dest


def runc_run(bundle: Path, cid: str) -> Ran:
    try:
        return run("runc", "run", "--bundle", str(bundle), cid)
    finally:
        subprocess.run(["runc", "delete", "-f", cid], capture_output=True, check=False)


def audit_status(args: list[str], check_id: str) -> str:
    """The status `stockade audit` gives check_id: a finding's status ("present",
    "exploitable", "not-applicable"...) or "absent" when it is among the passed checks."""
    got = run(STOCKADE, "audit", *args, "--format", "json", "--fail-on", "critical")
    assert got.out.startswith("{"), got
    report = json.loads(got.out)
    for audit in report["audits"]:
        for finding in audit["findings"]:
            if finding["id"] == check_id:
                return f"{finding['status']}: {'; '.join(finding['evidence'])}"
        if check_id in audit["passed"]:
            return "absent"
    raise AssertionError(f"{check_id} not in the audit report: {got.err[:2000]}")


def no_leftovers() -> list[str]:
    """What sandboxes leave when they are not cleaned up: mounts naming stockade, and
    run cgroups under stockade's parent cgroups."""
    mounts = Path("/proc/self/mountinfo").read_text()
    cgroups = [str(run) for parent in Path("/sys/fs/cgroup").rglob("stockade")
               if parent.is_dir() for run in parent.iterdir() if run.is_dir()]
    return [line for line in mounts.splitlines() if "stockade" in line] + cgroups


def env_ok() -> bool:
    return os.environ.get("STOCKADE_LAB") == "1"
