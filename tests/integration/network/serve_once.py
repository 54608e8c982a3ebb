"""Run inside the sandbox: listen on PORT, greet `count` connections with "hello\\n",
exit. Bounded: gives up after 30 s without a connection."""

from __future__ import annotations

import socket
import sys

port, count = int(sys.argv[1]), int(sys.argv[2])
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", port))
srv.listen(8)
srv.settimeout(30)
print("listening", flush=True)
for _ in range(count):
    conn, _ = srv.accept()
    conn.sendall(b"hello\n")
    conn.close()
