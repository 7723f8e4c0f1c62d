"""Instructions a patient reads behind their appointment link, per appointment type (data).

Messages only say "you have instructions waiting"; the text lives here, in
``instructions.json`` or the clinic's reviewed copy named by ``APPOINTMENT_INSTRUCTIONS_FILE``.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from flask import current_app

PACKAGED = Path(__file__).parent / "instructions.json"


@lru_cache(maxsize=4)
def load(path: str = "") -> dict[str, tuple[str, ...]]:
    data = json.loads(Path(path or PACKAGED).read_text())
    return {code: tuple(str(line) for line in lines) for code, lines in data["types"].items()}


def instructions_for(type_code: str) -> tuple[str, ...]:
    """The paragraphs for this appointment type (none for most types)."""
    return load(current_app.config.get("APPOINTMENT_INSTRUCTIONS_FILE") or "").get(type_code, ())
