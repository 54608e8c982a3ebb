"""The strict shape of one policy file (types and keys only; names are checked in resolve).

Pydantic at the input edge: unknown keys are errors, YAML types are not coerced, and
`stockade schema` prints the JSON Schema these models give, for editor completion.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from stockade.errors import Location, PolicyError
from stockade.policy.source import KeyPath, SourceDocument


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


IntOrName = Annotated[int | str, Field(description="an integer, or a named constant such as CLONE_NEWUSER")]


class ArgSpec(_Spec):
    index: Annotated[int, Field(ge=0, le=5)]
    op: Literal["eq", "ne", "lt", "le", "gt", "ge", "masked_eq"]
    value: IntOrName
    mask: IntOrName | None = None


class ConditionSpec(_Spec):
    arch: list[str] | None = Field(None, description="libseccomp arch names")
    caps: list[str] | None = Field(None, description="capabilities that must be kept")
    min_kernel: str | float | None = Field(None, description='e.g. "4.8"')


class RuleSpec(_Spec):
    syscalls: Annotated[list[str], Field(min_length=1)]
    action: str
    args: list[ArgSpec] = []
    when: ConditionSpec | None = None
    unless: ConditionSpec | None = Field(
        None, description="the rule does not apply if any of these hold (Docker's `excludes`)")
    comment: str | None = None


class SyscallsSpec(_Spec):
    default: str | None = None
    unknown: str | None = None
    arches: Literal["native", "all"] | list[str] | None = None
    allow: list[str] = []
    deny: list[str] = []
    rules: list[RuleSpec] = []


class CapabilitiesSpec(_Spec):
    drop: list[str] = []
    add: list[str] = []
    ambient: list[str] = []


class FilesystemSpec(_Spec):
    root: Literal["read-only", "writable"] | None = None
    read_only: list[str] = []
    writable: list[str] = []
    exec: list[str] = []
    deny: list[str] = []
    tmpfs: list[str] = []
    expose: list[str] = []


Port = Annotated[int, Field(ge=1, le=65535)]


class EgressSpec(_Spec):
    to: str = Field(description='a CIDR or address (10.88.0.0/16), a host name (resolved '
                    'when the sandbox starts, pinned for the run), or "dns" (the resolvers '
                    'the sandbox is given)')
    ports: list[Port] = Field([], description="destination ports; empty: every port")
    proto: Literal["tcp", "udp"] | None = Field(None, description="omitted: tcp and udp")


class BandwidthSpec(_Spec):
    egress: str | None = Field(None, description="rate leaving the sandbox, e.g. 10Mbit")
    ingress: str | None = Field(None, description="rate into the sandbox, e.g. 50Mbit")


class NetworkSpec(_Spec):
    mode: Literal["none", "loopback", "host", "private"] | None = None
    egress: list[EgressSpec] = Field(
        [], description="mode private: each entry lets traffic out; none: nothing leaves")
    publish: list[str] = Field(
        [], description='mode private: "[HOST_ADDR:]HOST_PORT:PORT[/udp]", host to sandbox')
    bandwidth: BandwidthSpec | None = None
    allow: list[str] = []
    bind: list[Annotated[int, Field(ge=1, le=65535)]] = []
    host_abstract_sockets: bool | None = Field(
        None, description="mode host only: allow connecting to the host's abstract unix "
        "sockets (X11, D-Bus); by default Landlock (ABI 6) scopes them to the sandbox")


class IdMapSpec(_Spec):
    inside: Annotated[int, Field(ge=0, le=4294967294)]
    outside: Annotated[int, Field(ge=0, le=4294967294)]
    count: Annotated[int, Field(ge=1, le=4294967295)]


class UserSpec(_Spec):
    uid: Annotated[int, Field(ge=0, le=4294967294)] | None = None
    gid: Annotated[int, Field(ge=0, le=4294967294)] | None = None
    map: Literal["auto", "host"] | None = None
    uid_map: list[IdMapSpec] | None = None
    gid_map: list[IdMapSpec] | None = None


Size = Annotated[int | str, Field(description="bytes, or with a Ki/Mi/Gi/Ti suffix")]


class ResourcesSpec(_Spec):
    memory: Size | None = None
    swap: Size | None = None
    pids: Annotated[int, Field(ge=1)] | None = None
    # 0.01: the kernel's smallest CFS quota is 1 ms per 100 ms period (Docker's --cpus floor)
    cpu: Annotated[float, Field(ge=0.01, le=4096)] | None = None
    cpu_weight: Annotated[int, Field(ge=1, le=10000)] | None = None
    io_weight: Annotated[int, Field(ge=1, le=10000)] | None = None


RlimitName = Literal[
    "as", "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile",
    "nproc", "rss", "rtprio", "rttime", "sigpending", "stack",
]
RlimitValue = Annotated[int, Field(ge=0)] | Literal["unlimited"]


class AppArmorSpec(_Spec):
    mode: Literal["enforce", "complain"] = "enforce"


class SELinuxSpec(_Spec):
    type: str | None = None
    base: str = "container"


class LandlockSpec(_Spec):
    mode: Literal["best-effort", "required", "off"] = "best-effort"


class LsmSpec(_Spec):
    apparmor: AppArmorSpec | None = None
    selinux: SELinuxSpec | None = None
    landlock: LandlockSpec | None = None
    required: bool | None = None


Namespace = Literal["user", "pid", "mount", "net", "ipc", "uts", "cgroup"]


class PolicySpec(_Spec):
    """One stockade policy file (format version 1)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True,
                              json_schema_extra={"$id": "https://stockade.dev/schema/policy-v1.json"})

    stockade: Literal[1]
    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,62}$")]
    description: str = ""
    extends: list[str] = []
    syscalls: SyscallsSpec | None = None
    capabilities: CapabilitiesSpec | None = None
    no_new_privileges: bool | None = None
    filesystem: FilesystemSpec | None = None
    network: NetworkSpec | None = None
    namespaces: list[Namespace] | None = None
    user: UserSpec | None = None
    resources: ResourcesSpec | None = None
    rlimits: dict[RlimitName, RlimitValue] | None = None
    lsm: LsmSpec | None = None
    hostname: Annotated[str, Field(pattern=r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,62})$")] | None = None


def json_schema() -> dict[str, Any]:
    schema = PolicySpec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "stockade policy"
    return schema


def _model_at(path: KeyPath, root: type[BaseModel]) -> type[BaseModel] | None:
    """The spec class whose keys live at `path` (for 'did you mean' on unknown keys)."""
    model: Any = root
    for part in path:
        if isinstance(part, int) or model is None:
            continue
        field = model.model_fields.get(part)
        if field is None:
            return None
        model = _spec_in(field.annotation)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _spec_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _spec_in(arg)
        if found is not None:
            return found
    return None


def _data_path(data: Any, loc: tuple[Any, ...]) -> KeyPath:
    """Keep only the parts of a pydantic loc that index the real data (drop union tags)."""
    out: list[str | int] = []
    cur = data
    for part in loc:
        in_map = isinstance(cur, dict) and isinstance(part, str) and part in cur
        in_list = isinstance(cur, list) and isinstance(part, int) and 0 <= part < len(cur)
        if in_map or in_list:
            cur = cur[part]
            out.append(part)
        elif (isinstance(cur, dict) and isinstance(part, str) and out[-1:] != [part]
              and part not in ("str", "int", "float", "bool", "list", "dict") and "[" not in part):
            # an unknown or missing key: keep it, it names the problem
            out.append(part)
            break
    return tuple(out)


_TYPE_WORDS = {"str": "a string", "int": "an integer", "float": "a number", "bool": "a boolean",
               "list": "a list", "dict": "a mapping", "NoneType": "nothing"}
# As the user wrote them (YAML and JSON spell these alike), not as Python prints them.
_LITERALS = {True: "true", False: "false", None: "null"}


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    shown = _LITERALS[value] if value is None or isinstance(value, bool) else repr(value)
    return f"{shown} ({_TYPE_WORDS.get(type(value).__name__, type(value).__name__)})"


def validate_document(doc: SourceDocument) -> PolicySpec:
    try:
        return PolicySpec.model_validate(doc.data)
    except ValidationError as exc:
        raise _to_policy_error(doc, exc) from None


def _to_policy_error(doc: SourceDocument, exc: ValidationError) -> PolicyError:
    return validation_error(doc.data, exc, doc.location, PolicySpec)


def validation_error(data: Any, exc: ValidationError, locate: Callable[[KeyPath], Location],
                     root: type[BaseModel]) -> PolicyError:
    """One PolicyError for pydantic's errors on `data` (validated against `root`): the
    most specific problem, at the key path `locate` turns into a file position."""
    errors = exc.errors(include_url=False)
    # Prefer the most specific problem: unknown keys and missing keys first, then the deepest.
    def rank(e: Any) -> tuple[int, int]:
        kind = {"extra_forbidden": 0, "missing": 1}.get(e["type"], 2)
        return (kind, -len(e["loc"]))

    err = sorted(errors, key=rank)[0]
    path = _data_path(data, tuple(err["loc"]))
    location = locate(path)
    etype = err["type"]
    if etype == "extra_forbidden":
        key = str(path[-1]) if path else "?"
        model = _model_at(path[:-1], root)
        allowed = sorted(model.model_fields) if model else []
        close = difflib.get_close_matches(key, allowed, n=1)
        return PolicyError(location, "unknown key", found=repr(key),
                           expected="one of " + ", ".join(allowed) if allowed else None,
                           suggestion=f"did you mean '{close[0]}'?" if close else None)
    if etype == "missing":
        return PolicyError(location, "required key is missing", found="nothing",
                           expected=f"`{path[-1]}`" if path else None)
    found = _describe(err.get("input"))
    siblings = [e for e in errors if _data_path(data, tuple(e["loc"])) == path]
    expected = "; or ".join(sorted({_expected(e) for e in siblings or [err]}))
    return PolicyError(location, "invalid value", found=found, expected=expected)


def _expected(err: Any) -> str:
    """pydantic's "Input should be a valid list" as "a valid list"; a model as a mapping."""
    if err["type"] in ("model_type", "model_attributes_type", "dict_type"):
        return "a mapping"
    text = str(err["msg"]).removeprefix("Input should be ")
    return text[:1].lower() + text[1:]
