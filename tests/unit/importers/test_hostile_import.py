"""Hostile input to `stockade import` (issue 13.8): type-confused JSON, binary files,
directories, huge or deeply nested files. Each used to end in a traceback (29 distinct ones
in 5,000 mutated Docker profiles); each is now one line naming the field, exit 2, and no
output file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from stockade.cli import main
from stockade.importers.json_input import MAX_IMPORT_BYTES
from stockade.policy.loader import load_policy
from tests.conftest import MOBY_PROFILE

SEEDS = Path(__file__).resolve().parents[2] / "data" / "seeds"


def _import(tmp_path: Path, kind: str, src: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    out = tmp_path / "out.yaml"
    rc = main(["import", kind, str(src), "-o", str(out)])
    err = capsys.readouterr().err
    if rc != 0:
        assert not out.exists()
        assert [p.name for p in tmp_path.iterdir() if ".tmp" in p.name] == []
    return rc, err


def _profile(**syscall: Any) -> dict[str, Any]:
    return {"defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", **syscall}]}


# (field changed, found in the message): each of these raised TypeError/AttributeError/KeyError
CONFUSED = [
    (_profile(names=3), "syscalls[0].names: invalid value; found 3"),
    (_profile(args=1.5), "syscalls[0].args: invalid value; found 1.5"),
    (_profile(includes={"caps": True}), "syscalls[0].includes.caps: invalid value; found true"),
    (_profile(args=[{"value": 1, "op": "SCMP_CMP_EQ"}]), "syscalls[0].args[0].index: required key is missing"),
    (_profile(args=[{"index": "0", "value": 1, "op": "SCMP_CMP_EQ"}]), "syscalls[0].args[0].index"),
    (_profile(args=[{"index": 7, "value": 1, "op": "SCMP_CMP_EQ"}]), "syscalls[0].args[0].index"),
    (_profile(args=[{"index": 0, "value": -1, "op": "SCMP_CMP_EQ"}]), "syscalls[0].args[0].value"),
    (_profile(args=[{"index": 0, "value": 1, "op": None}]), "syscalls[0].args[0].op"),
    (_profile(args=["x"]), "syscalls[0].args[0]: invalid value"),
    (_profile(errnoRet="EPERM"), "syscalls[0].errnoRet"),
    (_profile(errnoRet=0), "syscalls[0].errnoRet"),
    (_profile(action=None), "syscalls[0].action"),
    (_profile(includes={"minKernel": "four"}), "syscalls[0].includes.minKernel: invalid kernel version"),
    (_profile(includes={"caps": ["CAP_NOPE"]}), "syscalls[0].includes.caps[0]: unknown capability"),
    (_profile(excludes=[]), "syscalls[0].excludes: invalid value"),
    ({"defaultAction": 7}, "defaultAction: invalid value; found 7"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": {"names": []}}, "syscalls: invalid value"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "archMap": [{"subArchitectures": []}]},
     "archMap[0].architecture: required key is missing"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "architectures": "SCMP_ARCH_X86_64"}, "architectures"),
    ({"linux": {"seccomp": {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": 3}]}}},
     "linux.seccomp.syscalls[0]"),
    ([1, 2], "not a seccomp profile; found list"),
]


@pytest.mark.parametrize("data,message", CONFUSED, ids=[m for _, m in CONFUSED])
def test_type_confused_seccomp_profile(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      data: Any, message: str) -> None:
    src = tmp_path / "profile.json"
    src.write_text(json.dumps(data))
    rc, err = _import(tmp_path, "docker-seccomp", src, capsys)
    assert rc == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"stockade: {src}: ") and message in err, err


@pytest.mark.parametrize("kind", ["docker-seccomp", "oci-config", "docker-inspect"])
def test_binary_file_directory_and_size(tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str) -> None:
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\x7fELF\x02\x01\x01\x00" + bytes(range(128, 256)))
    assert _import(tmp_path, kind, binary, capsys) == (2, f"stockade: {binary}: not UTF-8 text; "
                                                      f"found byte 0x80 at offset 8; expected "
                                                      f"{_what(kind)}\n")
    directory = tmp_path / "dir.json"
    directory.mkdir()
    rc, err = _import(tmp_path, kind, directory, capsys)
    assert rc == 2 and "is a directory" in err
    big = tmp_path / "big.json"
    big.write_text("[" + "0," * MAX_IMPORT_BYTES + "0]")
    rc, err = _import(tmp_path, kind, big, capsys)
    assert rc == 2 and "file too large" in err and "1 MiB" in err
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 200_000 + "]" * 200_000)
    rc, err = _import(tmp_path, kind, deep, capsys)
    assert rc == 2 and err.count("\n") == 1, err


def _what(kind: str) -> str:
    return {"docker-seccomp": "a Docker/OCI seccomp profile (JSON)",
            "oci-config": "an OCI runtime config.json", "docker-inspect": "`docker inspect` JSON"}[kind]


OCI_CONFUSED = [
    ({"process": 3}, "process: invalid value; found 3"),
    ({"process": {"user": {"uid": "0"}}}, "process.user.uid"),
    ({"process": {"user": {"uid": 4294967295}}}, "process.user.uid"),
    ({"process": {"rlimits": [{"type": "RLIMIT_NOFILE", "soft": "many"}]}}, "process.rlimits[0].soft"),
    ({"process": {"capabilities": {"bounding": "CAP_KILL"}}}, "process.capabilities.bounding"),
    ({"process": {}, "mounts": [{"destination": ["/x"]}]}, "mounts[0].destination"),
    ({"process": {}, "mounts": [{"type": "bind"}]}, "mounts[0].destination: required key is missing"),
    ({"process": {}, "linux": {"resources": {"memory": {"limit": [1]}}}}, "linux.resources.memory.limit"),
    ({"process": {}, "linux": {"namespaces": [{"type": "user"}], "uidMappings": [{"hostID": 0, "size": 1}]}},
     "linux.uidMappings[0].containerID: required key is missing"),
    ({"process": {}, "linux": {"seccomp": {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": 3}]}}},
     "linux.seccomp.syscalls[0]"),
    ({"process": {}, "linux": {"seccomp": 5}}, "linux.seccomp: invalid value"),
    ({"process": {}, "root": {"readonly": "yes"}}, "root.readonly"),
]


@pytest.mark.parametrize("data,message", OCI_CONFUSED, ids=[m for _, m in OCI_CONFUSED])
def test_type_confused_oci_config(tmp_path: Path, capsys: pytest.CaptureFixture[str], data: Any,
                                  message: str) -> None:
    src = tmp_path / "config.json"
    src.write_text(json.dumps({"ociVersion": "1.0.2", **data}))
    rc, err = _import(tmp_path, "oci-config", src, capsys)
    assert rc == 2, err
    assert err.count("\n") == 1 and err.startswith(f"stockade: {src}: ") and message in err, err


INSPECT_CONFUSED = [
    ({"HostConfig": {"CapAdd": "NET_ADMIN"}}, "[0].HostConfig.CapAdd"),
    ({"HostConfig": {"Memory": "1g"}}, "[0].HostConfig.Memory"),
    ({"HostConfig": {"Ulimits": [{"Soft": 1}]}}, "[0].HostConfig.Ulimits[0].Name: required key is missing"),
    ({"HostConfig": {}, "Config": {"User": "99999999999"}}, "[0].Config.User: user id out of range"),
    ({"HostConfig": {"SecurityOpt": ['seccomp={"defaultAction": 1}']}}, "[0].HostConfig.SecurityOpt.defaultAction"),
    ({"HostConfig": {}, "Mounts": [{"Destination": "/x", "RW": "no"}]}, "[0].Mounts[0].RW"),
]


@pytest.mark.parametrize("data,message", INSPECT_CONFUSED, ids=[m for _, m in INSPECT_CONFUSED])
def test_type_confused_docker_inspect(tmp_path: Path, capsys: pytest.CaptureFixture[str], data: Any,
                                      message: str) -> None:
    src = tmp_path / "inspect.json"
    src.write_text(json.dumps([data]))
    rc, err = _import(tmp_path, "docker-inspect", src, capsys)
    assert rc == 2, err
    assert err.count("\n") == 1 and err.startswith(f"stockade: {src}: ") and message in err, err


@pytest.mark.parametrize("seed", [MOBY_PROFILE, SEEDS / "podman-seccomp.json"], ids=lambda p: p.name)
def test_real_profiles_still_import(tmp_path: Path, capsys: pytest.CaptureFixture[str], seed: Path) -> None:
    rc, err = _import(tmp_path, "docker-seccomp", seed, capsys)
    assert rc == 0, err
    assert load_policy(str(tmp_path / "out.yaml")).syscalls.default.kind.value.startswith("errno")


def test_import_too_large_for_a_policy_is_refused_before_writing(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    # 2,000 distinct argument rules (~30,000 YAML nodes once written) in 0.2 MiB of JSON: it
    # used to be dumped (seconds for 1 MiB of them) and then refused when re-read.
    from stockade.policy.source import MAX_YAML_NODES

    rule = '{"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": %d, "op": "SCMP_CMP_EQ"}]}'
    src = tmp_path / "many-rules.json"
    src.write_text('{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": ['
                   + ",".join(rule % i for i in range(2000)) + "]}")
    rc, err = _import(tmp_path, "docker-seccomp", src, capsys)
    assert rc == 2
    assert err == (f"stockade: {src}: the imported policy would be too large; found 30017 YAML nodes; "
                   f"expected at most {MAX_YAML_NODES} (the limit for a policy)\n")


def test_output_that_is_a_directory_or_in_a_missing_one(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    # os.replace(tmp, DIR) raised IsADirectoryError and left OUT.tmp-PID next to it
    for out in (tmp_path, tmp_path / "missing" / "p.yaml"):
        assert main(["import", "docker-seccomp", str(MOBY_PROFILE), "-o", str(out)]) == 2
        assert capsys.readouterr().err == f"stockade: import: -o {out}: expected a file in an existing directory\n"
    assert list(tmp_path.iterdir()) == []
