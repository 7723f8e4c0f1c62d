"""The check-in's questions as data, their checks, and the clinic's licensed ODI pack.

Questions reuse the intake's ``Field`` (and so its accessible field template). No ODI item
text ships here: it comes only from the pack file a licensed clinic points ODI_PACK_FILE at.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

from flask import current_app

from clinic.followup.scoring import Outcomes
from clinic.intake.fields import RED_FLAGS, YES_NO, Field
from clinic.limits import sane_moment

logger = logging.getLogger(__name__)

FORM_VERSION = "checkin-2026.11-v1"

WOUND_SCREEN_LABELS = {
    "wound_bleeding": "Is blood soaking through the dressing on your back?",
    "wound_drainage": "Is fluid or pus leaking from the small cut on your back?",
    "wound_spreading_redness": "Is redness or swelling around the cut spreading?",
}
# Our own wording; 7 = very much better (see outcomes.json).
GLOBAL_CHANGE_CHOICES = (
    ("7", "Very much better"),
    ("6", "Much better"),
    ("5", "A little better"),
    ("4", "About the same"),
    ("3", "A little worse"),
    ("2", "Much worse"),
    ("1", "Very much worse"),
)
_DIGITS = re.compile(r"^[0-9]{1,6}$")
_DATE_US = re.compile(r"^(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})$")
_DATE_ISO = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")


@dataclass(frozen=True)
class OdiPack:
    """A licensed ODI as the clinic supplied it: ids, version, language and section text."""

    instrument: str
    version: str
    language: str
    sections: tuple[tuple[str, tuple[str, ...]], ...]  # (title, six statements scored 0..5)


@lru_cache(maxsize=4)
def load_odi_pack(path: str) -> OdiPack | None:
    """The pack at ``path``, or None (and an error in the log) if it is missing or malformed."""
    if not path:
        return None
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        sections = tuple(
            (str(s["title"]), tuple(str(o) for o in s["options"])) for s in data["sections"]
        )
        if len(sections) != 10 or any(len(options) != 6 for _, options in sections):
            raise ValueError("an ODI pack needs 10 sections of 6 statements")
        return OdiPack(
            str(data.get("instrument") or "odi"),
            str(data["version"]),
            str(data.get("language") or "en"),
            sections,
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        logger.error("ODI pack not loaded: %s", type(exc).__name__)
        return None


def current_odi_pack() -> OdiPack | None:
    return load_odi_pack(current_app.config.get("ODI_PACK_FILE") or "")


def odi_pack_for(timepoint) -> OdiPack | None:
    """The licensed ODI pack if this timepoint asks the ODI and the clinic has loaded one."""
    return current_odi_pack() if timepoint.odi_questions else None


def odi_ids(pack: OdiPack) -> list[str]:
    return [f"odi_{i}" for i in range(1, len(pack.sections) + 1)]


def odi_fields(pack: OdiPack, **extra: Any) -> list[Field]:
    """The pack's sections as questions ``odi_1``.. with answer codes 0..5 (the check-in's and
    the intake's); ``extra`` adds to each field's ``extra``."""
    return [
        Field(
            field_id,
            title,
            "choice",
            False,
            choices=tuple((str(score), text) for score, text in enumerate(options)),
            help="Choose the one statement that fits you best today.",
            extra={"int_codes": True, "odi": True, **extra},
        )
        for field_id, (title, options) in zip(odi_ids(pack), pack.sections, strict=True)
    ]


def screen_fields(wound: bool, rules: Outcomes) -> list[Field]:
    """The short red-flag screen (the intake's wording), then the wound items when asked."""
    intake = {f.id: f for f in RED_FLAGS.fields}
    fields = [intake[field_id] for field_id in rules.screen["red_flags"]]
    if wound:
        fields += [
            Field(
                field_id,
                WOUND_SCREEN_LABELS.get(field_id, field_id),
                "choice",
                True,
                choices=YES_NO,
            )
            for field_id in rules.screen["wound_items"]
        ]
    return fields


def question_fields(wound: bool, pack: OdiPack | None, rules: Outcomes) -> list[Field]:
    """Pain, walking and standing minutes, global change; the wound and ODI items if asked."""
    nprs, minutes = rules.nprs, rules.minutes
    fields = [
        Field(
            "nprs_back",
            "Back pain right now (0 = no pain, 10 = worst pain imaginable)",
            "int",
            True,
            min=nprs["min"],
            max=nprs["max"],
        ),
        Field(
            "nprs_leg",
            "Leg or buttock pain right now (0 = no pain, 10 = worst pain imaginable)",
            "int",
            True,
            min=nprs["min"],
            max=nprs["max"],
        ),
        Field(
            "walk_minutes",
            "About how many minutes can you walk before you have to stop, sit or lean?",
            "int",
            True,
            min=minutes["min"],
            max=minutes["max"],
            help=f"{minutes['min']} to {minutes['max']} minutes.",
        ),
        Field(
            "stand_minutes",
            "About how many minutes can you stand before you have to sit or lean?",
            "int",
            True,
            min=minutes["min"],
            max=minutes["max"],
            help=f"0 means you can't stand without support. Up to {minutes['max']}.",
        ),
        Field(
            "global_change",
            "Compared with before your treatment, how are your back and legs overall?",
            "choice",
            True,
            choices=GLOBAL_CHANGE_CHOICES,
            extra={"int_codes": True},
        ),
    ]
    if wound:
        fields.append(
            Field(
                "wound_clean_dry",
                "Does the small cut on your back look clean and dry?",
                "choice",
                True,
                choices=YES_NO,
            )
        )
    if pack is not None:
        fields += odi_fields(pack)
    return fields


def validate(
    fields: list[Field], form: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """Canonical answers and per-field messages for the posted values of these fields."""
    clean: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for field in fields:
        raw = form.get(field.id)
        raw = raw.strip() if isinstance(raw, str) else ""
        if field.kind == "int":
            message = f"Enter a whole number from {field.min} to {field.max}."
            if not raw:
                if field.required:
                    errors[field.id] = [message]
                else:
                    clean[field.id] = None
            elif not _DIGITS.match(raw) or not field.min <= int(raw) <= field.max:
                errors[field.id] = [message]
            else:
                clean[field.id] = int(raw)
        else:
            if not raw:
                if field.required:
                    errors[field.id] = ["Choose an answer."]
                else:
                    clean[field.id] = None
            elif raw not in field.choice_codes:
                errors[field.id] = ["Choose one of the answers shown."]
            else:
                clean[field.id] = int(raw) if field.extra.get("int_codes") else raw
    return clean, errors


def parse_dob(raw: str | None) -> date:
    """A typed date of birth (MM/DD/YYYY or YYYY-MM-DD); ValueError with a message if not."""
    raw = (raw or "").strip()
    if not raw:
        raise ValueError("Enter your date of birth, like 03/27/1951.")
    us, iso = _DATE_US.match(raw), _DATE_ISO.match(raw)
    try:
        if us:
            month, day, year = (int(g) for g in us.groups())
            found = date(year, month, day)
        elif iso:
            found = date(*(int(g) for g in iso.groups()))
        else:
            found = None
    except ValueError:
        found = None
    if found is None or not sane_moment(found):
        raise ValueError("Enter a real date, like 03/27/1951.")
    return found
