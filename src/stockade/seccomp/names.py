"""libseccomp's names for actions and comparisons (`SCMP_ACT_*`, `SCMP_CMP_*`), as the
Docker / OCI seccomp JSON spells them: one table each way, for the JSON writer
(`docker_json`) and the importer (`importers.docker_seccomp`).

No pyseccomp here: importing a profile must not load libseccomp. `runc_build` keeps its
own tables on purpose (see there).
"""

from __future__ import annotations

from types import MappingProxyType

from stockade.policy import model as m

# the name each action kind is written with
SCMP_ACTION = MappingProxyType({
    m.ActionKind.ALLOW: "SCMP_ACT_ALLOW",
    m.ActionKind.LOG: "SCMP_ACT_LOG",
    m.ActionKind.KILL_PROCESS: "SCMP_ACT_KILL_PROCESS",
    m.ActionKind.KILL_THREAD: "SCMP_ACT_KILL_THREAD",
    m.ActionKind.TRAP: "SCMP_ACT_TRAP",
    m.ActionKind.NOTIFY: "SCMP_ACT_NOTIFY",
    m.ActionKind.ERRNO: "SCMP_ACT_ERRNO",
})
SCMP_OP = MappingProxyType({
    m.ArgOp.EQ: "SCMP_CMP_EQ", m.ArgOp.NE: "SCMP_CMP_NE", m.ArgOp.LT: "SCMP_CMP_LT",
    m.ArgOp.LE: "SCMP_CMP_LE", m.ArgOp.GT: "SCMP_CMP_GT", m.ArgOp.GE: "SCMP_CMP_GE",
    m.ArgOp.MASKED_EQ: "SCMP_CMP_MASKED_EQ",
})
OP_OF_NAME = MappingProxyType({name: op for op, name in SCMP_OP.items()})

# Read, not written: SCMP_ACT_KILL is libseccomp's older name for KILL_THREAD, and
# SCMP_ACT_TRACE hands the call to a ptrace tracer; with none attached (stockade, runc
# and Docker attach none) the kernel fails it with ENOSYS whatever errnoRet says
# (seccomp(2); `seccomp.actions.ret_action` reads a TRACE result the same way).
_KILL, _TRACE = "SCMP_ACT_KILL", "SCMP_ACT_TRACE"
ACTION_NAMES = frozenset([*SCMP_ACTION.values(), _KILL, _TRACE])
_KIND_OF_NAME = MappingProxyType({**{name: kind for kind, name in SCMP_ACTION.items()},
                                  _KILL: m.ActionKind.KILL_THREAD})


def json_action(name: str, errno_ret: int | None, default_errno: int) -> m.Action:
    """What a JSON rule's `action` (with its `errnoRet`, else the profile's default errno)
    does to a call. KeyError for a name not in ACTION_NAMES."""
    if name == _TRACE:
        return m.DENY_ENOSYS
    kind = _KIND_OF_NAME[name]
    if kind is m.ActionKind.ERRNO:
        return m.Action(kind, errno_ret if errno_ret is not None else default_errno)
    return m.Action(kind)
