"""Formatting of signed percentages (`explorer.units`): what verify, the finalists and the recorded
scripts print for gains and their intervals."""

from __future__ import annotations

from explorer.units import percent_range, signed_percent


def test_signed_percent_writes_the_sign_and_one_decimal() -> None:
    assert signed_percent(0.323) == "+32.3%" and signed_percent(-0.1) == "-10.0%" and signed_percent(0.0) == "+0.0%"
    assert signed_percent(1.5) == "+150.0%" and signed_percent(0.00049) == "+0.0%" and signed_percent(-0.2) == "-20.0%"
    assert percent_range(0.314, 0.336) == "+31.4% to +33.6%" and percent_range(-0.05, 0.25) == "-5.0% to +25.0%"
