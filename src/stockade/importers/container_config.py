"""OCI runtime config.json / `docker inspect` JSON -> a policy: what the container is
allowed today (capabilities, seccomp, mounts, namespaces, limits), the starting point for
tightening it with `stockade learn` and `stockade diff --check`.

Where the container's setting has no exact word in the policy language the import says
so in a warning and picks the nearer reading: bridge networking becomes `loopback`
(the policy cannot name an outside network), a namespace joined by path is left out.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from stockade.errors import Location, PolicyError
from stockade.importers.docker_seccomp import U64, Imported, import_profile
from stockade.importers.json_input import JsonShape, check_shape, read_json
from stockade.policy.source import KeyPath, format_path
from stockade.policy.vocab.capabilities import DOCKER_DEFAULT_CAPS, canonical_cap

_OCI_NS = {"pid": "pid", "network": "net", "mount": "mount", "ipc": "ipc", "uts": "uts",
           "user": "user", "cgroup": "cgroup"}
_RLIMITS = {"nofile", "nproc", "core", "memlock", "stack", "as", "cpu", "data", "fsize",
            "locks", "msgqueue", "nice", "rtprio", "rttime", "sigpending", "rss"}
_UNLIMITED = (1 << 63) - 1

# The part of an OCI runtime config.json the import reads, with the runtime-spec's types;
# ids in the range a policy accepts (4294967295 is the kernel's "no id").
Id = Annotated[int, Field(ge=0, le=4294967294)]
I64 = Annotated[int, Field(ge=-(1 << 63), le=(1 << 63) - 1)]


class OciCapabilities(JsonShape):
    bounding: list[str] | None = None
    permitted: list[str] | None = None
    ambient: list[str] | None = None


class OciUser(JsonShape):
    uid: Id = 0
    gid: Id = 0


class OciRlimit(JsonShape):
    type: str
    hard: U64 | None = None
    soft: U64 | None = None


class OciProcess(JsonShape):
    capabilities: OciCapabilities | None = None
    noNewPrivileges: bool | None = None
    user: OciUser | None = None
    rlimits: list[OciRlimit] | None = None
    apparmorProfile: str | None = None
    selinuxLabel: str | None = None


class OciRoot(JsonShape):
    readonly: bool | None = None


class OciMount(JsonShape):
    destination: str
    type: str | None = None
    options: list[str] | None = None


class OciNamespace(JsonShape):
    type: str
    path: str | None = None


class OciIdMapping(JsonShape):
    containerID: Id
    hostID: Id
    size: Annotated[int, Field(ge=1, le=4294967295)]


class OciLimit(JsonShape):
    limit: I64 | None = None


class OciCpu(JsonShape):
    quota: I64 | None = None
    period: U64 | None = None


class OciResources(JsonShape):
    memory: OciLimit | None = None
    pids: OciLimit | None = None
    cpu: OciCpu | None = None


class OciLinux(JsonShape):
    namespaces: list[OciNamespace] | None = None
    uidMappings: list[OciIdMapping] | None = None
    gidMappings: list[OciIdMapping] | None = None
    resources: OciResources | None = None
    maskedPaths: list[str] | None = None
    readonlyPaths: list[str] | None = None
    seccomp: dict[str, Any] | None = None  # checked by the seccomp importer's own shape


class OciConfig(JsonShape):
    process: OciProcess | None = None
    root: OciRoot | None = None
    mounts: list[OciMount] | None = None
    linux: OciLinux | None = None
    hostname: str | None = None


def _caps(names: list[str]) -> list[str]:
    out = []
    for n in names:
        c = canonical_cap(str(n))
        if c is not None and c not in out:
            out.append(c)
    return sorted(c.removeprefix("CAP_") for c in out)


def _seccomp_doc(profile: Any, file: str, name: str, warnings: list[str],
                 at: KeyPath) -> dict[str, Any]:
    if not profile:
        warnings.append("no seccomp profile: every syscall is allowed today (`default: allow`)")
        return {"default": "allow", "unknown": "allow"}
    imported = import_profile(profile, file=file, name=name, at=at)
    warnings.extend(imported.warnings)
    sc: dict[str, Any] = imported.document["syscalls"]
    return sc


def _rlimit_value(n: int) -> int | str:
    return "unlimited" if n < 0 or n >= _UNLIMITED else n


def _id_map(maps: list[OciIdMapping]) -> list[dict[str, int]]:
    return [{"inside": x.containerID, "outside": x.hostID, "count": x.size} for x in maps]


def import_oci(data: dict[str, Any], file: str, name: str) -> Imported:
    cfg = check_shape(data, OciConfig, file)
    warnings: list[str] = []
    proc = cfg.process or OciProcess()
    linux = cfg.linux or OciLinux()
    caps = proc.capabilities or OciCapabilities()
    doc: dict[str, Any] = {"stockade": 1, "name": name, "description": f"imported from OCI config {file}"}
    doc["syscalls"] = _seccomp_doc(linux.seccomp, file, name, warnings, ("linux", "seccomp"))
    bounding = _caps(caps.bounding or caps.permitted or [])
    doc["capabilities"] = {"drop": ["ALL"], "add": bounding,
                           "ambient": [c for c in _caps(caps.ambient or []) if c in bounding]}
    doc["no_new_privileges"] = bool(proc.noNewPrivileges)
    fs: dict[str, Any] = {"root": "read-only" if cfg.root and cfg.root.readonly else "writable",
                          "read_only": [], "writable": [], "tmpfs": [], "deny": []}
    for mnt in cfg.mounts or []:
        dst, kind, opts = mnt.destination, mnt.type or "", mnt.options or []
        if not dst.startswith("/") or dst in ("/proc", "/dev", "/sys", "/dev/pts", "/dev/shm",
                                              "/dev/mqueue", "/sys/fs/cgroup"):
            continue
        if kind == "tmpfs":
            fs["tmpfs"].append(dst)
        elif kind == "bind" or "bind" in opts or "rbind" in opts:
            fs["read_only" if "ro" in opts else "writable"].append(dst)
    fs["deny"] = sorted(set(linux.maskedPaths or []))
    fs["read_only"] = sorted(set(fs["read_only"]) | set(linux.readonlyPaths or []))
    doc["filesystem"] = fs
    namespaces = []
    for ns in linux.namespaces or []:
        ns_kind = _OCI_NS.get(ns.type)
        if ns_kind is None:
            continue
        if ns.path:
            warnings.append(f"the {ns_kind} namespace is joined from {ns.path}: shared with "
                            "something else, left out")
            continue
        namespaces.append(ns_kind)
    doc["namespaces"] = namespaces
    doc["network"] = {"mode": "none" if "net" in namespaces else "host"}
    user = proc.user or OciUser()
    u: dict[str, Any] = {"uid": user.uid, "gid": user.gid}
    if "user" in namespaces and linux.uidMappings:
        u["uid_map"] = _id_map(linux.uidMappings)
        u["gid_map"] = _id_map(linux.gidMappings or linux.uidMappings)
    elif "user" not in namespaces:
        u["map"] = "host"
    doc["user"] = u
    res = linux.resources or OciResources()
    resources: dict[str, Any] = {}
    if res.memory and (res.memory.limit or 0) > 0:
        resources["memory"] = res.memory.limit
    if res.pids and (res.pids.limit or 0) > 0:
        resources["pids"] = res.pids.limit
    if res.cpu and (res.cpu.quota or 0) > 0 and (res.cpu.period or 0) > 0:
        resources["cpu"] = round((res.cpu.quota or 0) / (res.cpu.period or 1), 3)
    if resources:
        doc["resources"] = resources
    rl = {}
    for r in proc.rlimits or []:
        key = r.type.removeprefix("RLIMIT_").lower()
        if key in _RLIMITS:
            rl[key] = _rlimit_value(r.soft if r.soft is not None else (r.hard or 0))
    if rl:
        doc["rlimits"] = rl
    if cfg.hostname:
        doc["hostname"] = cfg.hostname
    if proc.apparmorProfile:
        warnings.append(f"AppArmor profile {proc.apparmorProfile!r}: stockade generates its own "
                        "profile from this policy; the original is not imported")
    if proc.selinuxLabel:
        warnings.append(f"SELinux label {proc.selinuxLabel!r} is not imported")
    return Imported(doc, tuple(warnings))


class DockerUlimit(JsonShape):
    Name: str
    Soft: I64 | None = None
    Hard: I64 | None = None


class DockerHostConfig(JsonShape):
    SecurityOpt: list[str] | None = None
    Privileged: bool | None = None
    CapDrop: list[str] | None = None
    CapAdd: list[str] | None = None
    ReadonlyRootfs: bool | None = None
    ReadonlyPaths: list[str] | None = None
    MaskedPaths: list[str] | None = None
    Tmpfs: dict[str, str] | None = None
    NetworkMode: str | None = None
    PidMode: str | None = None
    IpcMode: str | None = None
    UTSMode: str | None = None
    CgroupnsMode: str | None = None
    UsernsMode: str | None = None
    Memory: I64 | None = None
    MemorySwap: I64 | None = None
    PidsLimit: I64 | None = None
    NanoCpus: I64 | None = None
    CpuQuota: I64 | None = None
    CpuPeriod: I64 | None = None
    Ulimits: list[DockerUlimit] | None = None


class DockerContainerConfig(JsonShape):
    User: str | None = None
    Hostname: str | None = None


class DockerMount(JsonShape):
    Type: str | None = None
    Destination: str = ""
    RW: bool = True


class DockerInspect(JsonShape):
    """The part of one `docker inspect CONTAINER` object the import reads."""

    Name: str = ""
    Config: DockerContainerConfig | None = None
    HostConfig: DockerHostConfig
    Mounts: list[DockerMount] | None = None


def import_docker_inspect(data: Any, file: str, name: str) -> Imported:
    at: KeyPath = ()
    if isinstance(data, list):
        if not data:
            raise PolicyError(Location(file), "empty `docker inspect` output", expected="one container")
        if len(data) > 1:
            raise PolicyError(Location(file), "several containers in one file",
                              found=f"{len(data)} objects", expected="`docker inspect NAME` of one container")
        data, at = data[0], (0,)
    if not isinstance(data, dict) or "HostConfig" not in data:
        raise PolicyError(Location(file), "not `docker inspect` output", found="no HostConfig",
                          expected="the JSON of `docker inspect CONTAINER`")
    inspect = check_shape(data, DockerInspect, file, at)
    warnings: list[str] = []
    hc = inspect.HostConfig
    cfg = inspect.Config or DockerContainerConfig()
    opts = hc.SecurityOpt or []
    privileged = bool(hc.Privileged)
    doc: dict[str, Any] = {"stockade": 1, "name": name,
                           "description": f"imported from docker inspect {file} ({inspect.Name.lstrip('/')})"}
    seccomp = next((o[len("seccomp="):] for o in opts if o.startswith(("seccomp=", "seccomp:"))), None)
    if privileged or seccomp == "unconfined":
        warnings.append("privileged or seccomp=unconfined: every syscall is allowed today")
        doc["syscalls"] = {"default": "allow", "unknown": "allow"}
    elif seccomp:
        import json

        try:
            profile = json.loads(seccomp)
        except (ValueError, RecursionError):
            raise PolicyError(Location(file), "SecurityOpt seccomp= is neither `unconfined` nor JSON",
                              found=seccomp[:40]) from None
        doc["syscalls"] = _seccomp_doc(profile, file, name, warnings, (*at, "HostConfig", "SecurityOpt"))
    else:
        from stockade.policy.loader import load_policy
        from stockade.policy.render import to_document

        doc["syscalls"] = to_document(load_policy("default"))["syscalls"]  # Docker's default
    if privileged:
        from stockade.policy.vocab.capabilities import known_capabilities

        caps = _caps(list(known_capabilities()))
        warnings.append("--privileged: every capability, every device, no LSM confinement")
    else:
        caps_set = set(_caps(list(DOCKER_DEFAULT_CAPS)))
        drop = {c.upper().removeprefix("CAP_") for c in hc.CapDrop or []}
        caps_set = set() if "ALL" in drop else caps_set - set(_caps(list(drop)))
        add = {c.upper().removeprefix("CAP_") for c in hc.CapAdd or []}
        if "ALL" in add:
            from stockade.policy.vocab.capabilities import known_capabilities

            caps_set |= set(_caps(list(known_capabilities())))
        caps_set |= set(_caps(list(add - {"ALL"})))
        caps = sorted(caps_set)
    doc["capabilities"] = {"drop": ["ALL"], "add": caps}
    doc["no_new_privileges"] = any(o in ("no-new-privileges", "no-new-privileges:true",
                                         "no-new-privileges=true") for o in opts)
    fs: dict[str, Any] = {"root": "read-only" if hc.ReadonlyRootfs else "writable",
                          "read_only": sorted(set(hc.ReadonlyPaths or [])), "writable": [],
                          "tmpfs": sorted((hc.Tmpfs or {}).keys()),
                          "deny": sorted(set(hc.MaskedPaths or []))}
    for mnt in inspect.Mounts or []:
        dst = mnt.Destination
        if not dst.startswith("/"):
            continue
        if mnt.Type == "tmpfs":
            fs["tmpfs"].append(dst)
        else:
            fs["writable" if mnt.RW else "read_only"].append(dst)
    doc["filesystem"] = {k: (sorted(set(v)) if isinstance(v, list) else v) for k, v in fs.items()}
    mode = hc.NetworkMode or "default"
    namespaces = ["mount"]
    if mode == "host":
        net = "host"
    elif mode == "none":
        net = "none"
        namespaces.append("net")
    elif mode.startswith("container:"):
        warnings.append(f"network shared with {mode}: mapped to `host` (no namespace of its own)")
        net = "host"
    else:
        warnings.append(f"network mode {mode!r} (a bridge with outside access) has no exact "
                        "equivalent; imported as `loopback`, which is tighter")
        net = "loopback"
        namespaces.append("net")
    for value, ns in ((hc.PidMode, "pid"), (hc.IpcMode, "ipc"), (hc.UTSMode, "uts"),
                      (hc.CgroupnsMode, "cgroup")):
        if value == "host" or (value or "").startswith("container:"):
            continue
        if ns == "cgroup" and not value:
            continue  # cgroup v1 hosts: no cgroup namespace unless asked
        namespaces.append(ns)
    userns = hc.UsernsMode or ""
    doc["network"] = {"mode": net}
    user = cfg.User or "0"
    uid, _, gid = user.partition(":")
    where = Location(file, key_path=format_path((*at, "Config", "User")))
    u: dict[str, Any] = {"uid": _numeric_id(uid, where), "gid": _numeric_id(gid, where)}
    if not _is_number(uid):
        warnings.append(f"user {uid!r} is a name: resolve it in the image; imported as uid 0")
    if userns in ("", "host"):
        u["map"] = "host"  # Docker's default: no user namespace (root inside is root outside)
    else:
        namespaces.append("user")
    doc["namespaces"] = [n for n in ("user", "pid", "mount", "net", "ipc", "uts", "cgroup") if n in namespaces]
    doc["user"] = u
    resources: dict[str, Any] = {}
    memory = hc.Memory or 0
    if memory > 0:
        resources["memory"] = memory
        swap = hc.MemorySwap or 0
        if swap > 0:
            resources["swap"] = max(0, swap - memory)
    if (hc.PidsLimit or 0) > 0:
        resources["pids"] = hc.PidsLimit
    if (hc.NanoCpus or 0) > 0:
        resources["cpu"] = round((hc.NanoCpus or 0) / 1e9, 3)
    elif (hc.CpuQuota or 0) > 0 and (hc.CpuPeriod or 0) > 0:
        resources["cpu"] = round((hc.CpuQuota or 0) / (hc.CpuPeriod or 1), 3)
    if resources:
        doc["resources"] = resources
    rl = {}
    for r in hc.Ulimits or []:
        key = r.Name.lower()
        if key in _RLIMITS:
            rl[key] = _rlimit_value(r.Soft if r.Soft is not None else (r.Hard or 0))
    if rl:
        doc["rlimits"] = rl
    if cfg.Hostname and "uts" in namespaces:
        doc["hostname"] = cfg.Hostname.lower()[:63]
    for o in opts:
        if o.startswith(("apparmor", "label")):
            warnings.append(f"security option {o!r} is not imported (stockade generates its own "
                            "AppArmor/SELinux profiles from the policy)")
    return Imported(doc, tuple(warnings))


def _is_number(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _numeric_id(text: str, where: Location) -> int:
    """A uid/gid written as digits (0 for a name, which the image resolves)."""
    if not _is_number(text):
        return 0
    if len(text) > 10 or int(text) > 4294967294:
        raise PolicyError(where, "user id out of range", found=text[:20], expected="0..4294967294")
    return int(text)


def import_config(kind: str, file: str, *, name: str = "imported") -> Imported:
    if kind not in ("oci-config", "docker-inspect"):
        raise PolicyError(Location(file), "unknown import kind", found=kind,
                          expected="oci-config or docker-inspect")
    if kind == "oci-config":
        data = read_json(file, "an OCI runtime config.json")
        if not isinstance(data, dict) or "ociVersion" not in data and "process" not in data:
            raise PolicyError(Location(file), "not an OCI runtime config", found="no ociVersion/process",
                              expected="a bundle's config.json")
        return import_oci(data, file, name)
    return import_docker_inspect(read_json(file, "`docker inspect` JSON"), file, name)
