"""Money as the bot keeps it (integer cents) and as people and files read it (dollars)."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal


def cents(amount: Decimal) -> int:
    """Dollars (as typed, or as configured) in whole cents; a fraction of a cent rounds to the
    nearest cent, half to even."""
    return int((amount * 100).to_integral_value(rounding=ROUND_HALF_EVEN))


def dollars(amount_cents: int, always_cents: bool = False) -> str:
    """An amount for people: a dollar sign, thousands separators, and cents only when there are
    some (`$1,250`, `$87.50`). `always_cents` shows them on whole amounts too (`$300.00`), for
    earnings statements, whose amounts are sums and products that rarely come out whole."""
    sign = "-" if amount_cents < 0 else ""
    whole, rest = divmod(abs(amount_cents), 100)
    shown = f"{whole:,}.{rest:02d}" if rest or always_cents else f"{whole:,}"
    return f"{sign}${shown}"


def csv_dollars(amount_cents: int) -> str:
    """An amount for a spreadsheet cell: dollars with two decimals, no `$` or separators (`1250.00`)."""
    sign = "-" if amount_cents < 0 else ""
    whole, rest = divmod(abs(amount_cents), 100)
    return f"{sign}{whole}.{rest:02d}"
