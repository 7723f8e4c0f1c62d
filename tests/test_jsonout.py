"""JSON written through orjson reads back exactly as the standard library's did."""

import dataclasses
import json
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from flask.json.provider import DefaultJSONProvider

from clinic import jsonout
from clinic.intake import store


@dataclasses.dataclass
class Slot:
    start: datetime
    minutes: int


VALUES = [
    {"b": 1, "a": [1, 2.5, None, True], "c": {"z": "é", "y": "line\nbreak"}},
    {"when": datetime(2026, 3, 8, 7, 30, tzinfo=UTC), "day": date(2026, 11, 1)},
    {"price": Decimal("12.50"), "id": uuid.UUID(int=7), "slot": Slot(datetime(2026, 1, 2), 30)},
    {"big": 2**70, "small": -(2**63)},
    ["\u2028", "\U0001f600", "", 0, -0.0, 1e300],
]


@pytest.mark.parametrize("value", VALUES)
def test_flask_answers_read_back_as_the_default_providers(app, value):
    ours, default = app.json, DefaultJSONProvider(app)
    assert isinstance(ours, jsonout.JSONProvider)
    text = ours.dumps(value)
    assert json.loads(text) == json.loads(default.dumps(value))
    assert list(json.loads(text)) == list(json.loads(default.dumps(value)))  # keys sorted alike


def test_flask_answers_sort_keys_and_keep_options(app):
    assert app.json.dumps({"b": 1, "a": 2}) == '{"a":2,"b":1}'
    assert app.json.dumps({"b": 1, "a": 2}, indent=2) == '{\n  "a": 2,\n  "b": 1\n}'
    with app.test_request_context():
        response = app.json.response({"when": date(2026, 11, 24)})
    assert response.get_json() == {"when": "Tue, 24 Nov 2026 00:00:00 GMT"}  # Flask's dates


def test_a_value_nothing_can_write_still_fails():
    with pytest.raises(TypeError):
        jsonout.dumps({"x": object()}, default=DefaultJSONProvider.default)


def test_the_intakes_stored_rows_read_back_as_before():
    values = {
        "answers": {"pain": 7, "levels": ["L4-5"], "note": "ça va"},
        "submitted_at": datetime(2026, 11, 24, 15, 0, tzinfo=UTC),
        "date_of_birth": date(1950, 2, 3),
        "count": 2**65,
    }
    old = json.dumps(values, default=store._json_value, separators=(",", ":"))
    assert json.loads(store._as_json(values)) == json.loads(old)
    with pytest.raises(ValueError, match="naive"):
        store._as_json({"at": datetime(2026, 11, 24, 15, 0)})
    with pytest.raises(TypeError):
        store._as_json({"x": Decimal("1")})
