"""stockade demo: the README's main job on the built-in default policy.

1. compile the `default` preset to every target, 2. run a host command under it and show
what the sandbox sees plus the usage report, 3. audit the sandbox from inside
(`stockade audit --self` running under the same policy) and print the findings.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

SHOW_SANDBOX = r"""
echo "  identity:   $(id)"
echo "  hostname:   $(hostname)"
grep -E '^(CapEff|CapBnd|CapPrm|NoNewPrivs|Seccomp):' /proc/self/status | sed 's/^/  /'
echo "  uid_map:    $(cat /proc/self/uid_map | tr -s ' ')"
echo "  namespaces (differ from the host's: $HOST_NS):"
for ns in user pid mnt net ipc uts cgroup; do echo "    $ns -> $(readlink /proc/self/ns/$ns)"; done
echo "  pid 1:      $(cat /proc/1/comm)   (the payload is not PID 1)"
echo "  open files: $(ulimit -n)"
echo "  network:    $(ls /sys/class/net | tr '\n' ' ')"
touch /etc/stockade-demo 2>/dev/null && echo "  / is WRITABLE" || echo "  / is read-only (touch /etc/... refused)"
"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="stockade-demo-out", help="where compiled artifacts go")
    parser.add_argument("--policy", default="default", help="policy file or preset (default: default)")


def _section(title: str) -> None:
    print(f"\n== {title} " + "=" * max(0, 70 - len(title)), flush=True)


def main(args: argparse.Namespace) -> int:
    from stockade.api import run
    from stockade.linux.hostfacts import HostFacts
    from stockade.policy.loader import load_policy
    from stockade.profiles.base import write_artifacts
    from stockade.profiles.registry import available_targets, target

    policy = load_policy(args.policy)
    host = HostFacts.detect()
    _section(f"1. compile '{policy.name}' to every target -> {args.out}/")
    for name in available_targets():
        arts = target(name).compile(policy, host)
        written = write_artifacts(arts, os.path.join(args.out, name))
        for path, art in zip(written, arts.files, strict=True):
            print(f"  {path:<62} {art.description}")
        for w in arts.warnings[:3]:
            print(f"    note: {w}")
        if len(arts.warnings) > 3:
            print(f"    note: ... {len(arts.warnings) - 3} more (stockade compile shows them all)")

    _section(f"2. run a host command under '{policy.name}'")
    host_ns = " ".join(os.readlink(f"/proc/self/ns/{n}").split(":")[1] for n in ("pid", "net"))
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOST_NS": f"host pid/net {host_ns}"}
    sys.stdout.flush()
    result = run(["/bin/sh", "-c", SHOW_SANDBOX], policy=policy, env=env)
    print("  usage report:", json.dumps(result.to_json()))

    _section(f"3. audit a sandbox running under '{policy.name}', from the host")
    sys.stdout.flush()
    try:
        import stockade.audit.engine  # noqa: F401
    except ImportError:
        print("  the audit is not part of this build")
        return result.exit_code
    return _audit_running_sandbox(args.policy) if result.exit_code == 0 else result.exit_code


def _audit_running_sandbox(policy_ref: str) -> int:
    """Start `sleep` under the policy with the real CLI, audit its PID, stop it."""
    import signal
    import time

    from stockade.cli import main as cli_main

    marker = "86399.5"  # a sleep nobody else runs: how we find the payload's host PID
    sandbox = subprocess.Popen([sys.executable, "-m", "stockade", "run", "--policy", policy_ref, "--",
                                "/bin/sleep", marker], stdin=subprocess.DEVNULL)
    try:
        pid = _wait_for_payload(["/bin/sleep", marker], sandbox, deadline=time.monotonic() + 10)
        print(f"  sandbox payload: host pid {pid}\n", flush=True)
        status = cli_main(["audit", "--pid", str(pid), "--format", "table", "--fail-on", "critical"])
        print(f"\n  audit exit status: {status} (0: nothing critical found; 1: something was)")
        return 0 if status in (0, 1) else status
    finally:
        sandbox.send_signal(signal.SIGTERM)
        try:
            sandbox.wait(timeout=10)
        except subprocess.TimeoutExpired:
            sandbox.kill()
            sandbox.wait()


def _wait_for_payload(argv: list[str], sandbox: subprocess.Popen[bytes], deadline: float) -> int:
    import time

    wanted = ("\0".join(argv) + "\0").encode()
    while time.monotonic() < deadline:
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as fh:
                    if fh.read() == wanted:
                        return int(entry)
            except OSError:
                continue
        if sandbox.poll() is not None:
            break
        time.sleep(0.05)
    from stockade.errors import StockadeError

    raise StockadeError("demo: the sandboxed payload did not start", exit_code=1)
