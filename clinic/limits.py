"""Bounds on what users may type: ids and dates the database and date maths can hold."""

MAX_ID = 2**31 - 1  # the database's integer ids; larger numbers overflow some drivers


def sane_moment(moment) -> bool:
    """A date or datetime the clinic could mean (years 1900-2999); others overflow date maths."""
    return moment is not None and 1900 <= moment.year <= 2999


def sane_id(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID
