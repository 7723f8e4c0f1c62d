"""Bounds on what users may type: ids and dates the database and date maths can hold."""

import re

MAX_ID = 2**31 - 1  # the database's integer ids; larger numbers overflow some drivers
_ID_TEXT = re.compile(r"[0-9]{1,10}")  # ASCII only: "²".isdigit() is True, int("²") raises
# Control characters but tab and line breaks (PostgreSQL text refuses NUL; none is ever meant).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def storable(text: str) -> bool:
    """Text the database can hold: no control characters, no lone surrogates (which broken
    JSON escapes and non-UTF-8 shell arguments produce)."""
    if _CONTROL.search(text):
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def sane_moment(moment) -> bool:
    """A date or datetime the clinic could mean (years 1900-2999); others overflow date maths."""
    return moment is not None and 1900 <= moment.year <= 2999


def sane_id(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID


def parse_id(raw) -> int | None:
    """An id from a query string, form or JSON: ASCII digits (or an int) in the database's
    range, else None."""
    if isinstance(raw, str) and _ID_TEXT.fullmatch(raw.strip()):
        raw = int(raw.strip())
    return raw if sane_id(raw) else None
