"""The OpenAPI document covers all of /api/v1, and every request body's example works."""

from __future__ import annotations

import re

from tests.conftest import clock_at


def test_every_api_route_is_documented(app, client):
    spec = client.get("/api/v1/openapi.json").get_json()
    documented = {(path, method) for path, ops in spec["paths"].items() for method in ops}
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/") or rule.rule == "/api/v1/openapi.json":
            continue
        path = (
            re.sub(r"<(?:int:)?(\w+)>", r"{\1}", rule.rule)
            .replace("{appointment_id}", "{id}")
            .replace("{request_id}", "{id}")
        )
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (path, method.lower()) in documented, (path, method)
    for path, ops in spec["paths"].items():
        for op in ops.values():
            if "requestBody" in op:
                assert op["requestBody"]["content"]["application/json"]["example"], path


def test_scheduling_examples_work(app, client, schedule, booking_token, staff_token):
    from openapi_spec_validator import validate

    spec = client.get("/api/v1/openapi.json").get_json()
    validate(spec)
    post = spec["paths"]["/api/v1/appointments"]["post"]
    example = dict(post["requestBody"]["content"]["application/json"]["example"])
    example["booking_token"] = booking_token(schedule["patients"][0])
    example["provider_id"] = schedule["providers"][0]
    response = client.post("/api/v1/appointments", json=example)
    assert response.status_code == 201, response.get_json()
    appointment_id = response.get_json()["id"]
    headers = staff_token("front_desk")
    for action in ("reschedule", "status", "cancel"):
        op = spec["paths"][f"/api/v1/appointments/{{id}}/{action}"]["post"]
        body = op["requestBody"]["content"]["application/json"]["example"]
        response = client.post(
            f"/api/v1/appointments/{appointment_id}/{action}", json=body, headers=headers
        )
        assert response.status_code == 200, (action, response.get_json())
        if action == "reschedule":  # the status example records the visit: go to its start
            clock_at(app, response.get_json()["start"])
