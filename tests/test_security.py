"""Security headers, rate limits on the public POSTs, health checks, no patient data in logs."""

import json
import logging
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
import redis

from clinic import create_app
from tests.conftest import ROOT, child_env, dispose, example_values, free_port, make_test_config

PAGES = ["/", "/intake", "/staff/login", "/healthz", "/api/v1/openapi.json", "/no-such-page"]


@pytest.mark.parametrize("path", PAGES)
def test_security_headers_on_every_response(app, client, path):
    response = client.get(path)
    csp = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp
    assert "http" not in csp  # no third-party source of any kind
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Frame-Options"] == "DENY"


def test_pages_load_nothing_from_elsewhere(app, client):
    for path in ["/", "/intake", "/staff/login"]:
        page = client.get(path).get_data(as_text=True)
        assert "https://" not in page and "http://" not in page.replace("http://clinic.test", "")
        assert "<script>" not in page and "style=" not in page  # CSP forbids inline code


def test_staff_and_intake_pages_are_not_cached(app, client):
    assert client.get("/intake").headers["Cache-Control"] == "no-store"
    assert client.get("/staff/login").headers["Cache-Control"] == "no-store"


def test_healthz_ok(app, client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "database": "ok", "broker": "ok"}


@pytest.mark.parametrize("broken", ["database", "broker"])
def test_healthz_names_the_part_that_is_down(database_url, smtp_server, app, broken):
    dead = f"127.0.0.1:{free_port()}"
    overrides = {}
    if broken == "database":
        overrides["SQLALCHEMY_DATABASE_URI"] = f"postgresql+psycopg://postgres@{dead}/x"
        overrides["SQLALCHEMY_ENGINE_OPTIONS"] = {"connect_args": {"connect_timeout": 2}}
    config = make_test_config(database_url, smtp_server.port, **overrides)
    if broken == "broker":
        config["CELERY"] = dict(config["CELERY"], broker_url=f"redis://{dead}/0")
    other = create_app(config)
    response = other.test_client().get("/healthz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "down" and body[broken] == "down"
    assert body["database" if broken == "broker" else "broker"] == "ok"
    dispose(other)


@pytest.fixture
def rate_limited_server(app, database_url, smtp_server):
    """The app in its own process with rate limits on and Redis as their storage."""
    port = free_port()
    client = redis.Redis.from_url("redis://127.0.0.1:6379/13")
    client.flushdb()
    env = child_env(
        database_url,
        smtp_server.port,
        RATELIMIT_ENABLED="true",
        REDIS_URL="redis://127.0.0.1:6379/13",
        PUBLIC_POST_RATE_LIMIT="3/minute",
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flask",
            "--app",
            "clinic",
            "run",
            "--port",
            str(port),
            "--no-reload",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            urllib.request.urlopen(base + "/healthz", timeout=1)
            break
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.05)
    yield base, client
    proc.terminate()
    proc.wait(timeout=10)
    client.flushdb()


def _post(url, body):
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_public_posts_are_rate_limited_in_redis(rate_limited_server):
    base, store = rate_limited_server
    url = base + "/api/v1/consultation-requests"
    statuses = [_post(url, {"first_name": "x"})[0] for _ in range(3)]
    assert statuses == [422, 422, 422]
    status, body = _post(url, example_values())
    assert status == 429 and body == {"error": "too_many_requests"}
    assert list(store.scan_iter(match="LIMITS*"))
    # the intake form's POSTs count too, the emergency page's choice included
    for path in ("/intake/red-flags", "/intake/emergency"):
        form = urllib.request.Request(base + path, data=b"", method="POST")
        codes = []
        for _ in range(4):
            try:
                codes.append(urllib.request.urlopen(form, timeout=10).status)
            except urllib.error.HTTPError as exc:
                codes.append(exc.code)
        assert codes[-1] == 429, (path, codes)


def test_no_patient_data_in_log_lines(app, client, caplog, make_staff):
    caplog.set_level(logging.DEBUG)
    values = example_values(
        first_name="Zebulon",
        last_name="Quixley",
        email="zebulon.quixley@example.com",
        rf_bowel="new",
        med_list="Eliquis 5 mg",
    )
    assert client.post("/api/v1/consultation-requests", json=values).status_code == 201
    client.post("/api/v1/consultation-requests", json=dict(values, nprs_back_now=99))
    client.post("/intake/red-flags", data={"rf_bowel": "new"})
    make_staff("nurse")
    client.post("/staff/login", data={"email": "nurse@clinic.test", "password": "wrong"})
    # the app's records only (the test's own SMTP server logs what it receives)
    records = [r for r in caplog.records if not r.name.startswith("mail.log")]
    text = " ".join(r.getMessage() for r in records)
    for secret in ("Zebulon", "Quixley", "zebulon", "Eliquis", "1952-04-17", "rf_bowel", "wrong"):
        assert secret not in text


def test_no_patient_data_in_any_url(app, client):
    """Every redirect of the form stays on fixed /intake paths, whatever the answers."""
    from tests.limits import ALL_SHOWN
    from tests.test_intake_form import post_step

    for index in range(8):
        response = post_step(client, index, ALL_SHOWN)
        assert response.status_code == 302
        assert "?" not in response.location and "Okafor" not in response.location


def test_database_errors_do_not_quote_their_values(app):
    """SQLAlchemy puts every bound value into its error text, which a worker or the CLI may log."""
    import sqlalchemy

    from clinic.extensions import db

    with app.app_context():
        with pytest.raises(sqlalchemy.exc.DBAPIError) as failed:
            db.session.execute(sqlalchemy.text("SELECT 1 / (:v - :v)"), {"v": 480207319})
        db.session.rollback()
    assert "480207319" not in str(failed.value)
    assert "hidden due to hide_parameters" in str(failed.value)
