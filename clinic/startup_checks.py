"""The clinic's data files, checked when the app starts rather than when a patient hits them.

Red-flag tiers, signals, the reminder schedule, the follow-up plan, the appointment
instructions and the ODI pack are data a clinic may replace. A mistake there must stop the
start with a message naming the setting and the entry, not fail a booking or hide a red flag
later.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from clinic.followup import plan, questions
from clinic.intake import rule_check
from clinic.intake.rules import load_rules
from clinic.notifications import schedules
from clinic.notifications.emails import SUBJECTS
from clinic.scheduling import instructions

APPOINTMENT_KINDS = frozenset(SUBJECTS) - {"update", "cancellation", "staff_alert"}


def problems(config: Mapping) -> list[str]:
    """Everything wrong with the configured data files, each prefixed by its setting."""
    checks: dict[str, Callable[[], list[str]]] = {
        "INTAKE_RULES_DIR": lambda: rule_check.problems(load_rules(config["INTAKE_RULES_DIR"])),
        "NOTIFY_SCHEDULES_FILE": lambda: _schedule_problems(config["NOTIFY_SCHEDULES_FILE"]),
        "FOLLOWUP_PLAN_FILE": lambda: _plan_problems(config["FOLLOWUP_PLAN_FILE"]),
        "APPOINTMENT_INSTRUCTIONS_FILE": lambda: _loads(
            instructions.load, config["APPOINTMENT_INSTRUCTIONS_FILE"]
        ),
        "ODI_PACK_FILE": lambda: _odi_problems(config["ODI_PACK_FILE"]),
    }
    found = []
    for setting, check in checks.items():
        where = f"{setting} ({config[setting]})" if config[setting] else f"{setting} (default)"
        try:
            found.extend(f"{where}: {p}" for p in check())
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            found.append(f"{where}: cannot be read ({type(exc).__name__}: {exc})")
    return found


def _loads(load: Callable, path: str) -> list[str]:
    load(path)
    return []


def _odi_problems(path: str) -> list[str]:
    # Set but unreadable would quietly leave ODI out of every check-in.
    if path and questions.load_odi_pack(path) is None:
        return ["not an ODI pack this app can read (a version and 10 sections of 6 statements)"]
    return []


def _schedule_problems(path: str) -> list[str]:
    schedule = schedules.load(path)
    return [
        f"{code}: unknown message kind {step.kind!r}"
        for code, steps in schedule.by_type.items()
        for step in steps
        if step.kind not in APPOINTMENT_KINDS
    ]


def _plan_problems(path: str) -> list[str]:
    found = []
    for point in plan.load(path).points:
        if point.offset_days < 0 or point.window_before < 0 or point.window_after < 0:
            found.append(f"{point.code}: offsets and windows cannot be negative")
    return found
