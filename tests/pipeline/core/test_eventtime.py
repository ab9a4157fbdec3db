"""micros: the epoch difference, whatever the datetime's zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st
from pydantic_core import TzInfo

from pipeline.core.eventtime import EPOCH, from_micros, micros

_ZONES = st.one_of(
    st.just(UTC),
    st.integers(-86_399, 86_399).map(TzInfo),
    st.integers(-1_439, 1_439).map(lambda m: timezone(timedelta(minutes=m))),
    st.just(ZoneInfo("Europe/Berlin")),  # not a fixed offset: the general path
)


@given(
    st.integers(-2 * 10**15, 4 * 10**15),
    _ZONES,
    st.booleans(),
)
def test_micros_is_the_difference_from_the_epoch(value: int, zone: object, convert: bool) -> None:
    at = from_micros(value)
    at = at.astimezone(zone) if convert else at.replace(tzinfo=zone)  # type: ignore[arg-type]
    assert micros(at) == (at - EPOCH) // timedelta(microseconds=1)
    if convert:
        assert micros(at) == value


def test_a_zone_equal_to_but_not_the_cached_one() -> None:
    first, second = TzInfo(3600), TzInfo(3600)
    at = datetime(2026, 1, 1, 12, 0, 0, 250_000, tzinfo=second)
    micros(datetime(2026, 1, 1, tzinfo=first))
    assert micros(at) == (at - EPOCH) // timedelta(microseconds=1)
