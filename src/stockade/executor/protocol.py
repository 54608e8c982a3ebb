"""The messages between the runtime and the container's process, defined once.

Python (runner/launcher.py, oci/lifecycle.py, oci/execute.py, learn/) uses
these constants; the C executor and front end (oci/fastexec.c, oci/frontend.c) include
protocol.h, generated from this module (`python -m stockade.executor.protocol` rewrites
it; a unit test checks it is current). Each message is one byte on its pipe.
"""

from __future__ import annotations

# (name, byte, pipe and direction, meaning)
MESSAGES: tuple[tuple[str, bytes, str], ...] = (
    ("GO", b"g", "sync pipe, runtime -> child: the id maps are written, go on (also: a "
                 "closed pipe means the runtime gave up)"),
    ("HOOKS", b"h", "created pipe, child -> runtime: namespaces made, root not built: run "
                    "the createRuntime/createContainer hooks; sync pipe, runtime -> child: "
                    "they ran"),
    ("CREATED", b"c", "created pipe, child -> runtime: set up, waiting at the gate"),
    ("START", b"s", "exec.fifo (the gate), runtime -> child: start; followed by an 8-byte "
                    "little-endian length and the state JSON for startContainer hooks"),
    ("EXITED", b"e", "status pipe, init -> runtime: e<decimal exit status>"),
    ("KILLED", b"s", "status pipe, init -> runtime: s<decimal signal number>"),
    ("RECORDED", b"r", "sync pipe, runtime -> executor: the cgroup directories it reported "
                       "(planned, then made) are recorded in the container's state: go on"),
    ("GIVE_UP", b"x", "sync pipe, runtime -> executor or child: the runtime gave up (it "
                      "removes what it recorded): undo and exit"),
    ("EXECUTING", b"\0", "error pipe, child -> runtime: set-up done, the payload is being "
                         "started (anything else there is a failed step's message)"),
)

GO, HOOKS, CREATED, START, EXITED, KILLED, RECORDED, GIVE_UP, EXECUTING = (
    byte for _, byte, _ in MESSAGES)
START_LENGTH_BYTES = 8  # the length after START
# `stockade learn`: the payload sends its seccomp listener with sendmsg(sock, byte "L",
# SCM_RIGHTS, MSG_NOSIGNAL | MSG_DONTWAIT); the recorder's filter lets exactly that call
# through (learn/recorder_filter.py), so the hand-off is not stopped for a notification
# nobody could answer yet.
LISTENER_SEND_FLAGS = 0x4040


def header() -> str:
    """protocol.h: the same messages for C."""
    lines = ["/* Generated from src/stockade/executor/protocol.py by `python -m",
             "   stockade.executor.protocol`: edit that file, not this one. */",
             "#ifndef STOCKADE_PROTOCOL_H", "#define STOCKADE_PROTOCOL_H", ""]
    for name, byte, meaning in MESSAGES:
        lines.append(f"/* {meaning} */")
        char = byte.decode() if byte.isalpha() else f"\\x{byte[0]:02x}"
        lines.append(f"#define MSG_{name} '{char}'")
    lines += [f"#define MSG_START_LENGTH_BYTES {START_LENGTH_BYTES}",
              "/* the learner's listener hand-off: sendmsg flags the recorder allows */",
              f"#define LISTENER_SEND_FLAGS {LISTENER_SEND_FLAGS:#x}", "",
              "#endif", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    import os

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "protocol.h")
    with open(path, "w") as fh:
        fh.write(header())
    print(path)
