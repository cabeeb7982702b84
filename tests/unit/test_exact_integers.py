"""``inexact_integer``: the first JSON integer webhookd could not keep exact (beyond 64 bits),
found by a digit-run pre-check that must never miss one."""

from __future__ import annotations

import pytest

from webhookd.schemas import inexact_integer


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"a": 1}', None),
        (b'{"a": 18446744073709551615}', None),  # 2**64 - 1: kept
        (b'{"a": -9223372036854775808}', None),  # -2**63: kept
        (b'{"a": "12345678901234567890123"}', None),  # a string, not an integer
        (b'{"a": 1.2345678901234567890123}', None),  # a float
        (b'{"a": 18446744073709551616}', ("a", 2**64)),
        (b'{"a": -9223372036854775809}', ("a", -(2**63) - 1)),
        (
            b'{"a": [0, {"b": 123456789012345678901234567890}]}',
            ("a.1.b", 12345678901234567890 * 10**10 + 1234567890),
        ),
        (b'{"x": "' + b"y" * 5000 + b'", "n": 99999999999999999999}', ("n", 99999999999999999999)),
        (b"\xd9\xa1" * 30, None),  # non-ASCII digits are not JSON digits (and not JSON)
        (b"not json 12345678901234567890", None),  # the normal parse reports it
    ],
)
def test_inexact_integer(body: bytes, expected: tuple[str, int] | None) -> None:
    assert inexact_integer(body) == expected
