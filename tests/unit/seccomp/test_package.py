"""The seccomp package's own contracts after the split into planning / building / checking
(issue 18): the compile memo keys on what a compile reads of the host, and the checker
does not load libseccomp (`seccomp.check.evaluate`, used by `learn` and `explain`)."""

from __future__ import annotations

import subprocess
import sys
from types import MappingProxyType

from stockade.linux.hostfacts import HostFacts
from stockade.linux.runtimes import RuntimeInfo
from stockade.policy.loader import load_policy
from stockade.seccomp import filter as seccomp_filter

HOST = HostFacts(arch="x86_64", kernel=(6, 18), cap_last_cap=40, landlock_abi=7)


def test_a_host_record_with_runtimes_compiles_and_shares_the_memo() -> None:
    """HostFacts as the audit builds it holds a mapping (unhashable): keying the memo on the
    whole record made every compile for such a host fail with a TypeError."""
    policy = load_policy("default")
    audited = HostFacts(arch="x86_64", kernel=(6, 18), cap_last_cap=40, landlock_abi=7,
                        runtimes=MappingProxyType({"runc": RuntimeInfo("runc", "1.1.5")}),
                        cgroup_mode="hybrid")
    seccomp_filter._CACHE.clear()
    plain = seccomp_filter.compile_filter(policy, HOST)
    assert seccomp_filter.compile_filter(policy, audited) is plain  # nothing it reads differs
    other_kernel = HostFacts(arch="x86_64", kernel=(3, 10), cap_last_cap=40, landlock_abi=7)
    assert seccomp_filter.compile_filter(policy, other_kernel) is not plain  # min_kernel rules differ


def test_evaluating_a_program_does_not_load_libseccomp() -> None:
    code = ("import sys\nfrom stockade.seccomp.check import evaluate\n"
            "print('pyseccomp' in sys.modules, 'stockade.seccomp.build' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_the_oci_artifact_is_the_oci_object_the_other_targets_embed() -> None:
    """seccomp-oci.json and the `linux.seccomp` of the oci/kubernetes targets came from two
    writers, and the file lacked the `flags` the embedded object has."""
    import json

    from stockade.profiles.seccomp import compile_seccomp
    from stockade.seccomp.docker_json import oci_seccomp

    policy = load_policy("default")
    artifact = compile_seccomp(policy, HOST, only="seccomp-oci.json").files[0]
    assert json.loads(artifact.content()) == oci_seccomp(policy, HOST)
    assert json.loads(artifact.content())["flags"] == []
