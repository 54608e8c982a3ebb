"""libseccomp run in a forked, time-limited child: a compile ends with an answer.

libseccomp 2.5.4 can loop for ever on some sets of overlapping masked comparisons (seen
with 9 rules on one syscall), in C, where no Python signal handler can run. So the
filter is built in a child that dies with its parent and at the time limit, and the
parent waits for its answer no longer than that.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import resource
import select
import signal
import time

from stockade.errors import StockadeError
from stockade.linux import syscalls
from stockade.linux.consts import PR_SET_PDEATHSIG
from stockade.policy import model as m
from stockade.seccomp.build import Refused, export_bpf, libseccomp_filter
from stockade.seccomp.rules import ArchPlan


class TimedOut(StockadeError):
    """libseccomp did not finish within the time limit."""


def build_bounded(plans: list[ArchPlan], default: m.Action) -> tuple[bytes, set[tuple[str, str]]]:
    """Build and export the libseccomp filter in a forked child, within
    STOCKADE_LIBSECCOMP_TIMEOUT seconds (20 unless set; the tests shorten it)."""
    limit = float(os.environ.get("STOCKADE_LIBSECCOMP_TIMEOUT", "20"))
    parent = os.getpid()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: build, export, report, exit without running any cleanup
        status = 0
        try:
            os.close(r)
            _tie_to_parent(parent, limit)
            lossy: set[tuple[str, str]] = set()
            program = export_bpf(libseccomp_filter(plans, default, lossy))
            payload = json.dumps({"lossy": sorted(lossy), "bpf": program.hex()}).encode()
        except Refused as exc:
            payload = json.dumps({"error": str(exc), "refused": exc.syscall}).encode()
        except StockadeError as exc:
            payload = json.dumps({"error": str(exc)}).encode()
        except BaseException as exc:  # noqa: BLE001 - reported to the parent, never unwound
            payload = json.dumps({"error": f"internal error: {exc!r}"}).encode()
            status = 1
        with os.fdopen(w, "wb") as out:
            out.write(payload)
        os._exit(status)
    os.close(w)
    chunks: list[bytes] = []
    deadline = time.monotonic() + limit
    try:
        with os.fdopen(r, "rb", buffering=0) as inp:
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([inp], [], [], left)[0]:
                    os.kill(pid, signal.SIGKILL)
                    names = sorted({x.syscall for p in plans for x in p.rules if x.args})
                    raise TimedOut(
                        f"libseccomp did not finish building the filter within {limit:.0f} s (a libseccomp "
                        f"2.5 defect with overlapping masked comparisons); simplify the argument rules "
                        f"for: {', '.join(names)}")
                chunk = inp.read(1 << 20)
                if not chunk:
                    break
                chunks.append(chunk)
    finally:
        # whatever stopped the wait (an answer, the limit, ^C): no builder outlives it
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    result = json.loads(b"".join(chunks) or b"{}")
    if "refused" in result:
        raise Refused(result["error"], result["refused"])
    if "error" in result or "bpf" not in result:
        raise StockadeError(result.get("error", "libseccomp filter build failed"))
    return bytes.fromhex(result["bpf"]), {(str(a), str(n)) for a, n in result["lossy"]}


def _tie_to_parent(parent: int, limit: float) -> None:
    """In the builder: end with the compile that forked it, and by itself at the limit.

    A compile killed with SIGKILL cannot kill its builder, which libseccomp may keep
    spinning for ever (reparented to init). The kernel kills the builder when the parent
    dies (PR_SET_PDEATHSIG; checked against getppid() in case the parent died before the
    prctl), and RLIMIT_CPU and alarm() stop a spinning or stuck builder even then."""
    try:
        syscalls.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        os._exit(1)
    if os.getppid() != parent:
        os._exit(1)
    seconds = math.ceil(limit) + 1
    for sig in (signal.SIGXCPU, signal.SIGALRM):  # never an inherited Python handler: they
        signal.signal(sig, signal.SIG_DFL)        # cannot run while libseccomp's C code loops
    resource.setrlimit(resource.RLIMIT_CPU, (seconds, seconds + 1))  # soft SIGXCPU, hard SIGKILL
    signal.alarm(seconds)
