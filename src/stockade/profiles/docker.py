"""Docker: seccomp JSON + AppArmor profile + one ready `docker run` flag line."""

from __future__ import annotations

import json
import shlex

from stockade.linux.hostfacts import HostFacts
from stockade.policy.model import Policy
from stockade.policy.paths import has_glob, validate_filesystem
from stockade.policy.units import cpu_shares
from stockade.profiles import capabilities as caps
from stockade.profiles import network_targets as net
from stockade.profiles.apparmor import profile_filename, render_profile
from stockade.profiles.base import Artifact, Artifacts, Enforcement
from stockade.profiles.registry import constituent_enforcements

SECCOMP_FILE = "seccomp.json"
FLAGS_FILE = "docker-flags.txt"


def run_flags(policy: Policy, host: HostFacts, *, seccomp_path: str = SECCOMP_FILE,
              apparmor: bool = True, selinux: bool = True) -> list[str]:
    """The `docker run` options for this policy, in a fixed order.

    `apparmor=False` leaves out `--security-opt apparmor=…` (for hosts without AppArmor,
    where dockerd would refuse an unknown profile); `selinux=False` likewise leaves out
    `label=type:…` for hosts where SELinux is not active.
    """
    fs = policy.filesystem
    flags: list[str] = []
    if policy.no_new_privileges:
        flags += ["--security-opt", "no-new-privileges"]
    flags += ["--security-opt", f"seccomp={seccomp_path}"]
    if apparmor and policy.lsm.apparmor is not None:
        flags += ["--security-opt", f"apparmor={policy.name}"]
    if selinux and policy.lsm.selinux is not None:
        flags += ["--security-opt", f"label=type:{policy.selinux_type}"]
    flags += caps.docker_flags(policy, host)
    if fs.root != "writable":
        flags.append("--read-only")
    tmpfs = [e.path for e in fs.tmpfs]
    if fs.root != "writable":
        tmpfs += [e.path for e in fs.writable]
    for path in dict.fromkeys(p for p in tmpfs if not has_glob(p)):
        flags += ["--tmpfs", path]
    if net.is_private(policy):
        flags += net.docker_flags(policy)
    else:
        flags += ["--network", "host" if policy.network.mode == "host" else "none"]
    for ns, flag in (("pid", "--pid"), ("ipc", "--ipc"), ("uts", "--uts")):
        if ns not in policy.namespaces:
            flags += [flag, "host"]
    flags += ["--cgroupns", "private" if "cgroup" in policy.namespaces else "host"]
    flags += ["--user", f"{policy.user.uid}:{policy.user.gid}"]
    if policy.hostname and "uts" in policy.namespaces and policy.network.mode != "host":
        flags += ["--hostname", policy.hostname]
    r = policy.resources
    if r.memory is not None:
        flags += ["--memory", str(r.memory)]
        if r.swap is not None:
            flags += ["--memory-swap", str(r.memory + r.swap)]  # Docker: memory + swap
    if r.pids is not None:
        flags += ["--pids-limit", str(r.pids)]
    if r.cpu is not None:
        flags += ["--cpus", f"{r.cpu:g}"]
    if r.cpu_weight is not None:
        flags += ["--cpu-shares", str(cpu_shares(r.cpu_weight))]
    if r.io_weight is not None:
        flags += ["--blkio-weight", str(max(10, min(1000, r.io_weight // 10)))]
    for name, value in sorted(policy.rlimits.items()):
        flags += ["--ulimit", f"{name}={value}:{value}"]
    return flags


def enforcements(policy: Policy, host: HostFacts) -> list[Enforcement]:
    out = [Enforcement("no_new_privileges", "docker", "--security-opt no-new-privileges"),
           Enforcement(f"filesystem.root[{policy.filesystem.root}]", "docker", "--read-only")]
    for e in policy.filesystem.tmpfs:
        out.append(Enforcement(f"filesystem.tmpfs[{e.path}]", "docker", "--tmpfs"))
    out.append(Enforcement(f"network.mode[{policy.network.mode}]", "docker", "--network"))
    return out + net.enforcements(policy, "docker")


def compile(policy: Policy, host: HostFacts) -> Artifacts:  # noqa: A001 - the Backend name
    validate_filesystem(policy)  # one glob language for every target (paths.py)
    from stockade.seccomp.docker_json import docker_seccomp

    files = [Artifact(SECCOMP_FILE, text=json.dumps(docker_seccomp(policy, host), indent=2) + "\n",
                      description="Docker seccomp profile")]
    notes = []
    warnings = caps.critical_warnings(policy)
    if policy.lsm.apparmor is not None:
        files.append(Artifact(profile_filename(policy), text=render_profile(policy, host),
                              description=f"AppArmor profile '{policy.name}'"))
        notes.append(f"load the AppArmor profile first: apparmor_parser -r {profile_filename(policy)}")
    line = "docker run " + shlex.join(run_flags(policy, host)) + " IMAGE [COMMAND...]"
    files.append(Artifact(FLAGS_FILE, text=line + "\n", description="ready `docker run` line"))
    notes.append(f"run from the output directory: {line}")
    if "user" in policy.namespaces and policy.user.map != "host":
        warnings.append("docker: user namespaces are a daemon setting (dockerd --userns-remap); "
                        "the flag line cannot ask for one")
    if policy.network.mode == "loopback":
        notes.append("docker: --network none gives a namespace with only lo up (= loopback)")
    if net.is_private(policy):
        warnings += net.docker_warnings(policy)
    for e in policy.filesystem.deny:
        warnings.append(f"docker: filesystem.deny[{e.path}] is enforced only by the AppArmor profile")
        break
    return Artifacts(target="docker", files=tuple(files), enforcements=tuple(enforcements(policy, host))
        + constituent_enforcements(policy, host, "docker"),
                     warnings=tuple(warnings), notes=tuple(notes))
