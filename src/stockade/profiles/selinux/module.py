"""Policy → CIL module (udica's shape: a domain type from a container base, plus allow
rules for the policy's paths, ports, sockets and capabilities)."""

from __future__ import annotations

from stockade.errors import Location, PolicyError
from stockade.linux.hostfacts import HostFacts
from stockade.policy.model import Policy
from stockade.profiles.capabilities import CAP_NUMBERS, ordered
from stockade.profiles.selinux import cil
from stockade.profiles.selinux.shipped import BASES, template_text

_FILE_RW = ("read", "write", "append", "create", "unlink", "rename", "link", "getattr",
            "setattr", "open", "map", "lock", "ioctl")
_DIR_RW = ("read", "write", "add_name", "remove_name", "search", "getattr", "setattr", "open",
           "create", "rmdir", "rename", "reparent")
_FILE_RO = ("read", "getattr", "open", "map", "lock", "ioctl")
_DIR_RO = ("read", "search", "getattr", "open")
_FILE_EXEC = ("read", "getattr", "open", "map", "execute", "execute_no_trans", "entrypoint")
_DENIED = ("read", "write", "append", "open", "execute", "map", "create", "unlink", "rename", "link")
_SOCKET = ("create", "read", "write", "getattr", "setattr", "connect", "bind", "listen",
           "accept", "getopt", "setopt", "shutdown", "append", "recvfrom", "sendto", "lock", "ioctl")

_SOCKET_CLASSES: dict[tuple[str, str | None], tuple[str, ...]] = {
    ("unix", None): ("unix_stream_socket", "unix_dgram_socket"),
    ("inet", None): ("tcp_socket", "udp_socket"),
    ("inet6", None): ("tcp_socket", "udp_socket"),
    ("inet", "tcp"): ("tcp_socket",),
    ("inet6", "tcp"): ("tcp_socket",),
    ("inet", "udp"): ("udp_socket",),
    ("inet6", "udp"): ("udp_socket",),
    ("inet", "raw"): ("rawip_socket",),
    ("inet6", "raw"): ("rawip_socket",),
    ("netlink", None): ("netlink_socket",),
    ("packet", None): ("packet_socket",),
}


def type_name(policy: Policy) -> str:
    """The domain type, checked as an identifier ending in `_t` (loader hook)."""
    name = policy.selinux_type
    if not cil._IDENT.match(name) or not name.endswith("_t"):
        raise PolicyError(
            Location(policy.sources[-1] if policy.sources else "<policy>", key_path="lsm.selinux.type"),
            "not a valid SELinux type name",
            found=repr(name),
            expected="an identifier [A-Za-z][A-Za-z0-9_]* ending in _t, e.g. web_api_t",
        )
    return name


def validate_selinux(policy: Policy) -> None:
    """Loader hook: the type name, the base, and no clash with the template's names."""
    dom = type_name(policy)
    base = policy.lsm.selinux.base if policy.lsm.selinux is not None else "container"
    if base not in BASES:
        raise PolicyError(
            Location(policy.sources[-1] if policy.sources else "<policy>", key_path="lsm.selinux.base"),
            "unknown SELinux base", found=repr(base), expected=" | ".join(sorted(BASES)),
        )
    # The module is installed next to the template (same directory, same semodule call):
    # a module named like the template would overwrite its file and replace it in the
    # store, and a type the template declares would be declared twice.
    stem = dom[:-2]
    clashes = [f"module {module_name(dom)} is the template module's name"
               for template in BASES.values() if module_name(dom) == template]
    for template in BASES.values():
        declared = _template_names(template)
        clashes += [f"type {t} is declared by {template}"
                    for t in (dom, *(f"{stem}_{suffix}_t" for suffix in _DERIVED_TYPES)) if t in declared]
    if clashes:
        raise PolicyError(
            Location(policy.sources[-1] if policy.sources else "<policy>", key_path="lsm.selinux.type"),
            "SELinux type name clashes with stockade's template", found=f"{dom} ({clashes[0]})",
            expected="another name", suggestion=f"set lsm.selinux.type, e.g. {stem}_app_t")


# the types build_module derives from the domain's stem: {stem}_{suffix}_t
_DERIVED_TYPES = ("rw_file", "ro_file", "exec_file", "deny_file", "port")


def module_name(dom: str) -> str:
    # stockade_<stem>: `semodule -i` replaces a module of the same name, and a policy
    # called e.g. "nginx" must never replace the distribution's.
    return f"stockade_{dom[:-2]}"


def _template_names(template: str) -> frozenset[str]:
    """The types, attributes and macros the template module declares."""
    import re

    text = template_text(next(b for b, t in BASES.items() if t == template))
    return frozenset(re.findall(r"^\s*\((?:type|typeattribute|macro)\s+([A-Za-z0-9_]+)", text, re.M))


def build_module(policy: Policy, host: HostFacts) -> cil.Module:
    validate_selinux(policy)
    dom = type_name(policy)
    stem = dom[:-2]
    fs = policy.filesystem
    st: list[cil.Statement] = []

    def section(text: str) -> None:
        st.append(cil.Comment(""))
        st.append(cil.Comment(text))

    section(f"domain {dom}: derived from the container base")
    st.append(cil.TypeDecl(dom))
    st.append(cil.Call("container_domain", (dom,)))
    st.append(cil.Call("container_root_rw" if fs.root == "writable" else "container_root_ro", (dom,)))
    if not fs.exec:
        st.append(cil.Call("container_root_exec", (dom,)))

    def file_type(suffix: str, paths: list[str], why: str) -> str:
        t = f"{stem}_{suffix}_t"  # one of _DERIVED_TYPES
        section(f"{why}: {' '.join(dict.fromkeys(paths))} (the runtime labels these mounts {t})")
        st.append(cil.TypeDecl(t))
        st.append(cil.Call("file_type", (t,)))
        return t

    rw = [e.path for e in (*fs.writable, *fs.tmpfs)]
    if rw:
        t = file_type("rw_file", rw, "writable paths")
        st.append(cil.allow(dom, t, "file", _FILE_RW))
        st.append(cil.allow(dom, t, "dir", _DIR_RW))
    if fs.read_only:
        t = file_type("ro_file", [e.path for e in fs.read_only], "read-only paths")
        st.append(cil.allow(dom, t, "file", _FILE_RO))
        st.append(cil.allow(dom, t, "dir", _DIR_RO))
    if fs.exec:
        t = file_type("exec_file", [e.path for e in fs.exec], "executables")
        st.append(cil.allow(dom, t, "file", _FILE_EXEC))
    if fs.deny:
        t = file_type("deny_file", [e.path for e in fs.deny], "denied paths")
        # neverallow: secilc refuses the whole policy if anything grants access to these.
        st.append(cil.neverallow(dom, t, "file", _DENIED))
        st.append(cil.neverallow(dom, t, "dir", ("read", "write", "add_name", "remove_name", "search", "open")))

    classes: set[str] = set()
    for sock in policy.network.allow:
        key = (sock.family.lower(), sock.type)
        found = _SOCKET_CLASSES.get(key) or _SOCKET_CLASSES.get((key[0], None))
        if found is None:
            raise PolicyError(policy.network.allow_origin or Location("<policy>", key_path="network.allow"),
                              "socket family SELinux module cannot express", found=repr(sock.family))
        classes.update(found)
    if classes:
        section("sockets from network.allow")
        for cls in sorted(classes):
            st.append(cil.allow(dom, "self", cls, _SOCKET))
    if policy.network.bind:
        port_t = f"{stem}_port_t"
        section(f"ports from network.bind: {' '.join(map(str, policy.network.bind))}")
        st.append(cil.TypeDecl(port_t))
        st.append(cil.RoleType("object_r", port_t))
        for port in sorted(set(policy.network.bind)):
            st.append(cil.PortCon("tcp", port, cil.Context("system_u", "object_r", port_t)))
        st.append(cil.allow(dom, port_t, "tcp_socket", ("name_bind",)))
        st.append(cil.allow(dom, "node_t", "tcp_socket", ("node_bind",)))

    caps = ordered(policy.capabilities.kept, host)
    cap1 = [c.removeprefix("CAP_").lower() for c in caps if CAP_NUMBERS[c] < 32]
    cap2 = [c.removeprefix("CAP_").lower() for c in caps if CAP_NUMBERS[c] >= 32]
    section("capabilities kept by the policy")
    if cap1:
        st.append(cil.allow(dom, "self", "capability", cap1))
    if cap2:
        st.append(cil.allow(dom, "self", "capability2", cap2))
    if not caps:
        st.append(cil.Comment("(none)"))

    return cil.Module(
        name=module_name(dom),
        header=(f"SELinux CIL module generated by stockade from policy '{policy.name}'.",
                f"Needs the {BASES['container']} template module (shipped with stockade).",
                f"Install: semodule -i {BASES['container']}.cil {module_name(dom)}.cil"),
        statements=tuple(st),
    )
