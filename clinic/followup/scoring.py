"""Outcome scores of a check-in (domain spec §3): pure functions, thresholds from outcomes.json.

A change is always signed so that positive means better: baseline − follow-up for pain and
disability, follow-up − baseline for walking and standing minutes. A responder flag is None
when it can't be judged (no baseline, no answer, or only a percentage rule and a zero baseline).
Follow-up values out of range raise ValueError; a baseline out of range counts as missing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Any

PACKAGED = Path(__file__).parent / "outcomes.json"

# The keys of CheckIn.scores and CheckIn.responders; other modules read them.
SCORE_KEYS = ("nprs_back", "nprs_leg", "walk_minutes", "stand_minutes", "global_change", "odi_pct")
RESPONDER_KEYS = ("nprs_back", "nprs_leg", "odi", "walk_minutes", "stand_minutes")


@dataclass(frozen=True)
class Outcomes:
    """The scoring rules of one version of outcomes.json."""

    version: str
    nprs: Mapping[str, Any]
    odi: Mapping[str, Any]
    minutes: Mapping[str, Any]
    global_change: Mapping[str, Any]
    screen: Mapping[str, Any]
    wound_review: Mapping[str, Any]  # {field: [answers that open a nurse task]}


@lru_cache(maxsize=4)
def load_outcomes(path: str = "") -> Outcomes:
    """The packaged rules, or a clinic's reviewed copy at ``path``."""
    data = json.loads(Path(path or PACKAGED).read_text())
    return Outcomes(
        version=str(data["version"]),
        nprs=data["nprs"],
        odi=data["odi"],
        minutes=data["minutes"],
        global_change=data["global_change"],
        screen=data["screen"],
        wound_review=data.get("wound_review", {}).get("answers", {}),
    )


@dataclass(frozen=True)
class Change:
    baseline: int | None
    value: int | None
    delta: int | None  # positive = better
    pct: float | None  # delta as a percentage of the baseline, one decimal; None if baseline 0
    responder: bool | None


def _usable(value: Any, low: int, high: int) -> int | None:
    """A baseline as a whole number in range, or None (a baseline may be anything stored)."""
    ok = isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
    return value if ok else None


def _check(value: int | None, low: int, high: int, what: str) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{what} must be a whole number from {low} to {high}")


def _change(
    baseline: int | None,
    value: int | None,
    *,
    better_when_lower: bool,
    points: float | None,
    pct: float | None,
) -> Change:
    if baseline is None or value is None:
        return Change(baseline, value, None, None, None)
    delta = baseline - value if better_when_lower else value - baseline
    percent = round(delta * 100 / baseline, 1) if baseline else None
    verdicts = []
    if points is not None:
        verdicts.append(Fraction(delta) >= Fraction(str(points)))
    if pct is not None and baseline:
        # exact: delta / baseline >= pct / 100, without float rounding at the threshold
        verdicts.append(Fraction(delta * 100, baseline) >= Fraction(str(pct)))
    responder = any(verdicts) if verdicts else None
    return Change(baseline, value, delta, percent, responder)


def nprs_change(baseline: int | None, value: int | None, rules: Outcomes) -> Change:
    """NPRS change (baseline − follow-up); responder if Δ ≥ 2 points or ≥ 30 % (by default)."""
    low, high = rules.nprs["min"], rules.nprs["max"]
    _check(value, low, high, "NPRS")
    return _change(
        _usable(baseline, low, high),
        value,
        better_when_lower=True,
        points=rules.nprs.get("responder_points"),
        pct=rules.nprs.get("responder_pct"),
    )


def odi_percent(items: Sequence[int | None], rules: Outcomes) -> int | None:
    """ODI 0–100 (higher = worse) from section scores 0–5; None when too few are answered.

    A skipped section drops 5 from the denominator; the result is rounded half up.
    """
    odi = rules.odi
    if len(items) != odi["sections"]:
        raise ValueError(f"the ODI has {odi['sections']} sections, got {len(items)}")
    answered = [x for x in items if x is not None]
    for x in answered:
        _check(x, odi["item_min"], odi["item_max"], "An ODI section")
    if len(answered) < odi["min_answered"]:
        return None
    total, count = sum(answered), len(answered)
    # round(total / (item_max * count) * 100), half up, in integers
    numerator, denominator = 200 * total + odi["item_max"] * count, 2 * odi["item_max"] * count
    return numerator // denominator


def odi_change(baseline_pct: int | None, value_pct: int | None, rules: Outcomes) -> Change:
    """ODI change in points (baseline − follow-up) with its %; responder if Δ ≥ 10 points."""
    _check(value_pct, 0, 100, "ODI")
    return _change(
        _usable(baseline_pct, 0, 100),
        value_pct,
        better_when_lower=True,
        points=rules.odi.get("responder_points"),
        pct=rules.odi.get("responder_pct"),
    )


def minutes_change(baseline: int | None, value: int | None, rules: Outcomes) -> Change:
    """Walking or standing minutes change (follow-up − baseline); responder at ≥ 30 % more."""
    low, high = rules.minutes["min"], rules.minutes["max"]
    _check(value, low, high, "Minutes")
    return _change(
        _usable(baseline, low, high),
        value,
        better_when_lower=False,
        points=rules.minutes.get("responder_points"),
        pct=rules.minutes.get("responder_pct"),
    )


def global_change(value: int, rules: Outcomes) -> int:
    """The 7-point global change (1 very much worse … 4 the same … 7 very much better)."""
    if value is None:
        raise ValueError("Global change is required")
    _check(value, rules.global_change["min"], rules.global_change["max"], "Global change")
    return value


def changes(
    scores: Mapping[str, Any], baseline: Mapping[str, Any], rules: Outcomes
) -> dict[str, Change]:
    """Each domain's change from the baseline (keys of RESPONDER_KEYS)."""
    return {
        "nprs_back": nprs_change(baseline.get("nprs_back"), scores.get("nprs_back"), rules),
        "nprs_leg": nprs_change(baseline.get("nprs_leg"), scores.get("nprs_leg"), rules),
        "odi": odi_change(baseline.get("odi_pct"), scores.get("odi_pct"), rules),
        "walk_minutes": minutes_change(
            baseline.get("walk_minutes"), scores.get("walk_minutes"), rules
        ),
        "stand_minutes": minutes_change(
            baseline.get("stand_minutes"), scores.get("stand_minutes"), rules
        ),
    }


def score_checkin(
    answers: Mapping[str, Any],
    baseline: Mapping[str, Any],
    rules: Outcomes,
    *,
    odi_items: Sequence[int | None] | None = None,
) -> tuple[dict[str, Any], dict[str, bool | None]]:
    """(CheckIn.scores, CheckIn.responders) for validated answers against a baseline."""
    scores: dict[str, Any] = {
        "nprs_back": answers.get("nprs_back"),
        "nprs_leg": answers.get("nprs_leg"),
        "walk_minutes": answers.get("walk_minutes"),
        "stand_minutes": answers.get("stand_minutes"),
        "global_change": global_change(answers.get("global_change"), rules),
        "odi_pct": odi_percent(odi_items, rules) if odi_items is not None else None,
    }
    responders = {key: c.responder for key, c in changes(scores, baseline, rules).items()}
    return scores, responders
