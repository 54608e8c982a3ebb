"""Seccomp for the runner: the compiled program, cached by policy digest (the executor loads it).

The compiler (stockade.seccomp.filter.compile_bpf) pulls in libseccomp and the whole
vocabulary; the cache keeps it off the run path after the first run of a policy.
"""

from __future__ import annotations

import os

from stockade.runner.cache import cache_dir, read_trusted, write_atomic
from stockade.runner.codes import runner_error

MAX_INSNS = 4096  # BPF_MAXINSNS: the kernel refuses longer programs


def host_key(arch: str, kernel: tuple[int, int], cap_last_cap: int) -> str:
    return f"{arch}-{kernel[0]}.{kernel[1]}-{cap_last_cap}"


def check_program(bpf: bytes) -> bytes:
    if not bpf or len(bpf) % 8 or len(bpf) // 8 > MAX_INSNS:
        raise runner_error("seccomp", f"compiled filter has an invalid size ({len(bpf)} bytes)")
    return bpf


def compiled_filter(policy: object, host: object, digest: str, hostkey: str) -> bytes:
    """The policy's BPF program for this host, from the cache or the compiler."""
    import hashlib  # only when compiling or looking the cache up by policy

    from stockade import __version__ as version

    key = hashlib.sha256(f"{version}\0{digest}\0{hostkey}".encode()).hexdigest()[:32]
    directory = cache_dir("seccomp")
    if digest and directory is not None:
        data = read_trusted(os.path.join(directory, key + ".bpf"))
        if data is not None and data and len(data) % 8 == 0:
            return data
    try:
        from stockade.seccomp.filter import compile_bpf
    except ImportError as exc:
        raise runner_error("seccomp", f"the seccomp compiler is not available: {exc}") from exc
    try:
        bpf = compile_bpf(policy, host)  # type: ignore[arg-type]
    except (OSError, ValueError, RuntimeError) as exc:
        raise runner_error("seccomp", f"compiling the filter failed: {exc}") from exc
    check_program(bpf)
    if digest and directory is not None:
        write_atomic(os.path.join(directory, key + ".bpf"), bpf)
    return bpf
