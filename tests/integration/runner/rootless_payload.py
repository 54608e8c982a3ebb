"""Runs as an unprivileged user (nobody): stockade.run under `default` minus resources.

Prints one JSON object: what the payload saw, and the runner's error for a policy with
resources (no cgroup delegation for unprivileged users on this host).
"""

import dataclasses
import json
import os
import sys
import tempfile

import stockade
from stockade.errors import RunnerError
from stockade.policy.loader import load_policy
from stockade.policy.model import Resources

ENV = {"PATH": "/usr/bin:/bin"}
policy = dataclasses.replace(load_policy("default"), resources=Resources(),
                             digest="rootless-test")
rootfs = sys.argv[1] if len(sys.argv) > 1 else None
out: dict[str, object] = {"euid": os.geteuid()}
with tempfile.TemporaryFile() as tmp:
    saved = os.dup(1)
    os.dup2(tmp.fileno(), 1)
    try:
        res = stockade.run(["/bin/sh", "-c", "cat /proc/self/status /proc/self/uid_map "
                            "/proc/self/setgroups; readlink /proc/self/ns/user; echo PID=$$"],
                           policy=policy, env=ENV)
    finally:
        os.dup2(saved, 1)
    tmp.seek(0)
    out["text"] = tmp.read().decode()
out["exit_code"] = res.exit_code
out["host_userns"] = os.readlink("/proc/self/ns/user")
try:
    stockade.run(["/bin/true"], policy=dataclasses.replace(policy, resources=Resources(pids=10),
                                                           digest="rootless-test-2"), env=ENV)
    out["with_resources"] = "ran"
except RunnerError as exc:
    out["with_resources"] = [exc.step, exc.exit_code]
with tempfile.TemporaryFile() as tmp:
    saved = os.dup(1)
    os.dup2(tmp.fileno(), 1)
    try:
        here = os.path.dirname(os.path.abspath(__file__))
        with open(os.path.join(here, "escape_payload.py")) as src:  # -c: the checkout may be under /tmp
            payload = src.read()
        stockade.run(["/usr/bin/python3", "-c", payload,
                      os.path.realpath(sys.executable)], policy=policy, env=ENV)
    finally:
        os.dup2(saved, 1)
    tmp.seek(0)
    out["escapes"] = json.loads(tmp.read().decode().strip().splitlines()[-1])
if rootfs:
    r = stockade.run(["/bin/sh", "-c", "test -f /bin/busybox"], policy=policy, env=ENV,
                     rootfs=rootfs)
    out["rootfs_exit"] = r.exit_code
print(json.dumps(out))
