"""Outcome scoring (domain spec §3): pure functions, no app, no database."""

from __future__ import annotations

import json
import math
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clinic.followup import scoring
from clinic.followup.scoring import (
    load_outcomes,
    minutes_change,
    nprs_change,
    odi_change,
    odi_percent,
    score_checkin,
)

RULES = load_outcomes()
nprs = st.integers(0, 10)
minutes = st.integers(0, 240)
odi_item = st.one_of(st.none(), st.integers(0, 5))


def test_thresholds_are_versioned_data():
    data = json.loads(scoring.PACKAGED.read_text())
    assert RULES.version == data["version"] and RULES.version
    assert RULES.nprs["responder_points"] == 2 and RULES.nprs["responder_pct"] == 30
    assert RULES.odi["responder_points"] == 10 and RULES.odi["min_answered"] == 8
    assert RULES.minutes["responder_pct"] == 30


def test_a_clinic_copy_changes_the_thresholds(tmp_path):
    data = json.loads(scoring.PACKAGED.read_text())
    data["version"] = "clinic-strict"
    data["nprs"]["responder_points"] = 3
    data["nprs"]["responder_pct"] = 50
    path = tmp_path / "outcomes.json"
    path.write_text(json.dumps(data))
    strict = load_outcomes(str(path))
    assert strict.version == "clinic-strict"
    assert nprs_change(8, 6, RULES).responder is True
    assert nprs_change(8, 6, strict).responder is False


@pytest.mark.parametrize(
    ("baseline", "value", "delta", "pct", "responder"),
    [
        (6, 4, 2, 33.3, True),  # two points
        (8, 7, 1, 12.5, False),
        (3, 2, 1, 33.3, True),  # one point, but 33 %
        (10, 7, 3, 30.0, True),  # exactly 30 %
        (10, 8, 2, 20.0, True),  # exactly two points
        (5, 7, -2, -40.0, False),  # worse
        (0, 0, 0, None, False),  # % skipped at a zero baseline; the points rule still judges
        (0, 3, -3, None, False),
    ],
)
def test_nprs_change(baseline, value, delta, pct, responder):
    change = nprs_change(baseline, value, RULES)
    assert (change.delta, change.pct, change.responder) == (delta, pct, responder)


def test_nprs_without_a_baseline_is_unknown():
    assert nprs_change(None, 4, RULES) == scoring.Change(None, 4, None, None, None)
    assert nprs_change("7", 4, RULES).responder is None  # a stored baseline of the wrong type
    assert nprs_change(11, 4, RULES).responder is None


@pytest.mark.parametrize("bad", [-1, 11, 2.5, True, "3"])
def test_nprs_out_of_range_is_refused(bad):
    with pytest.raises(ValueError):
        nprs_change(5, bad, RULES)


@given(nprs, nprs)
def test_nprs_properties(baseline, value):
    change = nprs_change(baseline, value, RULES)
    assert change.delta == baseline - value
    assert (change.pct is None) == (baseline == 0)
    expected = change.delta >= 2 or (baseline > 0 and change.delta * 100 >= 30 * baseline)
    assert change.responder is expected
    if value >= baseline:
        assert change.responder is False


@pytest.mark.parametrize(
    ("items", "pct"),
    [
        ([0] * 10, 0),
        ([5] * 10, 100),
        ([2] * 10, 40),
        ([4, 4, 4, 4, 0, 0, 0, 0, None], None),  # nine sections: the wrong instrument
        ([4, 4, 4, 4, 0, 0, 0, 0, None, None], 40),  # 16/40
        ([4, 4, 4, 4, 0, 0, 0, 0, 0, None], 36),  # 16/45 = 35.6 %
        ([1, 0, 0, 0, 0, 0, 0, 0, None, None], 3),  # 2.5 % rounds half up
        ([3, 3, 3, 3, 3, 3, 3, None, None, None], None),  # only 7 answered
    ],
)
def test_odi_percent(items, pct):
    if len(items) != 10:
        with pytest.raises(ValueError):
            odi_percent(items, RULES)
        return
    assert odi_percent(items, RULES) == pct


@pytest.mark.parametrize("bad", [6, -1, 2.0, True])
def test_odi_item_out_of_range_is_refused(bad):
    with pytest.raises(ValueError):
        odi_percent([bad] + [0] * 9, RULES)


@given(st.lists(odi_item, min_size=10, max_size=10))
def test_odi_properties(items):
    answered = [x for x in items if x is not None]
    pct = odi_percent(items, RULES)
    if len(answered) < 8:
        assert pct is None
        return
    assert 0 <= pct <= 100
    exact = Fraction(sum(answered) * 100, 5 * len(answered))
    assert pct == math.floor(exact + Fraction(1, 2))  # rounded half up
    # answering one more section at 0 never raises the score (a section at 5 never lowers it)
    for i, x in enumerate(items):
        if x is None:
            assert odi_percent(items[:i] + [0] + items[i + 1 :], RULES) <= pct
            assert odi_percent(items[:i] + [5] + items[i + 1 :], RULES) >= pct


@pytest.mark.parametrize(
    ("baseline", "value", "delta", "pct", "responder"),
    [
        (50, 40, 10, 20.0, True),
        (50, 41, 9, 18.0, False),
        (20, 12, 8, 40.0, False),  # 40 % better, but the default rule is points only
        (30, 45, -15, -50.0, False),
        (None, 40, None, None, None),
    ],
)
def test_odi_change(baseline, value, delta, pct, responder):
    change = odi_change(baseline, value, RULES)
    assert (change.delta, change.pct, change.responder) == (delta, pct, responder)


@pytest.mark.parametrize(
    ("baseline", "value", "delta", "pct", "responder"),
    [
        (10, 13, 3, 30.0, True),
        (10, 12, 2, 20.0, False),
        (5, 60, 55, 1100.0, True),
        (30, 10, -20, -66.7, False),
        (0, 20, 20, None, None),  # no percentage from zero: left to the clinician
        (None, 20, None, None, None),
    ],
)
def test_minutes_change(baseline, value, delta, pct, responder):
    change = minutes_change(baseline, value, RULES)
    assert (change.delta, change.pct, change.responder) == (delta, pct, responder)


@given(minutes, minutes)
def test_minutes_properties(baseline, value):
    change = minutes_change(baseline, value, RULES)
    assert change.delta == value - baseline
    if baseline == 0:
        assert change.responder is None
    else:
        assert change.responder is (change.delta * 100 >= 30 * baseline)


@pytest.mark.parametrize("bad", [0, 8, None, "4"])
def test_global_change_is_one_to_seven(bad):
    with pytest.raises(ValueError):
        scoring.global_change(bad, RULES)
    assert [scoring.global_change(v, RULES) for v in range(1, 8)] == list(range(1, 8))


BASELINE = {"nprs_back": 6, "nprs_leg": 7, "walk_minutes": 5, "stand_minutes": 10, "odi_pct": 48}
ANSWERS = {
    "nprs_back": 3,
    "nprs_leg": 6,
    "walk_minutes": 20,
    "stand_minutes": 12,
    "global_change": 6,
}


def test_score_checkin_keys_and_flags():
    scores, responders = score_checkin(ANSWERS, BASELINE, RULES)
    assert scores == {**ANSWERS, "odi_pct": None}
    assert tuple(scores) == scoring.SCORE_KEYS
    assert responders == {
        "nprs_back": True,
        "nprs_leg": False,
        "odi": None,
        "walk_minutes": True,
        "stand_minutes": False,
    }
    assert json.loads(json.dumps(scores)) == scores  # stored in a JSON column as is


def test_score_checkin_with_odi_items():
    items = [2, 2, 2, 2, 1, 1, 1, 1, None, 2]  # 14/45 = 31 %
    scores, responders = score_checkin(ANSWERS, BASELINE, RULES, odi_items=items)
    assert scores["odi_pct"] == 31
    assert responders["odi"] is True  # 48 -> 31
    scores, responders = score_checkin(ANSWERS, {}, RULES, odi_items=items)
    assert responders == dict.fromkeys(scoring.RESPONDER_KEYS)


@given(
    nprs, nprs, minutes, minutes, st.integers(1, 7), st.lists(odi_item, min_size=10, max_size=10)
)
def test_score_checkin_always_gives_the_same_keys(back, leg, walk, stand, glob, items):
    answers = {
        "nprs_back": back,
        "nprs_leg": leg,
        "walk_minutes": walk,
        "stand_minutes": stand,
        "global_change": glob,
    }
    scores, responders = score_checkin(answers, BASELINE, RULES, odi_items=items)
    assert set(scores) == set(scoring.SCORE_KEYS)
    assert set(responders) == set(scoring.RESPONDER_KEYS)
    assert all(v in (True, False, None) for v in responders.values())
