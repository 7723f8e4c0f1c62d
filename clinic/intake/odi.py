"""The ODI at intake (domain spec 1.5 ``odi_items``, 3.1), asked only with a licensed pack.

A clinic that has loaded its ODI pack (``ODI_PACK_FILE``) gets the pack's ten sections at the
end of the symptoms step, in the form and in the API; without a pack they are not asked, and the
API refuses them as unknown fields. The questions, their codes (``odi_1``..``odi_10``, scored
0..5) and the percentage are the follow-up's (``questions.odi_fields``, ``scoring.odi_percent``):
one source for the baseline and every check-in. The answers keep the codes, the percentage and
the pack's ids, never its text.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from clinic.followup.questions import OdiPack, current_odi_pack, odi_fields
from clinic.followup.scoring import load_outcomes, odi_percent
from clinic.intake.fields import SECTIONS, SYMPTOMS, Field, Section

GROUP = "odi"
# What the intake adds to the answers besides the section scores (for the staff page and API).
SCORE_KEYS = ("odi_pct", "odi_instrument", "odi_version", "odi_language", "odi_scoring_version")


@lru_cache(maxsize=4)
def sections_for(pack: OdiPack | None) -> tuple[Section, ...]:
    """The intake's steps: with a pack, the symptoms step ends with its sections."""
    if pack is None:
        return SECTIONS
    minimum = load_outcomes().odi["min_answered"]
    group = odi_fields(pack, group=GROUP, min_answered=minimum)
    symptoms = dataclasses.replace(SYMPTOMS, fields=SYMPTOMS.fields + tuple(group))
    return tuple(symptoms if s is SYMPTOMS else s for s in SECTIONS)


@lru_cache(maxsize=4)
def fields_for(pack: OdiPack | None) -> dict[str, Field]:
    """Every intake field by id, the pack's sections included."""
    return {f.id: f for s in sections_for(pack) for f in s.fields}


def current_sections() -> tuple[Section, ...]:
    """The running clinic's intake steps (with its ODI pack, if it has loaded one)."""
    return sections_for(current_odi_pack())


def scored(answers: Mapping[str, Any], pack: OdiPack | None) -> dict[str, Any]:
    """Validated answers with the ODI % and the pack's ids added when the pack was asked."""
    out = dict(answers)
    if pack is None:
        return out
    rules = load_outcomes()
    ids = [f.id for f in fields_for(pack).values() if f.extra.get("group") == GROUP]
    percent = odi_percent([answers.get(i) for i in ids], rules)
    if percent is not None:
        out["odi_pct"] = percent
    out |= {
        "odi_instrument": pack.instrument,
        "odi_version": pack.version,
        "odi_language": pack.language,
        "odi_scoring_version": rules.version,
    }
    return out


def answer_rows(answers: Mapping[str, Any], pack: OdiPack | None) -> list[tuple[str, str, str]]:
    """(field id, label, value) of a stored intake ODI for the staff page.

    The section titles and statements are shown only from the loaded pack, and only when it is
    the one the patient answered; otherwise the section's number and score.
    """
    if "odi_version" not in answers:
        return []
    same = pack is not None and (pack.instrument, pack.version, pack.language) == (
        answers.get("odi_instrument"),
        answers["odi_version"],
        answers.get("odi_language"),
    )
    percent = answers.get("odi_pct")
    rows = [
        (
            "odi_pct",
            "ODI % (0 = no disability, 100 = most)",
            "not scored" if percent is None else str(percent),
        ),
        (
            "odi_version",
            "ODI version",
            f"{answers.get('odi_instrument')} {answers['odi_version']} "
            f"({answers.get('odi_language')}), scoring {answers.get('odi_scoring_version')}",
        ),
    ]
    for number in range(1, load_outcomes().odi["sections"] + 1):
        field_id, score = f"odi_{number}", answers.get(f"odi_{number}")
        title, statements = pack.sections[number - 1] if same else (f"ODI section {number}", ())
        if score is None:
            value = "not answered"
        else:
            value = f"{score} of 5" + (f": {statements[score]}" if statements else "")
        rows.append((field_id, title, value))
    return rows
