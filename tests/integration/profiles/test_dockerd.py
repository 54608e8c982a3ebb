"""Docker flags and the seccomp profile are accepted by a real dockerd, and the container
sees the policy's capabilities, no_new_privs and seccomp filter."""

from __future__ import annotations

from pathlib import Path

import pytest
from _policies import EXAMPLE_NAMES, example
from _profiles_env import HOST

from stockade.lsm import apparmor
from stockade.policy.model import Policy
from stockade.policy.vocab.capabilities import cap_mask
from stockade.profiles import docker
from stockade.profiles.base import write_artifacts


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_docker_accepts_flags_and_profiles(name: str, tmp_path: Path, dockerd: object) -> None:
    policy: Policy = example(name)
    write_artifacts(docker.compile(policy, HOST), str(tmp_path))
    # AppArmor is not active on this machine, so its profile cannot be loaded and
    # dockerd would refuse `apparmor=<name>`; test_apparmor_profile_loads covers it where
    # it is. Every other flag is passed exactly as generated.
    # SELinux is not active either, so `label=type:` is left out the same way.
    flags = docker.run_flags(policy, HOST, seccomp_path=str(tmp_path / "seccomp.json"),
                             apparmor=False, selinux=False)
    res = dockerd.docker("run", "--rm", *flags, dockerd.image, "cat", "/proc/self/status",  # type: ignore[attr-defined]
                         check=False, timeout=120)
    assert res.returncode == 0, f"docker run failed: {res.stderr}"
    st = dict(line.split(":\t", 1) for line in res.stdout.splitlines() if ":\t" in line)
    want = cap_mask(set(policy.capabilities.kept))
    assert int(st["CapEff"], 16) == want and int(st["CapBnd"], 16) == want
    assert st["NoNewPrivs"].strip() == "1"
    assert st["Seccomp"].strip() == "2"


def test_apparmor_profile_loads() -> None:
    why = apparmor.unavailable_reason()
    if why is not None:
        pytest.skip(f"AppArmor is not usable on this machine ({why}): the generated profile "
                    "is checked by apparmor_parser -Q -K instead of being loaded into dockerd")
    pytest.skip("loading profiles into the kernel is left to machines with AppArmor active")
