"""Reading the JSON files `stockade import` takes: size-capped, decoded, parsed, and
checked against a pydantic model of the fields the importer reads, so that hostile or
type-confused input is one PolicyError naming the field, never a traceback."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from stockade.errors import Location, PolicyError
from stockade.policy.schema import validation_error
from stockade.policy.source import KeyPath, format_path, read_capped

# Docker's default seccomp profile is ~25 KiB, a `docker inspect` or config.json a few KiB.
MAX_IMPORT_BYTES = 1 << 20

Model = TypeVar("Model", bound=BaseModel)


class JsonShape(BaseModel):
    """The fields an importer reads, with JSON's types (no coercion: `"names": 3` is an
    error, not a crash later); other fields are ignored, as Docker and runc ignore them."""

    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)


def read_json(path: str, what: str) -> Any:
    text = read_capped(path, MAX_IMPORT_BYTES, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise PolicyError(Location(path, exc.lineno, exc.colno), "malformed JSON", found=exc.msg,
                          expected=what) from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise PolicyError(Location(path), "unreadable JSON value", found=str(exc)[:80],
                          expected=what) from None
    except RecursionError:
        raise PolicyError(Location(path), "JSON nested too deeply", expected=what) from None


def check_shape(data: Any, model: type[Model], file: str, at: KeyPath = ()) -> Model:
    """`data` (found at key path `at` of `file`) as `model`, or the PolicyError naming the
    first wrong field, e.g. `x.json: syscalls[3].names: invalid value; found 3 (an integer)`."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(data, exc, lambda path: Location(file, key_path=format_path((*at, *path))),
                               model) from None
