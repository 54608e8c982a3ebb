"""The child protocol is defined once (executor/protocol.py); the C side includes the
header generated from it, which must be current."""

from __future__ import annotations

from pathlib import Path

from stockade.executor import protocol

HEADER = Path(protocol.__file__).with_name("protocol.h")


def test_the_c_header_is_generated_from_the_python_definition() -> None:
    assert HEADER.read_text() == protocol.header(), \
        "run `python -m stockade.executor.protocol` after editing protocol.py"
    assert "#define MSG_START 's'" in HEADER.read_text()
    assert "#define MSG_EXECUTING '\\x00'" in HEADER.read_text()


def test_messages_sharing_a_pipe_differ() -> None:
    pipes = {"sync": (protocol.GO, protocol.HOOKS),
             "created": (protocol.HOOKS, protocol.CREATED),
             "status": (protocol.EXITED, protocol.KILLED)}
    for pipe, messages in pipes.items():
        assert len(set(messages)) == len(messages), pipe
    assert all(len(byte) == 1 for _, byte, _ in protocol.MESSAGES)


def test_the_c_sources_use_the_header() -> None:
    package = Path(protocol.__file__).parents[1]
    sources = [package / "oci" / "fastexec.c", package / "oci" / "frontend.c",
               *sorted((package / "executor").glob("*.c"))]
    assert '#include "../executor/protocol.h"' in (package / "oci" / "frontend.c").read_text()
    assert '#include "protocol.h"' in (package / "executor" / "executor.h").read_text()
    for source in sources:
        text = source.read_text()
        for literal in ("'g'", "'c'", "'s'", '"g", 1', '"c", 1'):
            assert literal not in text, (source.name, literal)
