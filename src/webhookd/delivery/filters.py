"""Payload filters of endpoints, pure: validate a filter, compile it, match payloads.

An endpoint's ``filter`` is a JSON object matched against each event's payload, in the
style of MongoDB queries (docs/EVENT_TYPES.md, "Payload filters")::

    {"amount": {"$gte": 100}, "customer.country": {"$in": ["DE", "FR"]}}

- The keys of a filter object are dotted paths into the payload, or the logical operators
  ``$and``/``$or`` (a non-empty array of filter objects) and ``$not`` (a filter object).
  Every entry of one object must hold (they are ANDed); ``{}`` matches every payload.
- A path's condition is an *operator object* (every key starts with ``$``) or a *bare value*,
  which means ``$eq`` (an object without ``$`` keys, ``[]`` and ``{}`` are bare values too).
  Field operators: ``$eq $ne`` (any JSON value), ``$gt $gte $lt $lte`` (a number or a
  string), ``$in $nin`` (an array), ``$exists`` (true or false).
- A path resolves segment by segment through objects; a segment that is a non-negative
  integer written canonically (``0``, ``12``; not ``01``, ``-1``) also indexes into an array.
  Arrays are not traversed implicitly: ``items.sku`` is missing when ``items`` is an array.
- Missing path: only ``$exists: false``, ``$ne`` and ``$nin`` hold.
- JSON equality: numbers by exact value (``1`` equals ``1.0``), ``true`` is not ``1``,
  arrays element by element, objects by their key sets and values (key order ignored).
- Arrays at the path (one level, as MongoDB): ``$eq``/``$in`` and the comparisons hold when the
  whole array or any of its elements satisfies them; ``$ne``/``$nin`` are their exact
  negations (none of the elements, nor the array, equals).
- Comparisons hold only between two numbers (booleans are not numbers) or two strings (by
  Unicode code point); any other pairing is false, never an error.

Validation (:func:`validate_filter`) raises :class:`FilterError`, whose ``path`` locates the
culprit inside the filter (``filter.amount.$gte``, ``filter.$or[1]``); the API answers it
with a 422. :func:`compile_filter` turns a valid filter into a predicate once;
:func:`matcher` does the same through a bounded cache keyed on the filter's canonical JSON
(what delivery routing calls per event), and never raises; :func:`matches` is the one-shot
form. A compiled predicate never raises for any JSON payload (object, array, scalar, null).
"""

from __future__ import annotations

import functools
import json
import math
import operator
from collections.abc import Callable, Mapping
from typing import Any, Final

__all__ = [
    "FIELD_OPERATORS",
    "LOGICAL_OPERATORS",
    "MAX_DEPTH",
    "MAX_LIST_ITEMS",
    "MAX_NODES",
    "MAX_PATH_LENGTH",
    "MAX_PATH_SEGMENTS",
    "MAX_VALUE_DEPTH",
    "MAX_VALUES",
    "MATCHER_CACHE_SIZE",
    "FilterError",
    "Predicate",
    "compile_filter",
    "matcher",
    "matches",
    "validate_filter",
]

Predicate = Callable[[Any], bool]

FIELD_OPERATORS: Final = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists")
LOGICAL_OPERATORS: Final = ("$and", "$or", "$not")

MAX_DEPTH: Final = 16  # filter objects nested through $and/$or/$not (the top level is 1)
MAX_NODES: Final = 1000  # filter objects + their entries (paths, operators) in all
MAX_PATH_LENGTH: Final = 256  # characters of one dotted path
MAX_PATH_SEGMENTS: Final = 32
MAX_LIST_ITEMS: Final = 1000  # of one $in / $nin array
MAX_VALUE_DEPTH: Final = 16  # nesting of one operand (a bare object or array, ...)
MAX_VALUES: Final = 10_000  # JSON values in all operands together
MATCHER_CACHE_SIZE: Final = 1024  # compiled filters kept by matcher()

ROOT: Final = "filter"  # how FilterError.path names the filter itself


class FilterError(ValueError):
    """An invalid filter. ``path`` is where, inside the filter (``filter.amount.$gte``);
    ``message`` what is wrong; ``str()`` is ``"<path>: <message>"``."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


class _Missing:
    """The value at a path that does not resolve (distinct from JSON null)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<missing>"


MISSING: Final = _Missing()


# ---------------------------------------------------------------------------------------
# JSON value helpers (all total: they never raise, whatever they are given)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _json_equal(value: object, operand: object) -> bool:
    """JSON equality of a payload value with a (validated, depth-bounded) operand. Recursion
    follows the operand, so a deeply nested payload costs no more than the operand."""
    if operand is None:
        return value is None
    if isinstance(operand, bool):
        return isinstance(value, bool) and value is operand
    if isinstance(operand, int | float):
        return _is_number(value) and value == operand
    if isinstance(operand, str):
        return isinstance(value, str) and value == operand
    if isinstance(operand, list):
        return (
            isinstance(value, list | tuple)
            and len(value) == len(operand)
            and all(_json_equal(v, o) for v, o in zip(value, operand, strict=True))
        )
    if isinstance(operand, dict):
        if not isinstance(value, Mapping) or len(value) != len(operand):
            return False
        for key, expected in operand.items():
            if key not in value or not _json_equal(value[key], expected):
                return False
        return True
    return False


def _scalar_key(value: object) -> tuple[str, object] | None:
    """A hashable key under which equal JSON scalars (and only they) collide; None for
    arrays, objects and anything that is not JSON."""
    if value is None:
        return ("null", None)
    if isinstance(value, bool):
        return ("boolean", value)
    if isinstance(value, int | float):
        return ("number", value)  # 1 and 1.0 hash and compare equal
    if isinstance(value, str):
        return ("string", value)
    return None


# ---------------------------------------------------------------------------------------
# Paths


def _path_error(path: str) -> str | None:
    """Why ``path`` is not a valid dotted path, or None."""
    shown = path if len(path) <= 60 else path[:60] + "…"
    if not path:
        return "empty path: a path names a payload field, e.g. customer.country"
    if len(path) > MAX_PATH_LENGTH:
        return f"path '{shown}' is longer than {MAX_PATH_LENGTH} characters"
    segments = path.split(".")
    if any(not segment for segment in segments):
        return (
            f"invalid path '{shown}': empty segment (no leading, trailing or double dots; "
            "e.g. customer.country)"
        )
    if len(segments) > MAX_PATH_SEGMENTS:
        return f"path '{shown}' has more than {MAX_PATH_SEGMENTS} segments"
    return None


def _as_index(segment: str) -> int | None:
    """The array index a segment names: a non-negative integer without leading zeros."""
    if segment.isascii() and segment.isdigit() and (segment == "0" or segment[0] != "0"):
        return int(segment)
    return None


def _resolver(path: str) -> Callable[[Any], Any]:
    steps = tuple((segment, _as_index(segment)) for segment in path.split("."))

    def resolve(document: Any) -> Any:
        for key, index in steps:
            if isinstance(document, Mapping):
                document = document.get(key, MISSING)
                if document is MISSING:
                    return MISSING
            elif index is not None and isinstance(document, list | tuple):
                if index >= len(document):
                    return MISSING
                document = document[index]
            else:
                return MISSING
        return document

    return resolve


# ---------------------------------------------------------------------------------------
# Operator predicates over the value at a path (possibly MISSING)


def _element_or_self(test: Predicate) -> Predicate:
    """Holds when the value, or (if it is an array) any of its elements, passes ``test``."""

    def check(value: Any) -> bool:
        if test(value):
            return True
        return isinstance(value, list | tuple) and any(test(element) for element in value)

    return check


def _equals(operand: Any) -> Predicate:
    return _element_or_self(lambda value: _json_equal(value, operand))


def _member_of(items: list[Any]) -> Predicate:
    scalars: set[tuple[str, object]] = set()
    containers: list[Any] = []
    for item in items:
        key = _scalar_key(item)
        if key is None:
            containers.append(item)
        else:
            scalars.add(key)

    def test(value: Any) -> bool:
        key = _scalar_key(value)
        if key is not None:
            return key in scalars
        return any(_json_equal(value, item) for item in containers)

    return _element_or_self(test)


_COMPARISONS: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "$gt": operator.gt,
    "$gte": operator.ge,
    "$lt": operator.lt,
    "$lte": operator.le,
}


def _compare(op: str, operand: float | str) -> Predicate:
    compare = _COMPARISONS[op]
    if isinstance(operand, str):
        return _element_or_self(lambda v: isinstance(v, str) and compare(v, operand))
    return _element_or_self(lambda v: _is_number(v) and compare(v, operand))


def _negate(test: Predicate) -> Predicate:
    return lambda value: not test(value)


def _exists(wanted: bool) -> Predicate:
    return lambda value: (value is not MISSING) is wanted


def _always(_document: Any) -> bool:
    return True


def _never(_document: Any) -> bool:
    return False


# ---------------------------------------------------------------------------------------
# Validation and compilation: one pass does both


class _Compiler:
    def __init__(self) -> None:
        self.nodes = 0
        self.values = 0

    def _count_node(self, where: str) -> None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise FilterError(where, f"the filter has more than {MAX_NODES} conditions")

    def filter(self, spec: object, where: str, depth: int) -> Predicate:
        """A filter object: every entry holds."""
        if depth > MAX_DEPTH:
            raise FilterError(where, f"filters are nested deeper than {MAX_DEPTH} levels")
        if not isinstance(spec, dict):
            raise FilterError(where, f"a filter is a JSON object, got {_json_type(spec)}")
        self._count_node(where)
        predicates: list[Predicate] = []
        for key, condition in spec.items():
            if not isinstance(key, str):
                raise FilterError(where, f"keys are strings, got {_json_type(key)} {key!r}")
            predicates.append(self.entry(key, condition, where, depth))
        if not predicates:
            return _always
        if len(predicates) == 1:
            return predicates[0]
        every = tuple(predicates)
        return lambda document: all(predicate(document) for predicate in every)

    def entry(self, key: str, condition: object, where: str, depth: int) -> Predicate:
        here = f"{where}.{key}"
        self._count_node(here)
        if key in ("$and", "$or"):
            if not isinstance(condition, list) or not condition:
                raise FilterError(
                    here,
                    f"'{key}' needs a non-empty array of filter objects, got "
                    + ("an empty array" if condition == [] else _json_type(condition)),
                )
            subs = tuple(
                self.filter(sub, f"{here}[{i}]", depth + 1) for i, sub in enumerate(condition)
            )
            if key == "$and":
                return lambda document: all(sub(document) for sub in subs)
            return lambda document: any(sub(document) for sub in subs)
        if key == "$not":
            if not isinstance(condition, dict):
                raise FilterError(
                    here, f"'$not' needs a filter object, got {_json_type(condition)}"
                )
            inner = self.filter(condition, here, depth + 1)
            return lambda document: not inner(document)
        if key.startswith("$"):
            if key in FIELD_OPERATORS:
                message = (
                    f"'{key}' is a field operator: put it in a path's condition, "
                    f'e.g. {{"amount": {{"{key}": ...}}}}'
                )
            else:
                message = (
                    f"unknown operator '{key}'; expected a dotted path or one of "
                    + ", ".join(LOGICAL_OPERATORS)
                )
            raise FilterError(here, message)
        problem = _path_error(key)
        if problem is not None:
            raise FilterError(where, problem)
        resolve = _resolver(key)
        test = self.condition(condition, here)
        return lambda document: test(resolve(document))

    def condition(self, condition: object, here: str) -> Predicate:
        """A path's condition: an operator object or a bare value ($eq)."""
        if isinstance(condition, dict) and condition:
            operators = [k for k in condition if isinstance(k, str) and k.startswith("$")]
            if operators:
                plain = [k for k in condition if not (isinstance(k, str) and k.startswith("$"))]
                if plain:
                    raise FilterError(
                        here,
                        f"mixes operators ({', '.join(operators)}) with plain keys "
                        f"({', '.join(repr(k) for k in plain)}): an operator object holds only "
                        '$-operators; to match an object use {"$eq": {...}}',
                    )
                tests = [self.operator(op, operand, here) for op, operand in condition.items()]
                if len(tests) == 1:
                    return tests[0]
                every = tuple(tests)
                return lambda value: all(test(value) for test in every)
        self.operand(condition, here, 1)
        return _equals(condition)

    def operator(self, op: str, operand: object, where: str) -> Predicate:
        here = f"{where}.{op}"
        self._count_node(here)
        if op in ("$eq", "$ne"):
            self.operand(operand, here, 1)
            test = _equals(operand)
            return test if op == "$eq" else _negate(test)
        if op in ("$gt", "$gte", "$lt", "$lte"):
            if isinstance(operand, str) or (
                isinstance(operand, int | float) and not isinstance(operand, bool)
            ):
                self.operand(operand, here, 1)  # rejects NaN and infinities
                return _compare(op, operand)
            raise FilterError(here, f"'{op}' needs a number or a string, got {_json_type(operand)}")
        if op in ("$in", "$nin"):
            if not isinstance(operand, list):
                raise FilterError(here, f"'{op}' needs an array, got {_json_type(operand)}")
            if len(operand) > MAX_LIST_ITEMS:
                raise FilterError(
                    here, f"'{op}' has {len(operand)} values, more than {MAX_LIST_ITEMS}"
                )
            self.operand(operand, here, 1)
            test = _member_of(operand)
            return test if op == "$in" else _negate(test)
        if op == "$exists":
            if not isinstance(operand, bool):
                raise FilterError(here, f"'$exists' needs true or false, got {_json_type(operand)}")
            return _exists(operand)
        if op in LOGICAL_OPERATORS:
            example = (
                '{"$not": {"amount": {"$gt": 100}}}'
                if op == "$not"
                else f'{{"{op}": [{{"amount": {{"$gt": 100}}}}, {{"vip": true}}]}}'
            )
            raise FilterError(
                here, f"'{op}' is a logical operator: use it at the filter level, e.g. {example}"
            )
        raise FilterError(
            where, f"unknown operator '{op}'; expected one of {', '.join(FIELD_OPERATORS)}"
        )

    def operand(self, value: object, where: str, depth: int) -> None:
        """An operand is a JSON value: bounded in depth and (over the filter) in count."""
        if depth > MAX_VALUE_DEPTH:
            raise FilterError(where, f"the value is nested deeper than {MAX_VALUE_DEPTH} levels")
        self.values += 1
        if self.values > MAX_VALUES:
            raise FilterError(where, f"the filter holds more than {MAX_VALUES} values")
        if value is None or isinstance(value, bool | int | str):
            return
        if isinstance(value, float):
            if not math.isfinite(value):
                raise FilterError(where, f"{value!r} is not a JSON number")
            return
        if isinstance(value, list):
            for i, item in enumerate(value):
                self.operand(item, f"{where}[{i}]", depth + 1)
            return
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise FilterError(
                        where, f"object keys are strings, got {_json_type(key)} {key!r}"
                    )
                self.operand(item, f"{where}.{key}", depth + 1)
            return
        raise FilterError(where, f"not a JSON value: {_json_type(value)}")


# ---------------------------------------------------------------------------------------
# The API


def validate_filter(spec: object) -> None:
    """Raise :class:`FilterError` (naming the bad path or operator) unless ``spec`` is a
    valid filter."""
    _Compiler().filter(spec, ROOT, 1)


def compile_filter(spec: object) -> Predicate:
    """Validate ``spec`` and compile it into a predicate over payloads, once; the predicate
    never raises for a JSON payload. Not cached: the caller keeps it (see :func:`matcher`)."""
    return _Compiler().filter(spec, ROOT, 1)


def _canonical(spec: object) -> str:
    """The filter as canonical JSON (sorted keys), the key of the compiled-filter cache."""
    try:
        return json.dumps(
            spec, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except (TypeError, ValueError, RecursionError):
        raise FilterError(ROOT, "the filter is not a JSON value") from None


@functools.lru_cache(maxsize=MATCHER_CACHE_SIZE)
def _compiled(canonical: str) -> Predicate | FilterError:
    try:
        return compile_filter(json.loads(canonical))
    except FilterError as exc:
        # cached too (without its traceback): an invalid stored filter is not recompiled
        # for every event
        return FilterError(exc.path, exc.message)


def _cached(spec: object) -> Predicate:
    compiled = _compiled(_canonical(spec))
    if isinstance(compiled, FilterError):
        raise FilterError(compiled.path, compiled.message)
    return compiled


def matcher(spec: object) -> Predicate:
    """The compiled predicate of ``spec`` from a process-wide LRU cache (keyed on the
    filter's canonical JSON, :data:`MATCHER_CACHE_SIZE` entries), for matching many events;
    what is compiled is that JSON form of ``spec`` (stored filters are JSON anyway).
    Never raises: a filter that is not valid (stored data never validated by the API) gets a
    predicate that matches no payload, so nothing is delivered against a filter that
    cannot be understood."""
    try:
        return _cached(spec)
    except FilterError:
        return _never


def matches(spec: Mapping[str, Any], payload: Any) -> bool:
    """Whether ``payload`` (any JSON value) matches the filter ``spec``. Never raises for a
    payload; raises :class:`FilterError` if ``spec`` itself is not a valid filter."""
    return _cached(spec)(payload)
