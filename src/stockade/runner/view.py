"""The default view: what a sandbox without --rootfs/--image sees of the host (a jail).

The root is a fresh tmpfs, read-only once built, holding only the system: the host's
/usr (and /bin, /sbin, /lib* as the host has them: symlinks on a merged-/usr host,
read-only binds otherwise), an /etc made of an allow-list of the host's configuration
files (bound read-only one by one, so /etc/shadow, ssh host keys or a service's
credentials never appear), a generated /etc/hosts and /etc/hostname, then the runner's
fresh /proc, minimal /dev, /sys (with a net namespace, unless denied) and tmpfs /tmp and
/run. Nothing else of the host (/home, /root, /var/lib/docker, other mounts) is there
unless the policy (`filesystem.expose`, `filesystem.writable`) or `--bind` names it.

`--rootfs /` still asks for the old host-root view on purpose (read-only host tree).
Everything here is decided in the parent from host facts (which entries exist, which are
symlinks); the child only follows the MountOps.
"""

from __future__ import annotations

import fnmatch
import os

from stockade.runner.plan import MountOp

# Top-level system directories: a symlink on the host (merged /usr) is recreated as the
# same symlink in the jail; a directory is bound read-only.
SYSTEM_DIRS: tuple[str, ...] = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# The /etc entries a program needs to start, resolve names, find its libraries and
# certificates, and tell who is who; none holds a secret. Missing ones are skipped.
ETC_VIEW: tuple[str, ...] = (
    "passwd", "group", "nsswitch.conf", "host.conf", "gai.conf", "resolv.conf", "services",
    "protocols", "networks", "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime",
    "timezone", "os-release", "debian_version", "alpine-release", "redhat-release",
    "alternatives", "ssl", "pki", "ca-certificates", "ca-certificates.conf",
    "crypto-policies", "mime.types", "magic", "magic.mime", "environment", "shells",
    "profile", "bash.bashrc", "inputrc", "locale.alias", "locale.conf", "terminfo",
    "gitconfig", "python3", "python3.*", "perl", "login.defs",
)
# Never shown, even when the directory holding them is (an exposed /etc, /etc/ssl of the
# allow-list, a writable path): password hashes, private keys, the credentials of the
# host's own services. Masked (an empty read-only tmpfs or /dev/null) when present.
SECRETS: tuple[str, ...] = (
    "/etc/shadow", "/etc/shadow-", "/etc/gshadow", "/etc/gshadow-", "/etc/security/opasswd",
    "/etc/sudoers", "/etc/sudoers.d", "/etc/ssl/private", "/etc/pki/tls/private",
    "/etc/ssh/ssh_host_*key", "/etc/krb5.keytab", "/etc/docker", "/etc/kubernetes",
    "/etc/containerd", "/etc/wireguard", "/etc/letsencrypt", "/etc/credstore",
    "/etc/credstore.encrypted", "/etc/NetworkManager/system-connections",
    "/etc/mysql/debian.cnf", "/etc/machine-id",
)
# The host's own hosts file names the host; the jail gets its own, like Docker's.
_HOSTS = ("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")


def _under(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


def system_ops(hostname: str | None, host: str = "/") -> list[MountOp]:
    """The read-only system part of the jail (after its root tmpfs, before /proc)."""
    ops: list[MountOp] = []
    for top in SYSTEM_DIRS:
        src = os.path.join(host, top.lstrip("/"))
        if os.path.islink(src):
            ops.append(MountOp("symlink", top, os.readlink(src), why="as on the host"))
        elif os.path.isdir(src):
            ops.append(MountOp("bind", top, top, readonly=True, why="system, read-only"))
    etc = os.path.join(host, "etc")
    try:
        present = sorted(os.listdir(etc))  # one directory read, not a glob per entry
    except OSError:
        present = []
    for pattern in ETC_VIEW:
        for name in fnmatch.filter(present, pattern) if "*" in pattern else (
                [pattern] if pattern in present else []):
            if os.path.exists(os.path.join(etc, name)):  # a dangling symlink shows nothing
                dst = "/etc/" + name
                ops.append(MountOp("bind", dst, dst, readonly=True, why="/etc allow-list"))
    names = f"127.0.1.1\t{hostname}\n" if hostname else ""
    ops.append(MountOp("file", "/etc/hosts", data=(("content", _HOSTS + names),),
                       why="generated"))
    if hostname:
        ops.append(MountOp("file", "/etc/hostname", data=(("content", hostname + "\n"),),
                           why="generated"))
    return ops


def secret_masks(shown: list[str], host: str = "/") -> list[MountOp]:
    """Masks for every secret that lies under a shown host path (SECRETS expanded)."""
    ops: list[MountOp] = []
    for pattern in SECRETS:
        if not any(_under(pattern, s) or _under(s, pattern) for s in shown):
            continue  # nothing shown there: no need to look
        full = os.path.join(host, pattern.lstrip("/"))
        if "*" in pattern:
            import glob  # rare (an exposed /etc/ssh); at the top it would load on every run

            found = sorted(glob.glob(full))
        else:
            found = [full] if os.path.lexists(full) else []
        for path in found:
            dst = "/" + os.path.relpath(path, host)
            if any(_under(dst, s) for s in shown):
                ops.append(MountOp("mask", dst, why="secret", optional=True))
    return ops
