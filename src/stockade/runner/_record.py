"""`frozen`: a frozen-dataclass decorator that is cheap to apply at import time.

Kept because it still pays (bench/shim_bench.py): with `dataclass(frozen=True, slots=True)`
the run path's modules take ~2.5x as long to import, +20 ms per `stockade run` at idle:
`dataclass` compiles each generated method with exec and pulls in `inspect`. Type
checkers see the real `dataclasses.dataclass(frozen=True)` (see the TYPE_CHECKING
branch), so the fields, __init__ signature and immutability are checked as usual; at run
time this builds the same behaviour from generic methods: positional/keyword __init__
with defaults, __repr__, __eq__, __hash__, and assignment refused (FrozenInstanceError
semantics: AttributeError). Only what the runner uses is supported: plain defaults,
no field(), no inheritance between records.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TypeVar, dataclass_transform

    _T = TypeVar("_T")

    @dataclass_transform(frozen_default=True)
    def frozen(cls: type[_T]) -> type[_T]: ...

    def replace(obj: _T, **changes: object) -> _T: ...
else:
    _MISSING = object()

    class FrozenInstanceError(AttributeError):
        pass

    def frozen(cls):
        names = [n for n in cls.__dict__.get("__annotations__", {})
                 if not n.startswith("_")]
        defaults = {n: cls.__dict__[n] for n in names if n in cls.__dict__}
        for n in defaults:
            delattr(cls, n)  # defaults live in the instance, not as class attributes
        fields = tuple(names)

        def __init__(self, *args, **kwargs):
            if len(args) > len(fields):
                raise TypeError(f"{cls.__name__}() takes {len(fields)} arguments")
            values = dict(zip(fields, args, strict=False))
            for k, v in kwargs.items():
                if k not in fields or k in values:
                    raise TypeError(f"{cls.__name__}() got an unexpected or repeated {k!r}")
                values[k] = v
            d = self.__dict__
            for n in fields:
                v = values.get(n, defaults.get(n, _MISSING))
                if v is _MISSING:
                    raise TypeError(f"{cls.__name__}() missing argument {n!r}")
                d[n] = v

        def __setattr__(self, name, value):
            raise FrozenInstanceError(f"cannot assign to field {name!r}")

        def __delattr__(self, name):
            raise FrozenInstanceError(f"cannot delete field {name!r}")

        def _astuple(self):
            return tuple(self.__dict__[n] for n in fields)

        def __eq__(self, other):
            if other.__class__ is not self.__class__:
                return NotImplemented
            return _astuple(self) == _astuple(other)

        def __hash__(self):
            return hash(_astuple(self))

        def __repr__(self):
            inner = ", ".join(f"{n}={self.__dict__[n]!r}" for n in fields)
            return f"{cls.__name__}({inner})"

        cls.__init__ = __init__
        cls.__setattr__ = __setattr__
        cls.__delattr__ = __delattr__
        cls.__eq__ = __eq__
        cls.__hash__ = __hash__
        cls.__repr__ = __repr__
        cls._fields = fields
        return cls

    def replace(obj, **changes):
        """dataclasses.replace for records (and real dataclasses: only those import
        dataclasses, which a record's replace must not, see above)."""
        fields = getattr(type(obj), "_fields", None)
        if fields is None:
            import dataclasses

            return dataclasses.replace(obj, **changes)
        values = {n: obj.__dict__[n] for n in fields}
        values.update(changes)
        return type(obj)(**values)


_TAG = "\0record"  # never a string of ours (paths and names hold no NUL)


def to_plain(value: object, records: dict[str, type]) -> object:
    """Records as (tag, class name, fields...) tuples, recursively: marshal-able plain
    data. Not pickle: it can execute code when loaded, and it imports re, enum and
    functools. Only classes named in `records` are converted."""
    cls = type(value)
    fields = getattr(cls, "_fields", None)
    if fields is not None and records.get(cls.__name__) is cls:
        return (_TAG, cls.__name__, *(to_plain(getattr(value, f), records) for f in fields))
    if isinstance(value, tuple):
        return tuple(to_plain(v, records) for v in value)
    return value


def from_plain(value: object, records: dict[str, type]) -> object:
    """The inverse of to_plain. KeyError/TypeError: data from another layout."""
    if isinstance(value, tuple):
        if len(value) >= 2 and value[0] == _TAG:
            cls = records[value[1]]
            return cls(*(from_plain(v, records) for v in value[2:]))
        return tuple(from_plain(v, records) for v in value)
    return value
