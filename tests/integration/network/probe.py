"""Run inside the sandbox: try each HOST:PORT[/udp] and print one line per target:
"HOST:PORT ok" or "HOST:PORT <errno name>" (a refusal must come back, not a timeout)."""

from __future__ import annotations

import errno
import socket
import sys

TIMEOUT_S = 5.0


def tcp(host: str, port: int) -> str:
    try:
        with socket.create_connection((host, port), timeout=TIMEOUT_S) as s:
            return "ok" if s.recv(16).startswith(b"hello") else "no-greeting"
    except TimeoutError:
        return "timeout"
    except OSError as exc:
        return errno.errorcode.get(exc.errno or 0, str(exc))


def udp(host: str, port: int) -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(TIMEOUT_S)
        try:
            s.connect((host, port))
            s.send(b"ping")
            return "ok" if s.recv(16) == b"ping" else "wrong-answer"
        except TimeoutError:
            return "timeout"
        except OSError as exc:
            return errno.errorcode.get(exc.errno or 0, str(exc))


for target in sys.argv[1:]:
    addr, _, proto = target.partition("/")
    host, _, port = addr.rpartition(":")
    result = (udp if proto == "udp" else tcp)(host, int(port))
    print(f"{target} {result}", flush=True)
