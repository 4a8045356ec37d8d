"""RFC 7240 Prefer fields as clients write them."""

from __future__ import annotations

import pytest

from services.common.prefer import preferences, says_return_representation


@pytest.mark.parametrize(
    ("fields", "wanted"),
    [
        (["return=representation"], True),
        (["Return = representation"], True),  # names case-insensitive, BWS around "="
        (['return="representation"'], True),  # a quoted-string value is the same word
        (["respond-async, return=representation"], True),
        (["respond-async", "return=representation; foo=bar"], True),  # several fields, params
        (["return=minimal"], False),
        (["return=Representation"], False),  # values are case-sensitive
        (["return=minimal, return=representation"], False),  # the first one counts
        (["return=minimal", "return=representation"], False),
        (['foo="a, return=representation"'], False),  # a comma inside quotes does not split
        (['handling=lenient; x="a;b", return=representation'], True),
        ([""], False),
        ([",,;="], False),
        ([], False),
    ],
)
def test_return_representation(fields: list[str], wanted: bool) -> None:
    assert says_return_representation(fields) is wanted


def test_every_preference_is_read_first_one_wins() -> None:
    found = preferences(['respond-async, wait=10, return="a \\"b\\""', "WAIT=20; x, Tz=UTC"])
    assert found == {"respond-async": "", "wait": "10", "return": 'a "b"', "tz": "UTC"}
