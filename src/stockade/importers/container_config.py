"""OCI runtime config.json / `docker inspect` JSON -> a policy: what the container is
allowed today (capabilities, seccomp, mounts, namespaces, limits), the starting point for
tightening it with `stockade learn` and `stockade diff --check`.

Where the container's setting has no exact word in the policy language the import says
so in a warning and picks the nearer reading: bridge networking becomes `loopback`
(the policy cannot name an outside network), a namespace joined by path is left out.
"""

from __future__ import annotations

import json
from typing import Any

from stockade.errors import Location, PolicyError
from stockade.importers.docker_seccomp import Imported, import_profile
from stockade.policy.vocab.capabilities import DOCKER_DEFAULT_CAPS, canonical_cap

_OCI_NS = {"pid": "pid", "network": "net", "mount": "mount", "ipc": "ipc", "uts": "uts",
           "user": "user", "cgroup": "cgroup"}
_RLIMITS = {"nofile", "nproc", "core", "memlock", "stack", "as", "cpu", "data", "fsize",
            "locks", "msgqueue", "nice", "rtprio", "rttime", "sigpending", "rss"}
_UNLIMITED = (1 << 63) - 1


def _load(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise PolicyError(Location(path), "no such file") from None
    except json.JSONDecodeError as exc:
        raise PolicyError(Location(path, exc.lineno, exc.colno), "malformed JSON", found=exc.msg,
                          expected="an OCI config.json or `docker inspect` output") from None


def _caps(names: list[str]) -> list[str]:
    out = []
    for n in names:
        c = canonical_cap(str(n))
        if c is not None and c not in out:
            out.append(c)
    return sorted(c.removeprefix("CAP_") for c in out)


def _seccomp_doc(profile: dict[str, Any] | None, file: str, name: str,
                 warnings: list[str]) -> dict[str, Any]:
    if not profile:
        warnings.append("no seccomp profile: every syscall is allowed today (`default: allow`)")
        return {"default": "allow", "unknown": "allow"}
    imported = import_profile(profile, file=file, name=name)
    warnings.extend(imported.warnings)
    sc: dict[str, Any] = imported.document["syscalls"]
    return sc


def _rlimit_value(v: Any) -> int | str:
    n = int(v)
    return "unlimited" if n < 0 or n >= _UNLIMITED else n


def import_oci(data: dict[str, Any], file: str, name: str) -> Imported:
    warnings: list[str] = []
    proc = data.get("process") or {}
    linux = data.get("linux") or {}
    caps = proc.get("capabilities") or {}
    doc: dict[str, Any] = {"stockade": 1, "name": name, "description": f"imported from OCI config {file}"}
    doc["syscalls"] = _seccomp_doc(linux.get("seccomp"), file, name, warnings)
    bounding = _caps(caps.get("bounding") or caps.get("permitted") or [])
    doc["capabilities"] = {"drop": ["ALL"], "add": bounding,
                           "ambient": [c for c in _caps(caps.get("ambient") or []) if c in bounding]}
    doc["no_new_privileges"] = bool(proc.get("noNewPrivileges", False))
    fs: dict[str, Any] = {"root": "read-only" if (data.get("root") or {}).get("readonly") else "writable",
                          "read_only": [], "writable": [], "tmpfs": [], "deny": []}
    for mnt in data.get("mounts") or []:
        dst, kind, opts = mnt.get("destination", ""), mnt.get("type", ""), mnt.get("options") or []
        if not dst.startswith("/") or dst in ("/proc", "/dev", "/sys", "/dev/pts", "/dev/shm",
                                              "/dev/mqueue", "/sys/fs/cgroup"):
            continue
        if kind == "tmpfs":
            fs["tmpfs"].append(dst)
        elif kind == "bind" or "bind" in opts or "rbind" in opts:
            fs["read_only" if "ro" in opts else "writable"].append(dst)
    fs["deny"] = sorted(set(linux.get("maskedPaths") or []))
    fs["read_only"] = sorted(set(fs["read_only"]) | set(linux.get("readonlyPaths") or []))
    doc["filesystem"] = fs
    namespaces = []
    for ns in linux.get("namespaces") or []:
        kind = _OCI_NS.get(ns.get("type", ""))
        if kind is None:
            continue
        if ns.get("path"):
            warnings.append(f"the {kind} namespace is joined from {ns['path']}: shared with "
                            "something else, left out")
            continue
        namespaces.append(kind)
    doc["namespaces"] = namespaces
    doc["network"] = {"mode": "none" if "net" in namespaces else "host"}
    user = proc.get("user") or {}
    u: dict[str, Any] = {"uid": int(user.get("uid", 0)), "gid": int(user.get("gid", 0))}
    if "user" in namespaces and linux.get("uidMappings"):
        u["uid_map"] = [{"inside": x["containerID"], "outside": x["hostID"], "count": x["size"]}
                        for x in linux["uidMappings"]]
        u["gid_map"] = [{"inside": x["containerID"], "outside": x["hostID"], "count": x["size"]}
                        for x in linux.get("gidMappings") or linux["uidMappings"]]
    elif "user" not in namespaces:
        u["map"] = "host"
    doc["user"] = u
    res = linux.get("resources") or {}
    resources: dict[str, Any] = {}
    if (res.get("memory") or {}).get("limit", 0) > 0:
        resources["memory"] = int(res["memory"]["limit"])
    if (res.get("pids") or {}).get("limit", 0) > 0:
        resources["pids"] = int(res["pids"]["limit"])
    cpu = res.get("cpu") or {}
    if cpu.get("quota", 0) > 0 and cpu.get("period", 0) > 0:
        resources["cpu"] = round(cpu["quota"] / cpu["period"], 3)
    if resources:
        doc["resources"] = resources
    rl = {}
    for r in proc.get("rlimits") or []:
        key = str(r.get("type", "")).removeprefix("RLIMIT_").lower()
        if key in _RLIMITS:
            rl[key] = _rlimit_value(r.get("soft", r.get("hard", 0)))
    if rl:
        doc["rlimits"] = rl
    if data.get("hostname"):
        doc["hostname"] = str(data["hostname"])
    if proc.get("apparmorProfile"):
        warnings.append(f"AppArmor profile {proc['apparmorProfile']!r}: stockade generates its own "
                        "profile from this policy; the original is not imported")
    if proc.get("selinuxLabel"):
        warnings.append(f"SELinux label {proc['selinuxLabel']!r} is not imported")
    return Imported(doc, tuple(warnings))


def import_docker_inspect(data: Any, file: str, name: str) -> Imported:
    if isinstance(data, list):
        if not data:
            raise PolicyError(Location(file), "empty `docker inspect` output", expected="one container")
        if len(data) > 1:
            raise PolicyError(Location(file), "several containers in one file",
                              found=f"{len(data)} objects", expected="`docker inspect NAME` of one container")
        data = data[0]
    if not isinstance(data, dict) or "HostConfig" not in data:
        raise PolicyError(Location(file), "not `docker inspect` output", found="no HostConfig",
                          expected="the JSON of `docker inspect CONTAINER`")
    warnings: list[str] = []
    hc = data.get("HostConfig") or {}
    cfg = data.get("Config") or {}
    opts = [str(o) for o in hc.get("SecurityOpt") or []]
    privileged = bool(hc.get("Privileged"))
    doc: dict[str, Any] = {"stockade": 1, "name": name,
                           "description": f"imported from docker inspect {file} ({data.get('Name', '').lstrip('/')})"}
    seccomp = next((o.split("=", 1)[1] for o in opts if o.startswith(("seccomp=", "seccomp:"))), None)
    if privileged or seccomp == "unconfined":
        warnings.append("privileged or seccomp=unconfined: every syscall is allowed today")
        doc["syscalls"] = {"default": "allow", "unknown": "allow"}
    elif seccomp:
        try:
            profile = json.loads(seccomp)
        except ValueError:
            raise PolicyError(Location(file), "SecurityOpt seccomp= is neither `unconfined` nor JSON",
                              found=seccomp[:40]) from None
        doc["syscalls"] = _seccomp_doc(profile, file, name, warnings)
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
        drop = {str(c).upper().removeprefix("CAP_") for c in hc.get("CapDrop") or []}
        caps_set = set() if "ALL" in drop else caps_set - set(_caps(list(drop)))
        add = {str(c).upper().removeprefix("CAP_") for c in hc.get("CapAdd") or []}
        if "ALL" in add:
            from stockade.policy.vocab.capabilities import known_capabilities

            caps_set |= set(_caps(list(known_capabilities())))
        caps_set |= set(_caps(list(add - {"ALL"})))
        caps = sorted(caps_set)
    doc["capabilities"] = {"drop": ["ALL"], "add": caps}
    doc["no_new_privileges"] = any(o in ("no-new-privileges", "no-new-privileges:true",
                                         "no-new-privileges=true") for o in opts)
    fs: dict[str, Any] = {"root": "read-only" if hc.get("ReadonlyRootfs") else "writable",
                          "read_only": sorted(set(hc.get("ReadonlyPaths") or [])), "writable": [],
                          "tmpfs": sorted((hc.get("Tmpfs") or {}).keys()),
                          "deny": sorted(set(hc.get("MaskedPaths") or []))}
    for mnt in data.get("Mounts") or []:
        dst = mnt.get("Destination", "")
        if not dst.startswith("/"):
            continue
        if mnt.get("Type") == "tmpfs":
            fs["tmpfs"].append(dst)
        else:
            fs["writable" if mnt.get("RW", True) else "read_only"].append(dst)
    doc["filesystem"] = {k: (sorted(set(v)) if isinstance(v, list) else v) for k, v in fs.items()}
    mode = str(hc.get("NetworkMode") or "default")
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
    for key, ns in (("PidMode", "pid"), ("IpcMode", "ipc"), ("UTSMode", "uts"), ("CgroupnsMode", "cgroup")):
        value = str(hc.get(key) or "")
        if value == "host" or value.startswith("container:"):
            continue
        if ns == "cgroup" and value == "" and not hc.get("CgroupnsMode"):
            continue  # cgroup v1 hosts: no cgroup namespace unless asked
        namespaces.append(ns)
    userns = str(hc.get("UsernsMode") or "")
    doc["network"] = {"mode": net}
    user = str(cfg.get("User") or "0")
    uid, _, gid = user.partition(":")
    u: dict[str, Any] = {"uid": int(uid) if uid.isdigit() else 0, "gid": int(gid) if gid.isdigit() else 0}
    if not uid.isdigit():
        warnings.append(f"user {uid!r} is a name: resolve it in the image; imported as uid 0")
    if userns in ("", "host"):
        u["map"] = "host"  # Docker's default: no user namespace (root inside is root outside)
    else:
        namespaces.append("user")
    doc["namespaces"] = [n for n in ("user", "pid", "mount", "net", "ipc", "uts", "cgroup") if n in namespaces]
    doc["user"] = u
    resources: dict[str, Any] = {}
    if int(hc.get("Memory") or 0) > 0:
        resources["memory"] = int(hc["Memory"])
        swap = int(hc.get("MemorySwap") or 0)
        if swap > 0:
            resources["swap"] = max(0, swap - int(hc["Memory"]))
    if int(hc.get("PidsLimit") or 0) > 0:
        resources["pids"] = int(hc["PidsLimit"])
    if int(hc.get("NanoCpus") or 0) > 0:
        resources["cpu"] = round(int(hc["NanoCpus"]) / 1e9, 3)
    elif int(hc.get("CpuQuota") or 0) > 0 and int(hc.get("CpuPeriod") or 0) > 0:
        resources["cpu"] = round(int(hc["CpuQuota"]) / int(hc["CpuPeriod"]), 3)
    if resources:
        doc["resources"] = resources
    rl = {}
    for r in hc.get("Ulimits") or []:
        key = str(r.get("Name", "")).lower()
        if key in _RLIMITS:
            rl[key] = _rlimit_value(r.get("Soft", r.get("Hard", 0)))
    if rl:
        doc["rlimits"] = rl
    if cfg.get("Hostname") and "uts" in namespaces:
        doc["hostname"] = str(cfg["Hostname"]).lower()[:63]
    for o in opts:
        if o.startswith(("apparmor", "label")):
            warnings.append(f"security option {o!r} is not imported (stockade generates its own "
                            "AppArmor/SELinux profiles from the policy)")
    return Imported(doc, tuple(warnings))


def import_config(kind: str, file: str, *, name: str = "imported") -> Imported:
    data = _load(file)
    if kind == "oci-config":
        if not isinstance(data, dict) or "ociVersion" not in data and "process" not in data:
            raise PolicyError(Location(file), "not an OCI runtime config", found="no ociVersion/process",
                              expected="a bundle's config.json")
        return import_oci(data, file, name)
    if kind == "docker-inspect":
        return import_docker_inspect(data, file, name)
    raise PolicyError(Location(file), "unknown import kind", found=kind,
                      expected="oci-config or docker-inspect")
