"""A clinic's own rule files are checked before the app serves anyone."""

from __future__ import annotations

import json

import pytest

from clinic import create_app
from clinic.config import ConfigError
from clinic.intake import rule_check
from clinic.intake.rules import PACKAGED_RULES, load_rules


def _clinic_rules(tmp_path, name: str, change) -> str:
    data = json.loads((PACKAGED_RULES / name).read_text())
    change(data)
    (tmp_path / name).write_text(json.dumps(data))
    return str(tmp_path)


def _start(rules_dir: str):
    return create_app({"INTAKE_RULES_DIR": rules_dir, "SQLALCHEMY_DATABASE_URI": "sqlite://"})


def test_the_packaged_rules_pass():
    assert rule_check.problems(load_rules("")) == []
    assert "rf_trauma_recheck" in rule_check.RED_FLAG_QUESTIONS


def test_an_older_red_flag_file_without_a_new_question_stops_the_start(tmp_path):
    """A clinic's copy from before rf_trauma_recheck would have silently never raised it."""
    rules_dir = _clinic_rules(
        tmp_path, "red-flags.json", lambda d: d["tiers"].pop("rf_trauma_recheck")
    )
    with pytest.raises(ConfigError, match="no tier for the red-flag question 'rf_trauma_recheck'"):
        _start(rules_dir)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["tiers"].update(rf_fever="routine"), "tier 'routine' of 'rf_fever'"),
        (lambda d: d["tiers"].update(rf_feverr="urgent"), "'rf_feverr' is not a red-flag question"),
        (lambda d: d.update(firing_answers=[]), "'firing_answers' must be a non-empty list"),
        (lambda d: d.update(firing_answers=["yes"]), "'firing_answers' must be a non-empty list"),
        (lambda d: d.update(note_answers=["new"]), "cannot both fire and be a note"),
        (lambda d: d.pop("version"), "red-flags.json: no 'version'"),
        (lambda d: d.update(tiers=["rf_fever"]), "'tiers' must map"),
    ],
)
def test_a_broken_red_flag_file_is_refused(tmp_path, change, message):
    with pytest.raises(ConfigError, match=message):
        _start(_clinic_rules(tmp_path, "red-flags.json", change))


def _first_leaf(signals: dict) -> dict:
    when = signals["signals"][0]["outcomes"][0]["when"]
    while "field" not in when:
        when = next(iter(when.values()))
        when = when[0] if isinstance(when, list) else when
    return when


def _set_level(d):
    d["signals"][0]["outcomes"][0]["level"] = "maybe"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: _first_leaf(d).update(field="worse_standin"), "unknown field 'worse_standin'"),
        (lambda d: _first_leaf(d).update(greater_than=3), "unknown operator 'greater_than'"),
        (lambda d: _first_leaf(d).pop("eq"), "no operator"),
        (_set_level, "level 'maybe'"),
        (lambda d: d["signals"][0].update(outcomes=[]), "non-empty list of 'outcomes'"),
        (lambda d: d["signals"][0]["outcomes"][0].update(when={"all": []}), "'all' takes"),
    ],
)
def test_a_broken_signal_file_is_refused(tmp_path, change, message):
    with pytest.raises(ConfigError, match=message):
        _start(_clinic_rules(tmp_path, "signals.json", change))


def test_clinician_entries_and_derived_facts_are_known_fields(tmp_path):
    def use_them(d):
        d["signals"][0]["outcomes"][0]["when"] = {
            "all": [
                {"field": "clin_mme", "gte": 50},
                {"field": "prior_surgery_at_target", "eq": True},
                {"field": "odi_score", "present": True},
            ]
        }

    app = _start(_clinic_rules(tmp_path, "signals.json", use_them))
    assert app.config["INTAKE_RULES_DIR"] == str(tmp_path)


def test_a_rule_file_that_is_not_json_stops_the_start(tmp_path):
    (tmp_path / "red-flags.json").write_text("{ not json")
    with pytest.raises(ConfigError, match="cannot be read"):
        _start(str(tmp_path))


def _copy_with(tmp_path, packaged, change) -> str:
    data = json.loads(packaged.read_text())
    change(data)
    path = tmp_path / packaged.name
    path.write_text(json.dumps(data))
    return str(path)


def _start_with(**config):
    return create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://", **config})


def test_a_schedule_step_of_an_unknown_kind_stops_the_start(tmp_path):
    """It would have failed every send of that step (no subject, no template)."""
    from clinic.notifications import schedules

    def misspell(d):
        d["appointment_types"]["consultation"][1]["kind"] = "reminder_72"

    path = _copy_with(tmp_path, schedules.PACKAGED, misspell)
    with pytest.raises(ConfigError, match=r"NOTIFY_SCHEDULES_FILE .*unknown message kind"):
        _start_with(NOTIFY_SCHEDULES_FILE=path)


def test_a_schedule_step_with_two_timings_stops_the_start(tmp_path):
    from clinic.notifications import schedules

    def both(d):
        d["appointment_types"]["consultation"][1]["at_booking"] = True

    path = _copy_with(tmp_path, schedules.PACKAGED, both)
    with pytest.raises(ConfigError, match="give exactly one timing"):
        _start_with(NOTIFY_SCHEDULES_FILE=path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(resend_after_days=[3, 7, 10]), "at most two re-sends"),
        (lambda d: d["timepoints"][0].update(window_afterr=3), "cannot be read"),
        (lambda d: d["timepoints"][0].update(window_before=-2), "cannot be negative"),
    ],
)
def test_a_broken_follow_up_plan_stops_the_start(tmp_path, change, message):
    from clinic.followup import plan

    path = _copy_with(tmp_path, plan.PACKAGED, change)
    with pytest.raises(ConfigError, match=rf"FOLLOWUP_PLAN_FILE .*{message}"):
        _start_with(FOLLOWUP_PLAN_FILE=path)


def test_a_missing_instructions_file_stops_the_start(tmp_path):
    missing = str(tmp_path / "nowhere.json")
    with pytest.raises(ConfigError, match="APPOINTMENT_INSTRUCTIONS_FILE .*cannot be read"):
        _start_with(APPOINTMENT_INSTRUCTIONS_FILE=missing)


def test_a_configured_odi_pack_that_cannot_be_read_stops_the_start(tmp_path):
    pack = tmp_path / "odi.json"
    pack.write_text(json.dumps({"version": "x", "sections": [{"title": "t", "options": ["a"]}]}))
    with pytest.raises(ConfigError, match="ODI_PACK_FILE .*not an ODI pack"):
        _start_with(ODI_PACK_FILE=str(pack))
