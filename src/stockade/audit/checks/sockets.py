"""Runtime sockets and network APIs reachable from the container."""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import partial

from stockade.audit import probes_lib
from stockade.audit.checks._ns import host_ns
from stockade.audit.model import Severity, Status, Verdict, absent, na
from stockade.audit.probe import Outcome, Probe
from stockade.audit.registry import ProbePlan, Proofs, check
from stockade.audit.view import View

RUNTIME_SOCKETS = ("docker.sock", "containerd.sock", "crio.sock", "podman.sock", "buildkitd.sock",
                   "kubelet.sock", "dockershim.sock", "cri-dockerd.sock")
HTTP_APIS = ("docker.sock", "podman.sock")


def _sockets(view: View) -> list[str]:
    found = []
    for m in view.mounts:
        base = os.path.basename(m.mountpoint)
        if base in RUNTIME_SOCKETS or os.path.basename(m.root) in RUNTIME_SOCKETS:
            found.append(m.mountpoint)
    return found


def _sock_probes(view: View) -> Mapping[str, Probe]:
    return {path: Probe(partial(probes_lib.connect_unix, path,
                                       os.path.basename(path) in HTTP_APIS or "docker" in path))
            for path in _sockets(view)}


@check("SOCK-RUNTIME", "a container runtime socket is mounted in", Severity.CRITICAL,
       remediation="filesystem.deny: [the socket path] (and remove the bind mount)",
       references=("CIS Docker 5.31", "CWE-668"), probes=_sock_probes)
def sock_runtime(view: View, proofs: Proofs) -> Verdict:
    """A runtime API lets the container start a privileged sibling: a read-only bind does not
    help (connect() needs no write permission on the mount). Proof: connect, and for
    Docker-compatible APIs one GET /_ping."""
    paths = _sockets(view)
    if not paths:
        return absent("no runtime socket in the mount table")
    ev = tuple(m.line() for m in view.mounts if m.mountpoint in paths)
    proved = any(proofs.ok(p) for p in paths)
    return Verdict(Status.EXPLOITABLE if proved else Status.PRESENT, ev,
                   "; ".join(proofs.line(p) for p in paths), fix=(("filesystem.deny", paths),))


def _shim_probes(view: View) -> Mapping[str, Probe]:
    return {"unix": Probe(_abstract_shims)}


def _abstract_shims() -> Outcome:
    def go() -> str:
        with open("/proc/net/unix") as fh:
            names = sorted({line.split()[-1] for line in fh if "@/containerd-shim/" in line})
        if not names:
            raise FileNotFoundError(2, "no abstract containerd-shim sockets")
        return f"{len(names)} abstract shim sockets, e.g. {names[0]}"
    return probes_lib.attempt(go)


@check("SOCK-SHIM-ABSTRACT", "containerd-shim abstract sockets reachable (host network)",
       Severity.CRITICAL, remediation="network.mode: none (own network namespace)",
       references=("CVE-2020-15257",), probes=_shim_probes)
def sock_shim_abstract(view: View, proofs: Proofs) -> Verdict:
    """Abstract unix sockets belong to the network namespace: with the host's, containerd-shim
    APIs are reachable (CVE-2020-15257). Listed only, never connected."""
    is_host, ev = host_ns(view, "net")
    if not is_host:
        return absent(ev)
    if proofs.ok("unix"):
        return Verdict(Status.PRESENT, (ev, proofs.line("unix")), fix=(("network.mode", "none"),))
    return absent(ev, proofs.line("unix"))


def _gateway() -> str | None:
    try:
        with open("/proc/net/route") as fh:
            for line in fh.readlines()[1:]:
                f = line.split()
                if f[1] == "00000000" and f[2] != "00000000":
                    g = int(f[2], 16)
                    return ".".join(str(g >> s & 0xFF) for s in (0, 8, 16, 24))
    except OSError:
        return None
    return None


def _tcp_probe(ports: tuple[int, ...], path: str, hosts: tuple[str, ...] = ("127.0.0.1",)) -> Outcome:
    gw = _gateway()
    results = []
    for host in (*hosts, *((gw,) if gw else ())):
        for port in ports:
            o = probes_lib.connect_tcp(host, port, f"GET {path} HTTP/1.0\r\n\r\n".encode())
            if o.ok:
                return o
            results.append(f"{host}:{port} {o.errname or 'timeout'}")
    return Outcome(False, None, "; ".join(results))


def _active(fn_ports: tuple[int, ...], path: str, hosts: tuple[str, ...] = ("127.0.0.1",)) -> ProbePlan:
    def plan(view: View) -> Mapping[str, Probe]:
        if not view.active:
            return {}
        return {"tcp": Probe(lambda: _tcp_probe(fn_ports, path, hosts))}
    return plan


def _active_verdict(view: View, proofs: Proofs, fix: tuple[tuple[str, object], ...]) -> Verdict:
    if not view.active:
        return na("network probe: opt in with --active")
    o = proofs.get("tcp")
    if o is None:
        return Verdict(Status.ERROR, (proofs.line("tcp"),))
    if not o.ok:
        return absent(proofs.line("tcp"))
    # something answers; a 200 to the harmless request proves the API is open to us
    status = Status.EXPLOITABLE if " 200" in o.detail else Status.PRESENT
    return Verdict(status, (proofs.line("tcp"),), proofs.line("tcp"), fix=fix)


@check("API-DOCKER-TCP", "Docker API on TCP reachable", Severity.CRITICAL,
       remediation="network.mode: none; bind dockerd to a unix socket only",
       references=("CIS Docker 2.6", "CWE-306"), probes=_active((2375, 2376), "/_ping"),
       active=True)
def api_docker_tcp(view: View, proofs: Proofs) -> Verdict:
    """An unauthenticated Docker API on 2375/2376 (loopback or the default gateway)."""
    return _active_verdict(view, proofs, (("network.mode", "none"),))


@check("CLOUD-IMDS", "cloud metadata endpoint reachable", Severity.HIGH,
       remediation="network.mode: none (or block 169.254.169.254 in the network policy)",
       references=("CWE-918",), probes=_active((80,), "/", ("169.254.169.254",)), active=True)
def cloud_imds(view: View, proofs: Proofs) -> Verdict:
    """Instance credentials from the metadata service (one TCP connect, 1 s timeout)."""
    return _active_verdict(view, proofs, (("network.mode", "none"),))


@check("K8S-KUBELET-API", "kubelet API reachable", Severity.CRITICAL,
       remediation="network.mode: none (or a NetworkPolicy denying node ports)",
       references=("CWE-306",), probes=_active((10250, 10255), "/healthz"), active=True)
def k8s_kubelet_api(view: View, proofs: Proofs) -> Verdict:
    """Kubelet's API on 10250 (authn may be off) or the read-only 10255 (one GET /healthz)."""
    return _active_verdict(view, proofs, (("network.mode", "none"),))


CHECKS = (sock_runtime, sock_shim_abstract, api_docker_tcp, cloud_imds, k8s_kubelet_api)
