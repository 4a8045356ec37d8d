"""The monitor's numbers: every printed number stands for the value it prints (read back with the
same reader the cluster tests use), a missing value is a dash and never a 0."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cluster.monitor import units
from tests.monitor.frame_text import DASH, shows, span

Format = Callable[[float | None], str]
FORMATS: dict[str, tuple[Format, float]] = {
    # each format, and the largest value it is given in practice
    "rate": (units.rate, 1e7),
    "share": (units.share, 1.0),
    "seconds": (units.seconds, 1e5),
    "size": (units.size, 1024.0**5),
    "count": (units.count, 1e9),
}


@pytest.mark.parametrize("name", sorted(FORMATS))
@given(fraction=st.floats(min_value=0, max_value=1, allow_nan=False))
def test_the_printed_number_stands_for_the_value(name: str, fraction: float) -> None:
    fmt, top = FORMATS[name]
    value = fraction * top
    assert shows(fmt(value), value), (name, value, fmt(value))


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_no_value_is_a_dash(name: str) -> None:
    fmt, _ = FORMATS[name]
    assert fmt(None) == DASH
    assert not shows(fmt(None), 0.0)


@pytest.mark.parametrize(
    ("fmt", "value", "printed"),
    [
        (units.share, 0.00004, "<0.1 %"),  # a rare 5xx is not rounded away
        (units.rate, 0.004, "<0.01"),
        (units.rate, 0.0, "0"),
        (units.seconds, 0.0, "0 s"),
        (units.seconds, 0.0123, "12 ms"),
        (units.seconds, 0.0018, "1.8 ms"),
        (units.size, 256 * 1024**2, "256.0 MiB"),  # redis' 256mb
        (units.count, 1234.4, "1,234"),
    ],
)
def test_examples(fmt: Format, value: float, printed: str) -> None:
    assert fmt(value) == printed


def test_the_reader_refuses_what_the_monitor_never_prints() -> None:
    assert span("12 ms") == pytest.approx((0.0115, 0.0125))
    assert not shows("12 ms", 0.013)
    with pytest.raises(AssertionError):
        span("twelve")
