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
