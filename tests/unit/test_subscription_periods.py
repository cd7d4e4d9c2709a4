"""Calendar periods of a subscription (docs/api.md, "Subscriptions"): anchored on the start, each boundary
computed from the anchor, month ends clamped."""

from __future__ import annotations

from datetime import datetime

import pytest

from payments.subscriptions import charge_key, period_bounds, shift

JAN31 = datetime(2027, 1, 31, 9, 30)


def test_a_month_after_january_31_is_the_last_day_of_february_then_march_31():
    assert period_bounds(JAN31, "month", 1, 1) == (JAN31, datetime(2027, 2, 28, 9, 30))
    assert period_bounds(JAN31, "month", 1, 2) == (datetime(2027, 2, 28, 9, 30), datetime(2027, 3, 31, 9, 30))
    assert period_bounds(JAN31, "month", 1, 3)[1] == datetime(2027, 4, 30, 9, 30)


def test_leap_years_give_february_29():
    anchor = datetime(2028, 1, 31)
    assert period_bounds(anchor, "month", 1, 1)[1] == datetime(2028, 2, 29)
    assert period_bounds(anchor, "month", 1, 2)[1] == datetime(2028, 3, 31)


def test_boundaries_come_from_the_anchor_never_from_the_previous_end():
    # adding a month to Feb 28 would give Mar 28; from the anchor it is Mar 31, and a year later Jan 31 again
    ends = [period_bounds(JAN31, "month", 1, n)[1] for n in range(1, 13)]
    assert ends[1] == datetime(2027, 3, 31, 9, 30)
    assert ends[-1] == datetime(2028, 1, 31, 9, 30)
    assert all(a < b for a, b in zip(ends, ends[1:]))
    # each period starts where the previous one ended
    assert all(period_bounds(JAN31, "month", 1, n + 1)[0] == period_bounds(JAN31, "month", 1, n)[1]
               for n in range(1, 24))


def test_interval_count_and_other_intervals():
    assert period_bounds(JAN31, "month", 3, 1)[1] == datetime(2027, 4, 30, 9, 30)
    assert period_bounds(JAN31, "month", 3, 2) == (datetime(2027, 4, 30, 9, 30), datetime(2027, 7, 31, 9, 30))
    assert period_bounds(datetime(2028, 2, 29), "year", 1, 1)[1] == datetime(2029, 2, 28)
    assert period_bounds(datetime(2028, 2, 29), "year", 1, 4)[1] == datetime(2032, 2, 29)
    assert period_bounds(JAN31, "week", 2, 2) == (datetime(2027, 2, 14, 9, 30), datetime(2027, 2, 28, 9, 30))
    assert period_bounds(JAN31, "day", 1, 3) == (datetime(2027, 2, 2, 9, 30), datetime(2027, 2, 3, 9, 30))
    assert shift(datetime(2027, 12, 15), "month", 1) == datetime(2028, 1, 15)


def test_bad_input_is_refused():
    with pytest.raises(ValueError):
        period_bounds(JAN31, "month", 1, 0)
    with pytest.raises(ValueError):
        shift(JAN31, "fortnight", 1)


def test_charge_keys_differ_per_period_and_retry():
    keys = {charge_key("sub_1", period, retry) for period in (1, 2) for retry in (0, 1, 2)}
    assert len(keys) == 6 and charge_key("sub_1", 2, 1) == "sub:sub_1:2:1"
