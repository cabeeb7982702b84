"""JSON Schemas of event types (draft 2020-12), pure: compiling a tenant's schema safely and
naming the first rule a payload breaks.

Schemas come from tenants, so compiling one never reaches the network or the file system (a
``$ref`` to anything but the schema itself is refused) and ``pattern`` uses a linear-time
regex engine (no look-around, no backtracking blow-up). Compiled validators are cached by
the schema's canonical text: every process compiles each schema once.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

import orjson

if TYPE_CHECKING:
    import jsonschema_rs

MAX_SCHEMA_BYTES = 64 * 1024


class SchemaError(ValueError):
    """The schema is not a valid draft 2020-12 JSON Schema (or uses what webhookd refuses)."""


@dataclass(frozen=True, slots=True)
class Violation:
    """The first rule a payload breaks: where (a JSON path from ``$``), which keyword, why."""

    path: str
    rule: str
    message: str


def _no_remote(uri: str) -> NoReturn:
    raise SchemaError(f"$ref to {uri!r}: schemas may only refer to themselves (no remote $ref)")


def canonical(schema: dict[str, Any]) -> str:
    return orjson.dumps(schema, option=orjson.OPT_SORT_KEYS).decode()


def compile_schema(schema: dict[str, Any]) -> jsonschema_rs.Validator:
    """A validator of ``schema``; raises :class:`SchemaError` saying what is wrong with it."""
    text = canonical(schema)
    if len(text) > MAX_SCHEMA_BYTES:
        raise SchemaError(f"the schema is {len(text)} bytes of JSON; at most {MAX_SCHEMA_BYTES}")
    return _compiled(text)


@functools.lru_cache(maxsize=4096)
def _compiled(text: str) -> jsonschema_rs.Validator:
    import jsonschema_rs  # ~6 MB, loaded with the first schema (most deployments have none)

    schema = orjson.loads(text)
    try:
        jsonschema_rs.meta.validate(schema)
    except jsonschema_rs.ValidationError as exc:
        where = "schema" + json_path(list(exc.instance_path))[1:]
        raise SchemaError(f"at {where}: {_first_line(exc.message)}") from None
    try:
        return jsonschema_rs.Draft202012Validator(
            schema,
            retriever=_no_remote,
            pattern_options=jsonschema_rs.RegexOptions(),
            validate_formats=False,
        )
    except jsonschema_rs.ValidationError as exc:
        raise SchemaError(_first_line(exc.message)) from None
    except jsonschema_rs.ReferencingError as exc:
        raise SchemaError(_first_line(str(exc))) from None
    except (ValueError, TypeError) as exc:  # what the schema library refuses otherwise
        raise SchemaError(_first_line(str(exc))) from None


def _first_line(text: str) -> str:
    return text.strip().split("\n", 1)[0][:500]


def json_path(parts: list[str | int]) -> str:
    """``$.customer.country``, ``$.items[2].sku``; keys that are not identifiers quoted."""
    out = "$"
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.isidentifier():
            out += f".{part}"
        else:
            out += "[" + orjson.dumps(part).decode() + "]"
    return out


def first_violation(validator: jsonschema_rs.Validator, payload: Any) -> Violation | None:
    """None if ``payload`` conforms; else the first rule it breaks."""
    if validator.is_valid(payload):
        return None
    for error in validator.iter_errors(payload):
        schema_path = list(error.schema_path)
        rule = str(schema_path[-1]) if schema_path else "schema"
        return Violation(json_path(list(error.instance_path)), rule, _first_line(error.message))
    return None  # pragma: no cover - is_valid and iter_errors agree
