"""The test's "internet": TCP listeners (and a UDP echo) inside the peer namespace the
test made. Bounded: it exits after `lifetime` seconds. argv: lifetime port...
Each TCP connection gets "hello\n" and is closed."""

from __future__ import annotations

import socket
import sys
import threading
import time


def serve_tcp(port: int) -> None:
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", port))
    srv.listen(64)
    while True:
        conn, _ = srv.accept()
        conn.sendall(b"hello\n")
        conn.close()


def serve_udp(port: int) -> None:
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind(("0.0.0.0", port))
    while True:
        data, peer = srv.recvfrom(2048)
        srv.sendto(data, peer)


def main() -> None:
    lifetime = float(sys.argv[1])
    for port in map(int, sys.argv[2:]):
        threading.Thread(target=serve_tcp, args=(port,), daemon=True).start()
        threading.Thread(target=serve_udp, args=(port,), daemon=True).start()
    print("ready", flush=True)
    time.sleep(lifetime)


if __name__ == "__main__":
    main()
