"""Money as the bot keeps it (integer cents) and as people and files read it (dollars).

**The rounding rule, stated once.** Amounts are whole cents. Whenever a product or a share comes
out with a fraction of a cent, it is rounded to the nearest cent, half a cent up (half-up), at one
place: per time entry (each entry's part in a week is paid `whole seconds × rate / 3600`,
rounded), and a referral share per entry (`that entry's pay × percent`, rounded). Every other figure
is a sum of those cents, so a statement's lines always add up to its total. Dollars from settings or
typed by a lead (a rate, a bonus, a cap) are turned into cents by the same rule. No float is ever
involved: durations are whole seconds, amounts integers, fractions `Decimal`.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

HOUR_SECONDS = 3600


def round_cents(amount_in_cents: Decimal) -> int:
    """A fractional amount of cents as whole cents: half-up (the one rule)."""
    return int(amount_in_cents.to_integral_value(rounding=ROUND_HALF_UP))


def cents(amount: Decimal) -> int:
    """Dollars (as typed, or as configured) in whole cents."""
    return round_cents(amount * 100)


def pay_cents(seconds: int, rate_cents: int | None) -> int:
    """The pay of one time entry (or of its part in a week): whole seconds × the hourly rate."""
    if not rate_cents:
        return 0
    return round_cents(Decimal(seconds * rate_cents) / HOUR_SECONDS)


def share_cents(amount_cents: int, percent_basis_points: int) -> int:
    """A percentage of an amount; percentages are kept in basis points (10% = 1000)."""
    return round_cents(Decimal(amount_cents) * percent_basis_points / 10_000)


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
