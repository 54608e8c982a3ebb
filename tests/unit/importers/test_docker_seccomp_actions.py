"""How an imported Docker/OCI seccomp profile's actions read: as the kernel enforces them."""

from __future__ import annotations

import json
from pathlib import Path

from stockade.importers.docker_seccomp import import_profile
from stockade.linux.syscall_table import syscall_table
from stockade.policy import model as m
from stockade.policy.loader import load_policy
from stockade.seccomp.check import evaluate
from stockade.seccomp.runc_build import compile_docker_profile

PROFILE = {
    "defaultAction": "SCMP_ACT_ALLOW",
    "architectures": ["SCMP_ARCH_X86_64"],
    "syscalls": [
        {"names": ["ptrace"], "action": "SCMP_ACT_TRACE", "errnoRet": 1},
        {"names": ["personality"], "action": "SCMP_ACT_TRACE"},
        {"names": ["reboot"], "action": "SCMP_ACT_KILL"},
        {"names": ["mount"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
    ],
}


def test_trace_imports_as_enosys_the_kernels_answer_without_a_tracer(tmp_path: Path) -> None:
    """SCMP_ACT_TRACE became errno EPERM (or errnoRet): with no tracer attached the kernel
    fails the call with ENOSYS, so the imported policy denied differently from the profile."""
    doc = import_profile(PROFILE, file="p.json").document
    actions = {r["syscalls"][0]: r["action"] for r in doc["syscalls"]["rules"]}
    assert actions["ptrace"] == "enosys"
    assert actions["personality"] == "enosys"
    assert actions["reboot"] == "kill-thread"
    assert actions["mount"] == "errno:EACCES"
    # and the policy decides as the profile's own BPF (runc's way) does, run side by side
    policy_file = tmp_path / "imported.yaml"
    policy_file.write_text(json.dumps(doc))
    from stockade.linux.hostfacts import HostFacts
    from stockade.seccomp.filter import compile_filter

    host = HostFacts(arch="x86_64", kernel=(6, 18), cap_last_cap=40, landlock_abi=7)
    ours = compile_filter(load_policy(policy_file), host).program
    theirs = compile_docker_profile(PROFILE, native="x86_64", arches=["x86_64"], enosys_stub=False)
    table = syscall_table().by_arch["x86_64"]
    for name in ("ptrace", "personality", "reboot", "mount", "getpid"):
        assert evaluate(ours, "x86_64", table[name]) == evaluate(theirs, "x86_64", table[name]), name
    assert evaluate(theirs, "x86_64", table["ptrace"]) == m.DENY_ENOSYS


def test_the_importer_reads_the_writers_names_without_libseccomp() -> None:
    """One table of SCMP_* names (seccomp.names) serves the JSON writer and the importer;
    importing a profile must not load libseccomp for it."""
    import subprocess
    import sys

    from stockade.seccomp import docker_json, names

    assert docker_json.SCMP_ACTION is names.SCMP_ACTION and docker_json.SCMP_OP is names.SCMP_OP
    code = "import sys, stockade.importers.docker_seccomp; print('pyseccomp' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    # every name the writer writes reads back as the action it was written for
    for kind, name in names.SCMP_ACTION.items():
        assert names.json_action(name, 13, 1).kind is kind
