"""Payload filters (webhookd.delivery.filters), as tables: every operator matching and not,
missing paths, nested paths and list indexes, mixed types, logical nesting, bare values,
every validation error, the limits, and a seeded fuzz loop (matching never raises)."""

from __future__ import annotations

import json
import math
import random
from typing import Any

import pytest

from webhookd.delivery.filters import (
    MAX_DEPTH,
    MAX_LIST_ITEMS,
    MAX_NODES,
    MAX_PATH_LENGTH,
    MAX_PATH_SEGMENTS,
    MAX_VALUE_DEPTH,
    MAX_VALUES,
    FilterError,
    compile_filter,
    matcher,
    matches,
    validate_filter,
)

INVOICE = {
    "id": "in_1",
    "amount": 150,
    "price": 9.5,
    "currency": "EUR",
    "status": "paid",
    "paid": True,
    "count": 1,
    "zero": 0,
    "note": None,
    "created": "2024-05-01T10:00:00Z",
    "customer": {"id": "cus_1", "country": "DE", "test": False, "address": {"zip": "10115"}},
    "tags": ["vip", "eu", 3],
    "matrix": [[1, 2], [3]],
    "items": [{"sku": "A", "qty": 2}, {"sku": "B", "qty": 0}],
    "empty_list": [],
    "empty_obj": {},
    "0": "key zero",
    "weird.key": 1,
}

# (id, filter, payload, expected)
MATCH_TABLE: list[tuple[str, dict[str, Any], Any, bool]] = [
    # -- bare values ($eq) -------------------------------------------------------------
    ("bare-str", {"status": "paid"}, INVOICE, True),
    ("bare-str-no", {"status": "open"}, INVOICE, False),
    ("bare-int", {"amount": 150}, INVOICE, True),
    ("bare-int-equals-float", {"amount": 150.0}, INVOICE, True),
    ("bare-float-equals-int", {"count": 1.0}, INVOICE, True),
    ("bare-true", {"paid": True}, INVOICE, True),
    ("bare-true-is-not-1", {"paid": 1}, INVOICE, False),
    ("bare-1-is-not-true", {"count": True}, INVOICE, False),
    ("bare-0-is-not-false", {"zero": False}, INVOICE, False),
    ("bare-false-is-not-0", {"customer.test": 0}, INVOICE, False),
    ("bare-false", {"customer.test": False}, INVOICE, True),
    ("bare-null", {"note": None}, INVOICE, True),
    ("bare-null-not-missing", {"absent": None}, INVOICE, False),
    ("bare-null-not-0", {"zero": None}, INVOICE, False),
    ("bare-str-not-number", {"amount": "150"}, INVOICE, False),
    ("bare-number-not-str", {"customer.address.zip": 10115}, INVOICE, False),
    ("bare-object", {"customer.address": {"zip": "10115"}}, INVOICE, True),
    ("bare-object-extra-key", {"customer.address": {"zip": "10115", "city": "B"}}, INVOICE, False),
    ("bare-object-fewer-keys", {"items.0": {"sku": "A"}}, INVOICE, False),
    ("bare-object-key-order", {"items.0": {"qty": 2, "sku": "A"}}, INVOICE, True),
    ("bare-object-deep-types", {"items.0": {"sku": "A", "qty": 2.0}}, INVOICE, True),
    ("bare-object-not-array", {"customer.address": [["zip", "10115"]]}, INVOICE, False),
    ("bare-empty-object", {"empty_obj": {}}, INVOICE, True),
    ("bare-empty-object-no", {"customer": {}}, INVOICE, False),
    ("bare-list-exact", {"tags": ["vip", "eu", 3]}, INVOICE, True),
    ("bare-list-order-matters", {"tags": ["eu", "vip", 3]}, INVOICE, False),
    ("bare-list-prefix", {"tags": ["vip", "eu"]}, INVOICE, False),
    ("bare-empty-list", {"empty_list": []}, INVOICE, True),
    ("bare-empty-list-no", {"tags": []}, INVOICE, False),
    ("array-contains-str", {"tags": "vip"}, INVOICE, True),
    ("array-contains-number", {"tags": 3.0}, INVOICE, True),
    ("array-contains-no", {"tags": "us"}, INVOICE, False),
    ("array-contains-array", {"matrix": [1, 2]}, INVOICE, True),
    ("array-one-level-only", {"matrix": 1}, INVOICE, False),
    ("array-contains-object", {"items": {"sku": "B", "qty": 0}}, INVOICE, True),
    # -- $eq / $ne -----------------------------------------------------------------------
    ("eq", {"currency": {"$eq": "EUR"}}, INVOICE, True),
    ("eq-no", {"currency": {"$eq": "USD"}}, INVOICE, False),
    ("eq-missing", {"absent": {"$eq": 1}}, INVOICE, False),
    ("eq-null-missing", {"absent": {"$eq": None}}, INVOICE, False),
    ("eq-literal-dollar-object", {"meta": {"$eq": {"$ref": "x"}}}, {"meta": {"$ref": "x"}}, True),
    ("eq-array-element", {"tags": {"$eq": "eu"}}, INVOICE, True),
    ("eq-bool-vs-int", {"paid": {"$eq": 1}}, INVOICE, False),
    ("ne", {"currency": {"$ne": "USD"}}, INVOICE, True),
    ("ne-no", {"currency": {"$ne": "EUR"}}, INVOICE, False),
    ("ne-missing", {"absent": {"$ne": 1}}, INVOICE, True),
    ("ne-null-missing", {"absent": {"$ne": None}}, INVOICE, True),
    ("ne-null-present", {"note": {"$ne": None}}, INVOICE, False),
    ("ne-int-float", {"amount": {"$ne": 150.0}}, INVOICE, False),
    ("ne-bool-vs-int", {"paid": {"$ne": 1}}, INVOICE, True),
    ("ne-array-element", {"tags": {"$ne": "vip"}}, INVOICE, False),
    ("ne-array-none", {"tags": {"$ne": "us"}}, INVOICE, True),
    ("ne-whole-array", {"tags": {"$ne": ["vip", "eu", 3]}}, INVOICE, False),
    # -- comparisons ---------------------------------------------------------------------
    ("gt", {"amount": {"$gt": 100}}, INVOICE, True),
    ("gt-boundary", {"amount": {"$gt": 150}}, INVOICE, False),
    ("gte-boundary", {"amount": {"$gte": 150}}, INVOICE, True),
    ("gte-float", {"amount": {"$gte": 150.5}}, INVOICE, False),
    ("lt", {"price": {"$lt": 10}}, INVOICE, True),
    ("lt-boundary", {"price": {"$lt": 9.5}}, INVOICE, False),
    ("lte-boundary", {"price": {"$lte": 9.5}}, INVOICE, True),
    ("lte-no", {"amount": {"$lte": 149.99}}, INVOICE, False),
    ("range", {"amount": {"$gt": 100, "$lt": 200}}, INVOICE, True),
    ("range-no", {"amount": {"$gt": 100, "$lt": 150}}, INVOICE, False),
    ("gt-big-int", {"n": {"$gt": 2**53}}, {"n": 2**53 + 1}, True),
    ("eq-big-int-exact", {"n": float(2**53)}, {"n": 2**53 + 1}, False),
    ("gt-negative", {"n": {"$gt": -1}}, {"n": -0.5}, True),
    ("gt-str", {"currency": {"$gt": "AAA"}}, INVOICE, True),
    ("lt-str-code-points", {"s": {"$lt": "a"}}, {"s": "Z"}, True),
    ("gte-iso-date", {"created": {"$gte": "2024-01-01"}}, INVOICE, True),
    ("lt-iso-date", {"created": {"$lt": "2024-05-01"}}, INVOICE, False),
    ("gt-number-vs-str", {"amount": {"$gt": "100"}}, INVOICE, False),
    ("gt-str-vs-number", {"currency": {"$gt": 0}}, INVOICE, False),
    ("lt-str-vs-number", {"currency": {"$lt": 10**9}}, INVOICE, False),
    ("gt-bool-not-number", {"paid": {"$gt": 0}}, INVOICE, False),
    ("gte-bool-not-number", {"paid": {"$gte": 1}}, INVOICE, False),
    ("lte-null", {"note": {"$lte": 0}}, INVOICE, False),
    ("gt-object", {"customer": {"$gt": ""}}, INVOICE, False),
    ("gt-missing", {"absent": {"$gt": 0}}, INVOICE, False),
    ("lt-missing", {"absent": {"$lt": 0}}, INVOICE, False),
    ("gt-array-any", {"tags": {"$gt": 2}}, INVOICE, True),
    ("gt-array-none", {"tags": {"$gt": 3}}, INVOICE, False),
    ("gte-array-str", {"tags": {"$gte": "vip"}}, INVOICE, True),
    ("gt-empty-array", {"empty_list": {"$gt": 0}}, INVOICE, False),
    ("gt-nan-payload", {"n": {"$gt": 0}}, {"n": math.nan}, False),
    ("lt-nan-payload", {"n": {"$lt": 0}}, {"n": math.nan}, False),
    # -- $in / $nin ----------------------------------------------------------------------
    ("in", {"customer.country": {"$in": ["DE", "FR"]}}, INVOICE, True),
    ("in-no", {"customer.country": {"$in": ["US", "FR"]}}, INVOICE, False),
    ("in-missing", {"absent": {"$in": ["DE"]}}, INVOICE, False),
    ("in-null-missing", {"absent": {"$in": [None]}}, INVOICE, False),
    ("in-null-present", {"note": {"$in": [None, 1]}}, INVOICE, True),
    ("in-empty", {"status": {"$in": []}}, INVOICE, False),
    ("in-int-float", {"amount": {"$in": [150.0]}}, INVOICE, True),
    ("in-bool-vs-int", {"paid": {"$in": [1, 0]}}, INVOICE, False),
    ("in-int-vs-bool", {"count": {"$in": [True]}}, INVOICE, False),
    ("in-0-vs-false", {"zero": {"$in": [False, None, ""]}}, INVOICE, False),
    ("in-str-vs-number", {"amount": {"$in": ["150"]}}, INVOICE, False),
    ("in-object", {"customer.address": {"$in": [{"zip": "10115"}]}}, INVOICE, True),
    ("in-object-no", {"customer.address": {"$in": [{"zip": "1"}, "10115"]}}, INVOICE, False),
    ("in-whole-array", {"tags": {"$in": [["vip", "eu", 3]]}}, INVOICE, True),
    ("in-array-any-element", {"tags": {"$in": ["us", "eu"]}}, INVOICE, True),
    ("in-array-no-element", {"tags": {"$in": ["us", "ca"]}}, INVOICE, False),
    ("in-empty-array", {"empty_list": {"$in": ["x"]}}, INVOICE, False),
    ("in-empty-array-item", {"empty_list": {"$in": [[]]}}, INVOICE, True),
    ("nin", {"customer.country": {"$nin": ["US", "CA"]}}, INVOICE, True),
    ("nin-no", {"customer.country": {"$nin": ["DE"]}}, INVOICE, False),
    ("nin-missing", {"absent": {"$nin": ["DE"]}}, INVOICE, True),
    ("nin-empty", {"status": {"$nin": []}}, INVOICE, True),
    ("nin-bool-vs-int", {"paid": {"$nin": [1]}}, INVOICE, True),
    ("nin-array-element", {"tags": {"$nin": ["vip"]}}, INVOICE, False),
    ("nin-array-none", {"tags": {"$nin": ["us"]}}, INVOICE, True),
    # -- $exists -------------------------------------------------------------------------
    ("exists-true", {"status": {"$exists": True}}, INVOICE, True),
    ("exists-true-null", {"note": {"$exists": True}}, INVOICE, True),
    ("exists-true-missing", {"absent": {"$exists": True}}, INVOICE, False),
    ("exists-false-missing", {"absent": {"$exists": False}}, INVOICE, True),
    ("exists-false-present", {"status": {"$exists": False}}, INVOICE, False),
    ("exists-false-null", {"note": {"$exists": False}}, INVOICE, False),
    ("exists-nested-missing", {"customer.address.city": {"$exists": False}}, INVOICE, True),
    ("exists-and-eq", {"note": {"$exists": True, "$eq": None}}, INVOICE, True),
    # -- paths ---------------------------------------------------------------------------
    ("nested", {"customer.address.zip": "10115"}, INVOICE, True),
    ("nested-missing-leaf", {"customer.address.city": "B"}, INVOICE, False),
    ("nested-missing-middle", {"vendor.address.zip": "10115"}, INVOICE, False),
    ("through-scalar", {"status.length": 4}, INVOICE, False),
    ("through-null", {"note.x": {"$exists": False}}, INVOICE, True),
    ("index", {"items.0.sku": "A"}, INVOICE, True),
    ("index-second", {"items.1.qty": 0}, INVOICE, True),
    ("index-scalar-list", {"tags.2": 3}, INVOICE, True),
    ("index-nested-lists", {"matrix.1.0": 3}, INVOICE, True),
    ("index-out-of-range", {"items.2.sku": {"$exists": False}}, INVOICE, True),
    ("index-out-of-range-eq", {"items.2.sku": "A"}, INVOICE, False),
    ("index-leading-zero", {"items.00.sku": {"$exists": False}}, INVOICE, True),
    ("index-negative", {"items.-1.sku": {"$exists": False}}, INVOICE, True),
    ("index-huge", {"items.99999999999999999999.sku": {"$exists": False}}, INVOICE, True),
    ("index-unicode-digit", {"items.٠.sku": {"$exists": False}}, INVOICE, True),
    ("no-implicit-array-traversal", {"items.sku": {"$exists": False}}, INVOICE, True),
    ("digit-key-on-object", {"0": "key zero"}, INVOICE, True),
    ("digit-key-not-index-of-str", {"status.0": {"$exists": False}}, INVOICE, True),
    ("dot-in-payload-key-not-reachable", {"weird.key": {"$exists": False}}, INVOICE, True),
    ("root-array-index", {"0.a": 1}, [{"a": 1}], True),
    ("root-array-no-key", {"a": {"$exists": False}}, [{"a": 1}], True),
    ("root-null", {"a": {"$exists": False}}, None, True),
    ("root-null-eq", {"a": None}, None, False),
    ("root-scalar", {"a": {"$ne": 1}}, 5, True),
    ("root-string", {"0": "a"}, "abc", False),
    ("tuple-payload-as-array", {"a.1": 2}, {"a": (1, 2)}, True),
    # -- several entries, logical operators ----------------------------------------------
    ("empty-filter", {}, INVOICE, True),
    ("empty-filter-null", {}, None, True),
    ("empty-filter-scalar", {}, "x", True),
    ("and-implicit", {"status": "paid", "currency": "EUR"}, INVOICE, True),
    ("and-implicit-no", {"status": "paid", "currency": "USD"}, INVOICE, False),
    ("and", {"$and": [{"status": "paid"}, {"amount": {"$gte": 100}}]}, INVOICE, True),
    ("and-no", {"$and": [{"status": "paid"}, {"amount": {"$gte": 200}}]}, INVOICE, False),
    ("and-empty-item", {"$and": [{}]}, INVOICE, True),
    ("or", {"$or": [{"status": "refunded"}, {"status": "paid"}]}, INVOICE, True),
    ("or-no", {"$or": [{"status": "refunded"}, {"status": "void"}]}, INVOICE, False),
    ("or-missing", {"$or": [{"absent": 1}, {"absent2": {"$exists": True}}]}, INVOICE, False),
    ("not", {"$not": {"customer.test": True}}, INVOICE, True),
    ("not-no", {"$not": {"customer.test": False}}, INVOICE, False),
    ("not-missing", {"$not": {"absent": 1}}, INVOICE, True),
    ("not-empty", {"$not": {}}, INVOICE, False),
    ("not-or", {"$not": {"$or": [{"currency": "USD"}, {"amount": {"$lt": 100}}]}}, INVOICE, True),
    (
        "or-of-ands",
        {
            "$or": [
                {"$and": [{"currency": "USD"}, {"amount": {"$gt": 0}}]},
                {"$and": [{"currency": "EUR"}, {"$not": {"customer.test": True}}]},
            ]
        },
        INVOICE,
        True,
    ),
    (
        "and-with-paths",
        {"status": "paid", "$or": [{"customer.country": "FR"}, {"tags": "vip"}]},
        INVOICE,
        True,
    ),
    (
        "nested-deep-no",
        {"$and": [{"$or": [{"$not": {"status": "paid"}}, {"amount": {"$lt": 0}}]}]},
        INVOICE,
        False,
    ),
    # -- the issue's example -------------------------------------------------------------
    (
        "issue",
        {"amount": {"$gte": 100}, "customer.country": {"$in": ["DE", "FR"]}},
        INVOICE,
        True,
    ),
    (
        "issue-string-amount",
        {"amount": {"$gte": 100}, "customer.country": {"$in": ["DE", "FR"]}},
        {"amount": "150", "customer": {"country": "FR"}},
        False,
    ),
]


@pytest.mark.parametrize(
    ("spec", "payload", "expected"),
    [pytest.param(s, p, e, id=i) for i, s, p, e in MATCH_TABLE],
)
def test_matches(spec: dict[str, Any], payload: Any, expected: bool) -> None:
    validate_filter(spec)
    assert matches(spec, payload) is expected
    assert compile_filter(spec)(payload) is expected
    assert matcher(spec)(payload) is expected


# (id, filter, expected FilterError.path, a fragment of the message)
ERROR_TABLE: list[tuple[str, Any, str, str]] = [
    ("not-object-array", [1, 2], "filter", "a filter is a JSON object, got array"),
    ("not-object-string", "amount", "filter", "got string"),
    ("not-object-number", 5, "filter", "got number"),
    ("not-object-null", None, "filter", "got null"),
    ("not-object-bool", True, "filter", "got boolean"),
    ("non-string-key", {1: 2}, "filter", "keys are strings"),
    ("empty-path", {"": 1}, "filter", "empty path"),
    ("leading-dot", {".a": 1}, "filter", "invalid path '.a'"),
    ("trailing-dot", {"a.": 1}, "filter", "invalid path 'a.'"),
    ("double-dot", {"a..b": 1}, "filter", "invalid path 'a..b'"),
    ("only-dot", {".": 1}, "filter", "invalid path '.'"),
    ("nested-bad-path", {"$or": [{"a": 1}, {"x..y": 1}]}, "filter.$or[1]", "'x..y'"),
    ("path-too-long", {"a" * (MAX_PATH_LENGTH + 1): 1}, "filter", "longer than 256"),
    (
        "path-too-many-segments",
        {".".join(["a"] * (MAX_PATH_SEGMENTS + 1)): 1},
        "filter",
        "more than 32 segments",
    ),
    (
        "unknown-top-operator",
        {"$where": "1"},
        "filter.$where",
        "unknown operator '$where'; expected a dotted path or one of $and, $or, $not",
    ),
    ("unknown-top-dollar", {"$": 1}, "filter.$", "unknown operator '$'"),
    ("field-operator-at-top", {"$gt": 1}, "filter.$gt", "'$gt' is a field operator"),
    ("field-exists-at-top", {"$exists": True}, "filter.$exists", "'$exists' is a field operator"),
    (
        "unknown-field-operator",
        {"amount": {"$regex": "x"}},
        "filter.amount",
        "unknown operator '$regex'; expected one of $eq, $ne, $gt, $gte, $lt, $lte, $in, "
        "$nin, $exists",
    ),
    ("unknown-field-operator-case", {"amount": {"$GT": 1}}, "filter.amount", "'$GT'"),
    (
        "unknown-among-known",
        {"amount": {"$gt": 1, "$size": 2}},
        "filter.amount",
        "unknown operator '$size'",
    ),
    (
        "mixed-operator-object",
        {"amount": {"$gt": 1, "plain": 2}},
        "filter.amount",
        "mixes operators ($gt) with plain keys ('plain')",
    ),
    (
        "mixed-operator-object-nested",
        {"$and": [{"customer.address": {"zip": "1", "$exists": True}}]},
        "filter.$and[0].customer.address",
        "mixes operators ($exists)",
    ),
    ("and-not-list", {"$and": {"a": 1}}, "filter.$and", "'$and' needs a non-empty array"),
    ("and-empty", {"$and": []}, "filter.$and", "got an empty array"),
    ("or-empty", {"$or": []}, "filter.$or", "'$or' needs a non-empty array"),
    ("or-null", {"$or": None}, "filter.$or", "got null"),
    ("or-item-not-object", {"$or": [{"a": 1}, "b"]}, "filter.$or[1]", "got string"),
    ("or-item-list", {"$or": [[{"a": 1}]]}, "filter.$or[0]", "got array"),
    ("not-list", {"$not": [{"a": 1}]}, "filter.$not", "'$not' needs a filter object, got array"),
    ("not-bool", {"$not": True}, "filter.$not", "got boolean"),
    ("not-inside-condition", {"a": {"$not": {"$gt": 1}}}, "filter.a.$not", "logical operator"),
    ("or-inside-condition", {"a": {"$or": [1, 2]}}, "filter.a.$or", "'$or' is a logical"),
    ("and-inside-condition", {"a": {"$and": []}}, "filter.a.$and", "'$and' is a logical"),
    ("gt-array", {"amount": {"$gt": [1]}}, "filter.amount.$gt", "'$gt' needs a number or a"),
    ("gte-object", {"amount": {"$gte": {}}}, "filter.amount.$gte", "got object"),
    ("lt-bool", {"amount": {"$lt": True}}, "filter.amount.$lt", "got boolean"),
    ("lte-null", {"amount": {"$lte": None}}, "filter.amount.$lte", "got null"),
    ("gt-nan", {"amount": {"$gt": math.nan}}, "filter.amount.$gt", "not a JSON number"),
    ("gt-infinity", {"amount": {"$gt": math.inf}}, "filter.amount.$gt", "not a JSON number"),
    ("in-number", {"amount": {"$in": 5}}, "filter.amount.$in", "'$in' needs an array, got num"),
    ("in-string", {"amount": {"$in": "DE"}}, "filter.amount.$in", "got string"),
    ("nin-object", {"amount": {"$nin": {"a": 1}}}, "filter.amount.$nin", "'$nin' needs an array"),
    (
        "in-too-many",
        {"a": {"$in": list(range(MAX_LIST_ITEMS + 1))}},
        "filter.a.$in",
        "1001 values, more than 1000",
    ),
    ("in-item-nan", {"a": {"$in": [1, math.nan]}}, "filter.a.$in[1]", "not a JSON number"),
    ("exists-number", {"a": {"$exists": 1}}, "filter.a.$exists", "true or false, got number"),
    ("exists-string", {"a": {"$exists": "true"}}, "filter.a.$exists", "got string"),
    ("exists-null", {"a": {"$exists": None}}, "filter.a.$exists", "got null"),
    ("bare-nan", {"a": math.nan}, "filter.a", "not a JSON number"),
    ("bare-set", {"a": {1, 2}}, "filter.a", "not a JSON value: set"),
    ("bare-tuple", {"a": (1, 2)}, "filter.a", "not a JSON value: tuple"),
    ("eq-object-int-key", {"a": {"$eq": {1: 2}}}, "filter.a.$eq", "object keys are strings"),
    ("eq-deep-bad", {"a": {"$eq": {"b": [1, {"c": math.inf}]}}}, "filter.a.$eq.b[1].c", "inf"),
    (
        "error-deep-inside",
        {"$or": [{"a": 1}, {"$and": [{"$not": {"amount": {"$gte": "x", "$in": 1}}}]}]},
        "filter.$or[1].$and[0].$not.amount.$in",
        "'$in' needs an array",
    ),
]


@pytest.mark.parametrize(
    ("spec", "path", "says"),
    [pytest.param(s, p, m, id=i) for i, s, p, m in ERROR_TABLE],
)
def test_validation_errors(spec: Any, path: str, says: str) -> None:
    with pytest.raises(FilterError) as caught:
        validate_filter(spec)
    error = caught.value
    assert isinstance(error, ValueError)
    assert error.path == path
    assert says in error.message
    assert str(error) == f"{path}: {error.message}"
    with pytest.raises(FilterError):
        compile_filter(spec)


def _nested_not(levels: int) -> dict[str, Any]:
    spec: dict[str, Any] = {"a": 1}
    for _ in range(levels - 1):
        spec = {"$not": spec}
    return spec


def _nested_value(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels - 1):
        value = [value]
    return value


LIMIT_TABLE: list[tuple[str, Any, bool, str]] = [
    # (id, filter, valid, fragment of the error)
    ("depth-at-limit", _nested_not(MAX_DEPTH), True, ""),
    ("depth-over-limit", _nested_not(MAX_DEPTH + 1), False, "nested deeper than 16 levels"),
    (
        "depth-over-limit-or",
        {"$or": [_nested_not(MAX_DEPTH)]},
        False,
        "nested deeper than 16 levels",
    ),
    # one filter object + entries: 1 + 999 = MAX_NODES
    ("nodes-at-limit", {f"k{i}": i for i in range(MAX_NODES - 1)}, True, ""),
    ("nodes-over-limit", {f"k{i}": i for i in range(MAX_NODES)}, False, "more than 1000 cond"),
    (
        "nodes-over-limit-operators",
        {f"k{i}": {"$gt": 0, "$lt": 9} for i in range(400)},
        False,
        "more than 1000 conditions",
    ),
    ("in-at-limit", {"a": {"$in": list(range(MAX_LIST_ITEMS))}}, True, ""),
    (
        "values-over-limit",
        {f"k{i}": {"$in": list(range(MAX_LIST_ITEMS))} for i in range(MAX_VALUES // 1000)},
        False,
        "more than 10000 values",
    ),
    ("value-depth-at-limit", {"a": _nested_value(MAX_VALUE_DEPTH)}, True, ""),
    (
        "value-depth-over-limit",
        {"a": _nested_value(MAX_VALUE_DEPTH + 1)},
        False,
        "nested deeper than 16 levels",
    ),
    ("path-at-length-limit", {"a" * MAX_PATH_LENGTH: 1}, True, ""),
    ("path-at-segment-limit", {".".join(["a"] * MAX_PATH_SEGMENTS): 1}, True, ""),
    ("very-deep-input", _nested_not(100_000), False, "nested deeper than 16 levels"),
]


@pytest.mark.parametrize(
    ("spec", "valid", "says"),
    [pytest.param(s, v, m, id=i) for i, s, v, m in LIMIT_TABLE],
)
def test_limits(spec: Any, valid: bool, says: str) -> None:
    if valid:
        validate_filter(spec)
        assert isinstance(compile_filter(spec)({}), bool)
    else:
        with pytest.raises(FilterError, match=says):
            validate_filter(spec)


def test_limits_count_toward_the_whole_filter_not_one_level() -> None:
    half = {f"k{i}": i for i in range(MAX_NODES // 2)}
    with pytest.raises(FilterError, match="more than 1000 conditions"):
        validate_filter({"$and": [half, half]})


def test_matcher_caches_by_canonical_json() -> None:
    first = matcher({"a": 1, "b": {"$in": [1, 2]}})
    assert matcher({"b": {"$in": [1, 2]}, "a": 1}) is first
    assert matcher({"a": 1.0, "b": {"$in": [1, 2]}}) is not first  # 1.0 is another filter
    assert matcher({"a": True, "b": {"$in": [1, 2]}}) is not first


@pytest.mark.parametrize(
    "spec",
    [
        {"amount": {"$regex": "x"}},
        {"$or": []},
        [1],
        None,
        {"a": {1, 2}},
        {"a": math.nan},
        _nested_not(MAX_DEPTH + 1),
    ],
    ids=["unknown-operator", "empty-or", "array", "null", "not-json", "nan", "too-deep"],
)
def test_an_invalid_filter_matches_nothing_and_never_raises(spec: Any) -> None:
    for payload in (INVOICE, None, {}, [], 1, "x"):
        assert matcher(spec)(payload) is False
    with pytest.raises(FilterError):
        matches(spec, INVOICE)


def test_matches_raises_afresh_for_the_same_invalid_filter() -> None:
    for _ in range(3):
        with pytest.raises(FilterError) as caught:
            matches({"a": {"$bad": 1}}, {})
        assert caught.value.path == "filter.a" and "'$bad'" in caught.value.message


def test_negations_are_exact_complements() -> None:
    """$ne is not $eq and $nin is not $in, on every payload of the fuzz loop."""
    rng = random.Random(7)
    for _ in range(300):
        payload = {"v": _random_value(rng, 3)}
        operand = _random_value(rng, 2, strict=True)
        items = [_random_value(rng, 1, strict=True) for _ in range(rng.randrange(4))]
        assert matches({"v": {"$ne": operand}}, payload) is not matches(
            {"v": {"$eq": operand}}, payload
        )
        assert matches({"v": {"$nin": items}}, payload) is not matches(
            {"v": {"$in": items}}, payload
        )


# -- fuzz: every valid filter of the tables, against random-ish payloads, never raises -----

_KEYS = ["a", "b", "0", "1", "amount", "status", "customer", "country", "tags", "items", "$x"]
_SCALARS: list[Any] = [
    None,
    True,
    False,
    0,
    1,
    -1,
    1.0,
    0.5,
    150,
    2**70,
    -(2**70),
    1e308,
    math.nan,
    math.inf,
    -math.inf,
    "",
    "DE",
    "paid",
    "150",
    "vip",
    "\x00",
    "é",
    "\U0001f600",
]


_JSON_SCALARS = [v for v in _SCALARS if not (isinstance(v, float) and not math.isfinite(v))]


def _random_value(rng: random.Random, depth: int, *, strict: bool = False) -> Any:
    """A random payload value; ``strict``: JSON only (no NaN or infinities), as operands."""
    roll = rng.random()
    if depth <= 0 or roll < 0.5:
        return rng.choice(_JSON_SCALARS if strict else _SCALARS)
    if roll < 0.75:
        return [_random_value(rng, depth - 1, strict=strict) for _ in range(rng.randrange(4))]
    return {
        rng.choice(_KEYS): _random_value(rng, depth - 1, strict=strict)
        for _ in range(rng.randrange(5))
    }


def _deep(levels: int, leaf: Any, wrap: str) -> Any:
    value = leaf
    for _ in range(levels):
        value = [value] if wrap == "list" else {"a": value, "0": value}
    return value


VALID_FILTERS = [spec for _, spec, _, _ in MATCH_TABLE] + [
    spec for _, spec, valid, _ in LIMIT_TABLE if valid
]


def test_fuzz_matching_never_raises() -> None:
    rng = random.Random(20240501)
    compiled = [(spec, compile_filter(spec)) for spec in VALID_FILTERS]
    payloads: list[Any] = [INVOICE, None, [], {}, 0, "", True]
    payloads += [_random_value(rng, 5) for _ in range(150)]
    payloads += [{"amount": _random_value(rng, 2), "customer": _random_value(rng, 3)}]
    payloads += [
        _deep(5_000, 1, "list"),  # far deeper than any recursion limit
        {"a": _deep(5_000, [1], "list"), "tags": _deep(2_000, "vip", "list")},
        _deep(50, {"amount": 150}, "dict"),
    ]
    for payload in payloads:
        for spec, predicate in compiled:
            result = predicate(payload)
            assert isinstance(result, bool), (spec, payload)
            assert matcher(spec)(payload) is result


def test_fuzz_random_filters_never_raise() -> None:
    """Random specs: either a FilterError at validation, or a predicate that never raises."""
    rng = random.Random(99)
    operators = ["$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists", "$x"]
    valid = 0
    for _ in range(500):
        spec: dict[str, Any] = {}
        for _ in range(rng.randrange(1, 4)):
            path = ".".join(rng.choice(_KEYS[:-1]) for _ in range(rng.randrange(1, 4)))
            if rng.random() < 0.3:
                spec[path] = _random_value(rng, 2)
            else:
                op = rng.choice(operators)
                spec[path] = {op: _random_value(rng, 2)}
        if rng.random() < 0.2:
            spec = {rng.choice(["$and", "$or"]): [spec, {"b": 1}]}
        if rng.random() < 0.1:
            spec = {"$not": spec}
        try:
            predicate = compile_filter(spec)
        except FilterError as exc:
            assert exc.path.startswith("filter") and exc.message
            continue
        valid += 1
        json.dumps(spec, allow_nan=False)  # what validates is JSON
        for _ in range(5):
            assert isinstance(predicate(_random_value(rng, 4)), bool)
    assert valid > 50
