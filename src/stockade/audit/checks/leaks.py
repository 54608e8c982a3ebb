"""Things handed into the container by mistake: fds, tokens, secrets in the environment."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Mapping
from functools import partial

from stockade.audit import probes_lib
from stockade.audit.model import Severity, Status, Verdict, absent
from stockade.audit.probe import Probe
from stockade.audit.registry import Proofs, check
from stockade.audit.view import View


def _fd_probes(view: View) -> Mapping[str, Probe]:
    """Open the target's directory fds and cwd here (in the auditor), test them in the child.

    From the host the target is /proc/PID; from inside, the container's PID 1 (runc's
    --preserve-fds hands fds to it) and ourselves.
    """
    bases = [f"/proc/{view.pid}"] if view.mode == "host" else ["/proc/1", "/proc/self"]
    probes: dict[str, Probe] = {}
    for base in bases:
        names = ["cwd"]
        with contextlib.suppress(OSError):
            names += [f"fd/{n}" for n in os.listdir(base + "/fd")]
        for name in names:
            try:
                fd = os.open(f"{base}/{name}", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError:
                continue  # not a directory (or gone): only directory fds can escape
            label = f"{'pid1' if base == '/proc/1' else 'self' if base == '/proc/self' else 'target'}:{name}"
            if view.mode == "self" and base == "/proc/self" and name.startswith("fd/"):
                os.close(fd)
                continue  # our own fds are the auditor's, not the container's
            probes[label] = Probe(partial(probes_lib.fd_escapes, f"/proc/self/fd/{fd}"),
                                  owned_fds=(fd,))
    return probes


@check("RUNC-LEAKED-FD", "a directory fd or cwd outside the container root", Severity.CRITICAL,
       remediation="runner closes inherited fds (no policy key); upgrade runc (CVE-2024-21626)",
       references=("CVE-2024-21626", "CWE-403"), probes=_fd_probes)
def runc_leaked_fd(view: View, proofs: Proofs) -> Verdict:
    """A directory fd (or the cwd) that leads outside the container's root gives the host
    filesystem through `openat(fd, "../../..")`. Proof: fstat and walk '..' from the fd until
    the root is met (inside) or a filesystem root that is not ours (escape)."""
    if proofs.error:
        return Verdict(Status.ERROR, (proofs.error,))
    escaped = [k for k, o in proofs.outcomes.items() if o.ok]
    if not escaped:
        return absent(f"{len(proofs.outcomes)} directory fds/cwd checked, all inside the root")
    return Verdict(Status.EXPLOITABLE, tuple(f"{k}: {proofs.outcomes[k].detail}" for k in escaped),
                   "; ".join(proofs.line(k) for k in escaped))


TOKEN_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def _token_probes(view: View) -> Mapping[str, Probe]:
    return {"token": Probe(lambda: probes_lib.attempt(lambda: f"{os.stat(TOKEN_DIR + '/token').st_size} bytes"))}


@check("K8S-SA-TOKEN", "a Kubernetes service-account token is mounted", Severity.HIGH,
       remediation="filesystem.deny: [/var/run/secrets/kubernetes.io] (automountServiceAccountToken: false)",
       references=("CWE-522",), probes=_token_probes)
def k8s_sa_token(view: View, proofs: Proofs) -> Verdict:
    """The token authenticates to the API server as the pod's service account. Only its
    presence and size are reported, never its value."""
    mounted = [m.line() for m in view.mounts if "kubernetes.io/serviceaccount" in m.mountpoint]
    if proofs.ok("token") or mounted:
        return Verdict(Status.PRESENT, (*mounted, f"{TOKEN_DIR}/token: {proofs.line('token')}"),
                       fix=(("filesystem.deny", ["/var/run/secrets/kubernetes.io"]),))
    return absent(proofs.line("token"))


SECRET_NAME = re.compile(r"(PASSW|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|CREDENTIAL|ACCESS_?KEY|AUTH)", re.I)


@check("SECRETS-ENV", "credentials in the environment", Severity.INFO,
       remediation="pass secrets as files (filesystem.read_only mounts), not environment variables",
       references=("CWE-526",))
def secrets_env(view: View, proofs: Proofs) -> Verdict:
    """Environment variables of PID 1 whose names look like credentials (names only; values
    are never read into the report)."""
    names = sorted(n for n in view.environ_names if SECRET_NAME.search(n))
    if not names:
        return absent(f"{len(view.environ_names)} variables, none named like a credential")
    return Verdict(Status.PRESENT, ("names: " + ", ".join(names),))


CHECKS = (runc_leaked_fd, k8s_sa_token, secrets_env)
