"""The policy's cgroup weights in the units each cgroup version reads.

A policy's `resources.cpu_weight` and `resources.io_weight` are cgroup v2 weights
(1..10000). cgroup v1 counts CPU in cpu.shares (2..262144) and I/O in blkio.weight
(10..1000); Docker's `--cpu-shares` and OCI's `linux.resources.cpu.shares` are v1 units
too. The formulas are runc's, so a weight means the same under stockade and runc.
"""

from __future__ import annotations

_SHARES_MIN, _SHARES_MAX = 2, 262144
_WEIGHT_MIN, _WEIGHT_MAX = 1, 10000


def cpu_shares(weight: int) -> int:
    """cgroup v2 cpu.weight -> v1 cpu.shares (kept in 2..262144 whatever the input)."""
    shares = _SHARES_MIN + ((weight - _WEIGHT_MIN) * (_SHARES_MAX - _SHARES_MIN)) // (
        _WEIGHT_MAX - _WEIGHT_MIN)
    return max(_SHARES_MIN, min(_SHARES_MAX, shares))


def cpu_weight(shares: int) -> int:
    """v1 cpu.shares -> cgroup v2 cpu.weight (OCI cpu.shares on a v2 host), the inverse."""
    return _WEIGHT_MIN + ((shares - _SHARES_MIN) * (_WEIGHT_MAX - _WEIGHT_MIN)) // (
        _SHARES_MAX - _SHARES_MIN)


def blkio_weight(weight: int) -> int:
    """cgroup v2 io.weight -> v1 blkio.weight (10..1000)."""
    return 10 + ((weight - _WEIGHT_MIN) * 990) // (_WEIGHT_MAX - _WEIGHT_MIN)
