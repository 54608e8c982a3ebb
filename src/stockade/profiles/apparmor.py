"""AppArmor: one profile per policy, rendered from data through a jinja2 template.

File rules come from `filesystem` (read-only/writable root, writable, exec with `ix`,
deny rules that win), network rules from `network.allow`, capability rules from the
kept set, plus the deny rules of Docker's docker-default profile. The profile is
checked by the real `apparmor_parser -Q -K` in the tests.
"""

from __future__ import annotations

from dataclasses import dataclass

from stockade.errors import Location, PolicyError
from stockade.linux.hostfacts import HostFacts
from stockade.policy.model import Policy
from stockade.policy.paths import has_glob, validate_filesystem
from stockade.profiles.base import Artifact, Artifacts, Enforcement
from stockade.profiles.capabilities import ordered

PROFILE_PREFIX = ""  # the profile name is the policy name (POLICY.md)

# moby/profiles/apparmor/template.go, rule for rule (why: parity with `docker run`'s own
# confinement, so a stockade profile is never weaker than the one it replaces).
DOCKER_DEFAULT_DENIES: tuple[str, ...] = (
    "@{PROC}/* w",  # files directly in /proc
    # write to /proc/* except /proc/<pid>/** and /proc/sys/**
    "@{PROC}/{[^1-9],[^1-9][^0-9],[^1-9s][^0-9y][^0-9s],[^1-9][^0-9][^0-9][^0-9/]*}/** w",
    "@{PROC}/sys/[^k]** w",  # /proc/sys except /proc/sys/kernel
    "@{PROC}/sys/kernel/{?,??,[^s][^h][^m]**} w",  # /proc/sys/kernel except shm*
    "@{PROC}/sysrq-trigger rwklx",
    "@{PROC}/kcore rwklx",
    "mount",
    "/sys/[^f]*/** wklx",
    "/sys/f[^s]*/** wklx",
    "/sys/fs/[^c]*/** wklx",
    "/sys/fs/c[^g]*/** wklx",
    "/sys/fs/cg[^r]*/** wklx",
    "/sys/firmware/** rwklx",
    "/sys/devices/virtual/powercap/** rwklx",
    "/sys/kernel/security/** rwklx",
)

# AppArmor network rule domain/type words for the policy's socket families/types.
_AA_FAMILIES = {"unix", "inet", "inet6", "netlink", "packet", "ax25", "ipx", "appletalk",
                "bluetooth", "can", "alg", "vsock", "key", "x25", "rds", "tipc"}
_AA_TYPES = {"tcp": "stream", "udp": "dgram", "raw": "raw", "stream": "stream",
             "dgram": "dgram", "seqpacket": "seqpacket"}

_READ = "r"
_READ_MAP = "rm"  # m: mmap PROT_EXEC (shared libraries); execve itself needs x
_WRITE = "rwlk"  # read, write(+append), link, lock
_DENY_ALL = "rwklx"


@dataclass(frozen=True)
class FileRule:
    path: str
    perms: str
    comment: str = ""


def _quote(path: str) -> str:
    return f'"{path}"' if any(c.isspace() for c in path) else path


def _tree(path: str) -> str:
    """A plain path names the file or the directory and everything below it."""
    if has_glob(path) or path == "/":
        return _quote("/**" if path == "/" else path)
    return _quote(path.rstrip("/") + "{,/**}")


def _cap_word(cap: str) -> str:
    return cap.removeprefix("CAP_").lower()


def validate_name(policy: Policy) -> None:
    import re

    if not re.fullmatch(r"[a-z][a-z0-9_-]{0,62}", policy.name):
        raise PolicyError(Location(policy.sources[-1] if policy.sources else "<policy>",
                                   key_path="name"),
                          "not a valid profile name", found=repr(policy.name),
                          expected="[a-z][a-z0-9_-]{0,62}")


def network_rules(policy: Policy) -> list[str]:
    rules: set[str] = set()
    for sock in policy.network.allow:
        fam = sock.family.lower()
        if fam not in _AA_FAMILIES:
            raise PolicyError(policy.network.allow_origin or Location("<policy>", key_path="network.allow"),
                              "socket family AppArmor cannot name", found=repr(fam),
                              expected=", ".join(sorted(_AA_FAMILIES)))
        if sock.type is None:
            rules.add(fam)
        else:
            typ = _AA_TYPES.get(sock.type)
            if typ is None:
                raise PolicyError(policy.network.allow_origin or Location("<policy>", key_path="network.allow"),
                                  "socket type AppArmor cannot name", found=repr(sock.type),
                                  expected=", ".join(sorted(_AA_TYPES)))
            # `network inet tcp` is a protocol rule; the socket-type form is the one
            # every parser version accepts for both inet and unix.
            rules.add(f"{fam} {typ}")
    return sorted(rules)


def file_rules(policy: Policy) -> tuple[list[FileRule], list[FileRule]]:
    fs = policy.filesystem
    allow: list[FileRule] = []
    denies: list[FileRule] = []
    exec_any = not fs.exec
    root_perms = _WRITE if fs.root == "writable" else _READ
    root_perms += "m" + ("ix" if exec_any else "")
    allow.append(FileRule("/", "r", "list the root directory"))
    allow.append(FileRule("/**", root_perms,
                          f"root is {fs.root}" + ("; no exec list: any file may run" if exec_any else "")))
    for e in fs.read_only:
        if fs.root == "writable":
            denies.append(FileRule(_tree(e.path), "wl", "filesystem.read_only under a writable root"))
        else:
            allow.append(FileRule(_tree(e.path), _READ_MAP, "filesystem.read_only"))
    for section, entries in (("writable", fs.writable), ("tmpfs", fs.tmpfs)):
        for e in entries:
            allow.append(FileRule(_tree(e.path), _WRITE, f"filesystem.{section}"))
    for e in fs.exec:
        allow.append(FileRule(_quote(e.path), "rmix", "filesystem.exec: inherit this profile"))
    for e in fs.deny:
        denies.append(FileRule(_tree(e.path), _DENY_ALL, "filesystem.deny"))
    return allow, denies


def render_profile(policy: Policy, host: HostFacts) -> str:
    import jinja2

    validate_name(policy)
    validate_filesystem(policy)
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("stockade.profiles", "templates"),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,  # noqa: S701 - AppArmor syntax, not HTML; inputs validated above
    )
    mode = policy.lsm.apparmor.mode if policy.lsm.apparmor is not None else "enforce"
    flags = ["attach_disconnected", "mediate_deleted"]
    if mode == "complain":
        flags.append("complain")
    abstractions = ["base"]
    if policy.network.mode != "none":
        abstractions.append("nameservice")
    allow, denies = file_rules(policy)
    return env.get_template("apparmor.profile.j2").render(
        name=policy.name,
        digest=policy.digest[:16] if policy.digest else "",
        flags=flags,
        abstractions=abstractions,
        capabilities=[_cap_word(c) for c in ordered(policy.capabilities.kept, host)],
        network=network_rules(policy),
        network_any=not policy.network.allow,
        file_rules=allow,
        policy_denies=denies,
        docker_denies=DOCKER_DEFAULT_DENIES,
    )


def enforcements(policy: Policy, host: HostFacts) -> list[Enforcement]:
    out = []
    fs = policy.filesystem
    for section in ("read_only", "writable", "exec", "deny", "tmpfs"):
        for e in getattr(fs, section):
            out.append(Enforcement(f"filesystem.{section}[{e.path}]", "apparmor", "file rule"))
    out.append(Enforcement(f"filesystem.root[{fs.root}]", "apparmor", "/** file rule"))
    for sock in policy.network.allow:
        key = sock.family + (f":{sock.type}" if sock.type else "")
        out.append(Enforcement(f"network.allow[{key}]", "apparmor", "network rule"))
    kept = ",".join(c.removeprefix("CAP_") for c in ordered(policy.capabilities.kept))
    out.append(Enforcement(f"capabilities.kept[{kept}]", "apparmor", "capability rules"))
    return out


def profile_filename(policy: Policy) -> str:
    return f"{policy.name}.apparmor"


def compile(policy: Policy, host: HostFacts) -> Artifacts:  # noqa: A001 - the Backend name
    text = render_profile(policy, host)
    notes = [f"load with: apparmor_parser -r {profile_filename(policy)}"]
    if policy.lsm.apparmor is None:
        # a note, not a warning: the profile carries the policy (compile --strict passes)
        notes.append("the policy has no lsm.apparmor section; generated in enforce mode")
    return Artifacts(
        target="apparmor",
        files=(Artifact(profile_filename(policy), text=text,
                        description=f"AppArmor profile '{policy.name}'"),),
        enforcements=tuple(enforcements(policy, host)),
        notes=tuple(notes),
    )
