"""Checks the rule files before the app serves anyone.

The rules are data a clinic may replace (``INTAKE_RULES_DIR``). A red-flag question without a
tier there would never raise its flag, and a misspelled field or operator in a signal would
hide the signal or fail every intake. ``create_app`` refuses to start on any of these.
"""

from __future__ import annotations

from clinic.intake import conditions
from clinic.intake.fields import FIELDS, RF_CHOICES
from clinic.intake.rules import Triage
from clinic.intake.services import CLINICIAN_FIELDS

RED_FLAG_QUESTIONS = frozenset(f.id for f in FIELDS.values() if f.choices == RF_CHOICES)
TIERS = frozenset({Triage.EMERGENCY, Triage.URGENT})
ANSWERS = frozenset(code for code, _ in RF_CHOICES) - {"no"}
# Facts rules.derived_facts adds besides the answers and the clinician's entries.
DERIVED_FACTS = frozenset({"odi_score", "prior_surgery_at_target"})
SIGNAL_LEVELS = frozenset({"support", "caution", "coverage", "likely_exclusion"})


def problems(rules) -> list[str]:
    """Everything wrong with a RuleSet, each naming its file and place."""
    return _red_flag_problems(rules.red_flags) + _signal_problems(rules.signals)


def _red_flag_problems(spec: dict) -> list[str]:
    where = "red-flags.json"
    found = [] if spec.get("version") else [f"{where}: no 'version'"]
    tiers = spec.get("tiers")
    if not isinstance(tiers, dict):
        return [*found, f"{where}: 'tiers' must map each red-flag question to a tier"]
    for question in sorted(RED_FLAG_QUESTIONS - set(tiers)):
        found.append(f"{where}: no tier for the red-flag question {question!r}")
    for question, tier in sorted(tiers.items()):
        if question not in RED_FLAG_QUESTIONS:
            found.append(f"{where}: {question!r} is not a red-flag question of the form")
        if tier not in TIERS:
            found.append(f"{where}: tier {tier!r} of {question!r} is not emergency or urgent")
    firing, notes = spec.get("firing_answers"), spec.get("note_answers", [])
    if not isinstance(firing, list) or not firing or not set(firing) <= ANSWERS:
        found.append(f"{where}: 'firing_answers' must be a non-empty list of {sorted(ANSWERS)}")
    if not isinstance(notes, list) or not set(notes) <= ANSWERS:
        found.append(f"{where}: 'note_answers' must be a list of {sorted(ANSWERS)}")
    elif isinstance(firing, list) and set(firing) & set(notes):
        found.append(f"{where}: an answer cannot both fire and be a note")
    return found


def _signal_problems(spec: dict) -> list[str]:
    where = "signals.json"
    found = [] if spec.get("version") else [f"{where}: no 'version'"]
    signals = spec.get("signals")
    if not isinstance(signals, list):
        return [*found, f"{where}: 'signals' must be a list"]
    known = set(FIELDS) | set(CLINICIAN_FIELDS) | DERIVED_FACTS
    for i, signal in enumerate(signals):
        code = signal.get("code") if isinstance(signal, dict) else None
        place = f"{where} {code or f'signal {i}'}"
        outcomes = signal.get("outcomes") if isinstance(signal, dict) else None
        if not code or not isinstance(outcomes, list) or not outcomes:
            found.append(f"{place}: needs a 'code' and a non-empty list of 'outcomes'")
            continue
        for j, outcome in enumerate(outcomes):
            if not isinstance(outcome, dict):
                found.append(f"{place} outcome {j}: must be an object")
                continue
            if outcome.get("level") not in SIGNAL_LEVELS:
                found.append(
                    f"{place} outcome {j}: level {outcome.get('level')!r} is not one of "
                    f"{sorted(SIGNAL_LEVELS)}"
                )
            if not outcome.get("message"):
                found.append(f"{place} outcome {j}: no 'message'")
            found.extend(conditions.problems(outcome.get("when"), known, f"{place} outcome {j}"))
    return found
