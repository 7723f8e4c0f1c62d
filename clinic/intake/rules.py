"""Red-flag triage and candidacy signals, computed from the rule files in ``rules/``.

The rules are data: the clinic may point ``INTAKE_RULES_DIR`` at its own reviewed copies. Every
result carries the version of the rules that produced it.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

from clinic.intake.conditions import evaluate, fields_named
from clinic.intake.fields import SURGERY_LEVEL_FIELDS

PACKAGED_RULES = Path(__file__).parent / "rules"


class Triage(enum.StrEnum):
    EMERGENCY = "emergency"
    URGENT = "urgent"
    ROUTINE = "routine"


TRIAGE_RANK = {Triage.EMERGENCY: 0, Triage.URGENT: 1, Triage.ROUTINE: 2}


@dataclass(frozen=True)
class RuleSet:
    red_flags: dict
    signals: dict
    consents: dict

    @property
    def version(self) -> str:
        return f"{self.red_flags['version']}+{self.signals['version']}"


@lru_cache(maxsize=4)
def load_rules(rules_dir: str = "") -> RuleSet:
    """Load the three rule files, from the clinic's directory when one is configured."""
    base = Path(rules_dir) if rules_dir else PACKAGED_RULES

    def read(name: str) -> dict:
        path = base / name
        if not path.exists():
            path = PACKAGED_RULES / name
        return json.loads(path.read_text())

    return RuleSet(read("red-flags.json"), read("signals.json"), read("consents.json"))


def current_rules() -> RuleSet:
    """The rules of the running app (its INTAKE_RULES_DIR, or the packaged defaults)."""
    from flask import current_app

    return load_rules(current_app.config["INTAKE_RULES_DIR"])


@dataclass(frozen=True)
class TriageResult:
    level: Triage
    red_flags: list[dict]  # [{field, tier, answer}] that fired
    notes: list[dict]  # long-standing, already-evaluated answers: DDX notes for the clinician
    version: str


def triage(answers: Mapping[str, Any], rules: RuleSet) -> TriageResult:
    """Which red flags fired, and the triage level they give."""
    spec = rules.red_flags
    fired, notes = [], []
    for field_id, tier in spec["tiers"].items():
        answer = answers.get(field_id)
        if answer in spec["firing_answers"]:
            fired.append({"field": field_id, "tier": tier, "answer": answer})
        elif answer in spec["note_answers"]:
            notes.append({"field": field_id, "tier": tier, "answer": answer})
    tiers = {f["tier"] for f in fired}
    if "emergency" in tiers:
        level = Triage.EMERGENCY
    elif "urgent" in tiers:
        level = Triage.URGENT
    else:
        level = Triage.ROUTINE
    return TriageResult(level, fired, notes, spec["version"])


def derived_facts(answers: Mapping[str, Any], clinician: Mapping[str, Any]) -> dict[str, Any]:
    """Facts the signal rules read besides the raw answers (clinician entries, derived scores)."""
    facts: dict[str, Any] = {**answers, **{k: v for k, v in clinician.items() if v is not None}}
    # the ODI the patient answered at intake (with a licensed pack), unless staff entered one
    # from a paper form: that is the later, deliberate entry
    if clinician.get("odi_external_score") is not None:
        facts["odi_score"] = clinician["odi_external_score"]
    elif answers.get("odi_pct") is not None:
        facts["odi_score"] = answers["odi_pct"]
    # every surgery described, and those of requests stored before surgeries were asked one by
    # one; the surgeries of a "four or more" beyond those described may be at any level
    surgery_levels = {level for key in SURGERY_LEVEL_FIELDS for level in answers.get(key) or []}
    if answers.get("tx_surgery_count") == "four_or_more":
        surgery_levels.add("unknown")
    targets = set(clinician.get("clin_target_levels") or [])
    if answers.get("tx_lumbar_surgery") and targets:
        if surgery_levels & targets:
            facts["prior_surgery_at_target"] = True
        elif "unknown" not in surgery_levels:
            # an unknown level may be a target level: it withholds only this "no"
            facts["prior_surgery_at_target"] = False
    return facts


def candidacy_signals(
    answers: Mapping[str, Any], clinician: Mapping[str, Any], rules: RuleSet, today: date
) -> list[dict]:
    """The clinician-only candidacy signals; never shown to the patient."""
    facts = derived_facts(answers, clinician)
    out = []
    for signal in rules.signals["signals"]:
        for outcome in signal["outcomes"]:
            if evaluate(outcome["when"], facts, today):
                out.append(
                    {
                        "code": signal["code"],
                        "level": outcome["level"],
                        "message": outcome["message"],
                        "evidence_field_ids": fields_named(outcome["when"]),
                        "source_ref": signal["source_ref"],
                    }
                )
                break
    return out
