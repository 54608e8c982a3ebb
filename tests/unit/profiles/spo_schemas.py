"""JSON schemas for the Security Profiles Operator objects stockade emits, transcribed
by hand from SPO's CRD openAPIV3Schema (deploy/base-crds/crds/*.yaml): the same field
names, types and enums, with additionalProperties false so a misspelt field fails."""

from __future__ import annotations

from typing import Any

_ACTIONS = ["SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP",
            "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY"]
_OPS = ["SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT",
        "SCMP_CMP_MASKED_EQ"]
_ARCHES = ["SCMP_ARCH_" + a for a in (
    "NATIVE", "X86", "X86_64", "X32", "ARM", "AARCH64", "MIPS", "MIPS64", "MIPS64N32", "MIPSEL",
    "MIPSEL64", "MIPSEL64N32", "PPC", "PPC64", "PPC64LE", "S390", "S390X", "PARISC", "PARISC64",
    "RISCV64")]
_STRS = {"type": "array", "items": {"type": "string"}}


def _obj(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": False}
    if required:
        out["required"] = required
    return out


def _envelope(api: str, kind: str, spec: dict[str, Any], namespaced: bool) -> dict[str, Any]:
    meta = _obj({"name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"},
                 **({"namespace": {"type": "string"}} if namespaced else {})}, ["name"])
    return _obj({"apiVersion": {"const": api}, "kind": {"const": kind}, "metadata": meta, "spec": spec},
                ["apiVersion", "kind", "metadata", "spec"])


SECCOMP = _envelope("security-profiles-operator.x-k8s.io/v1beta1", "SeccompProfile", _obj({
    "architectures": {"type": "array", "items": {"enum": _ARCHES}},
    "baseProfileName": {"type": "string"},
    "defaultAction": {"enum": _ACTIONS},
    "flags": _STRS,
    "listenerMetadata": {"type": "string"},
    "listenerPath": {"type": "string"},
    "syscalls": {"type": "array", "items": _obj({
        "action": {"enum": _ACTIONS},
        "args": {"type": "array", "maxItems": 6, "items": _obj({
            "index": {"type": "integer", "minimum": 0},
            "op": {"enum": _OPS},
            "value": {"type": "integer", "minimum": 0},
            "valueTwo": {"type": "integer", "minimum": 0}}, ["index", "op"])},
        "errnoRet": {"type": "integer"},
        "names": _STRS}, ["action", "names"])},
}, ["defaultAction"]), namespaced=True)

APPARMOR = _envelope("security-profiles-operator.x-k8s.io/v1alpha1", "AppArmorProfile", _obj({
    "abstract": _obj({
        "capability": _obj({"allowedCapabilities": _STRS}),
        "executable": _obj({"allowedExecutables": _STRS, "allowedLibraries": _STRS}),
        "filesystem": _obj({"readOnlyPaths": _STRS, "readWritePaths": _STRS, "writeOnlyPaths": _STRS}),
        "network": _obj({"allowRaw": {"type": "boolean"},
                         "allowedProtocols": _obj({"allowTcp": {"type": "boolean"},
                                                   "allowUdp": {"type": "boolean"}})}),
    }),
    "complainMode": {"type": "boolean"},
    "disabled": {"type": "boolean"},
}), namespaced=False)

SELINUX = _envelope("security-profiles-operator.x-k8s.io/v1", "SelinuxProfile", _obj({
    "allow": {"type": "object", "additionalProperties": {
        "type": "object", "additionalProperties": _STRS}},
    "inherit": {"type": "array", "items": _obj({"kind": {"enum": ["System", "SelinuxProfile"]},
                                                "name": {"type": "string", "minLength": 1}}, ["name"])},
    "mode": {"enum": ["Enforcing", "Permissive"]},
    "state": {"enum": ["Enabled", "Disabled"]},
}), namespaced=False)

SCHEMAS = {"SeccompProfile": SECCOMP, "AppArmorProfile": APPARMOR, "SelinuxProfile": SELINUX}
