"""A tiny predicate language over answers, shared by the form fields and the rule files.

A predicate is plain data, so rules can live in JSON:
``{"field": "insurance_type", "in": ["medicare_traditional"]}``, ``{"all": [...]}``,
``{"any": [...]}``, ``{"not": {...}}``. Time-based operators take ``today`` from the caller.
"""

from __future__ import annotations

from calendar import monthrange
from datetime import date
from typing import Any

Predicate = dict[str, Any]


def _months_between(earlier: date, later: date) -> int:
    months = (later.year - earlier.year) * 12 + (later.month - earlier.month)
    if later.day < earlier.day:
        months -= 1
    return months


def _as_date(value: Any, *, latest: bool = False) -> date | None:
    """A date, or a month-only YYYY-MM read as its first day (its last with ``latest``)."""
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            if len(value) == 7:
                first = date.fromisoformat(value + "-01")
                if not latest:
                    return first
                return date(first.year, first.month, monthrange(first.year, first.month)[1])
            return date.fromisoformat(value)
        except ValueError:
            return None
    return None


def age_on(born: date, today: date) -> int:
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def evaluate(pred: Predicate, answers: dict[str, Any], today: date) -> bool:
    """True when the predicate holds for these answers."""
    if "all" in pred:
        return all(evaluate(p, answers, today) for p in pred["all"])
    if "any" in pred:
        return any(evaluate(p, answers, today) for p in pred["any"])
    if "not" in pred:
        return not evaluate(pred["not"], answers, today)
    value = answers.get(pred["field"])
    present = value not in (None, "", [])
    if "present" in pred:
        return present is bool(pred["present"])
    if not present:
        return False
    for op, arg in pred.items():
        if op == "field":
            continue
        if not _OPS[op](value, arg, today):
            return False
    return True


def _cmp_number(fn):
    def op(value, arg, today):
        return isinstance(value, int | float) and not isinstance(value, bool) and fn(value, arg)

    return op


# A month-only date is read the way that raises the flag when it may apply: "more than N ago"
# from the month's first day (the oldest it can be), "less than N ago" from its last day.
def _months_ago(fn, *, latest: bool):
    def op(value, arg, today):
        when = _as_date(value, latest=latest)
        return when is not None and fn(_months_between(when, today), arg)

    return op


def _weeks_ago(fn, *, latest: bool):
    def op(value, arg, today):
        when = _as_date(value, latest=latest)
        return when is not None and fn((today - when).days / 7, arg)

    return op


def _age(fn):
    def op(value, arg, today):
        born = _as_date(value)
        return born is not None and fn(age_on(born, today), arg)

    return op


_OPS = {
    "eq": lambda v, a, t: v == a,
    "ne": lambda v, a, t: v != a,
    "in": lambda v, a, t: v in a,
    "not_in": lambda v, a, t: v not in a,
    "contains": lambda v, a, t: isinstance(v, list) and a in v,
    "contains_any": lambda v, a, t: isinstance(v, list) and any(x in v for x in a),
    "only": lambda v, a, t: isinstance(v, list) and all(x in a for x in v),
    "gte": _cmp_number(lambda v, a: v >= a),
    "gt": _cmp_number(lambda v, a: v > a),
    "lt": _cmp_number(lambda v, a: v < a),
    "lte": _cmp_number(lambda v, a: v <= a),
    "months_ago_gt": _months_ago(lambda m, a: m > a, latest=False),
    "weeks_ago_lt": _weeks_ago(lambda w, a: w < a, latest=True),
    "age_lt": _age(lambda y, a: y < a),
    "age_gte": _age(lambda y, a: y >= a),
}


def fields_named(pred: Predicate) -> list[str]:
    """Every field a predicate reads (for evidence lists)."""
    if "all" in pred or "any" in pred:
        out: list[str] = []
        for p in pred.get("all", pred.get("any", [])):
            out.extend(f for f in fields_named(p) if f not in out)
        return out
    if "not" in pred:
        return fields_named(pred["not"])
    return [pred["field"]]


def problems(pred: Any, known_fields: set[str], where: str) -> list[str]:
    """What is wrong with a predicate read from a rule file (an empty list when nothing).

    ``evaluate`` trusts its input: an unknown operator would fail every intake that reaches it,
    and a misspelled field would quietly never match.
    """
    if not isinstance(pred, dict) or not pred:
        return [f"{where}: a condition must be a non-empty object"]
    for combinator in ("all", "any"):
        if combinator in pred:
            parts = pred[combinator]
            if len(pred) != 1 or not isinstance(parts, list) or not parts:
                return [f"{where}: '{combinator}' takes a non-empty list and nothing beside it"]
            return [
                p
                for i, part in enumerate(parts)
                for p in problems(part, known_fields, f"{where}.{combinator}[{i}]")
            ]
    if "not" in pred:
        if len(pred) != 1:
            return [f"{where}: 'not' takes one condition and nothing beside it"]
        return problems(pred["not"], known_fields, f"{where}.not")
    found = []
    if pred.get("field") not in known_fields:
        found.append(f"{where}: unknown field {pred.get('field')!r}")
    unknown = sorted(set(pred) - {"field", "present"} - set(_OPS))
    if unknown:
        found.append(f"{where}: unknown operator {', '.join(map(repr, unknown))}")
    elif len(pred) < 2:
        found.append(f"{where}: no operator")
    return found
