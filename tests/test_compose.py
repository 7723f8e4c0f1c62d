"""The container set-up: docker-compose.yml, the Dockerfile and the entry points they name.

Nothing here runs Docker or needs a database: the files are parsed and checked for the
promises the rest of the project relies on (names of settings, hosts, start order). The
worker's and beat's healthcheck commands are also run as written against a real worker and beat
on the test Redis.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shlex
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

SERVICES = {"web", "worker", "beat", "postgres", "redis", "mailpit"}
APP_SERVICES = ("web", "worker", "beat")
ENV_NAMES = {
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "REDIS_URL",
    "SECRET_KEY",
    "BASE_URL",
    "CLINIC_TIMEZONE",
    "SMTP_HOST",
    "SMTP_PORT",
    "SMTP_USERNAME",
    "SMTP_PASSWORD",
    "SMTP_STARTTLS",
    "MAIL_FROM",
    "NOTIFY_SEND_HOURS",
    "DISPATCH_INTERVAL_SECONDS",
    "RATELIMIT_ENABLED",
    "CLINIC_ENV",
}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


@pytest.fixture(scope="module")
def env(services) -> dict:
    return services["web"]["environment"]


def _argv(command: str | list[str]) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else list(command)


def _option(argv: list[str], *names: str) -> str | None:
    """The value after the first of ``names`` in ``argv`` (``--name value`` or ``--name=value``)."""
    for i, arg in enumerate(argv):
        for name in names:
            if arg == name:
                return argv[i + 1]
            if arg.startswith(name + "="):
                return arg.split("=", 1)[1]
    return None


def _seconds(duration: str) -> float:
    """A compose duration (``1m30s``, ``15s``) in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(float(n) * units[u] for n, u in parts)


def _ping_check(services, name: str) -> tuple[list[str], dict]:
    """The argv of a Celery service's healthcheck, which must be ``celery inspect ping``."""
    check = services[name]["healthcheck"]
    test = check["test"]
    # A shell, so that $HOSTNAME (the container's, hence the node's) is expanded at check time.
    assert test[0] == "CMD-SHELL" and len(test) == 2, test
    argv = shlex.split(test[1])
    assert argv[:5] == ["celery", "-A", "worker", "inspect", "ping"], argv
    return argv, check


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    lines = [
        line
        for line in DOCKERFILE.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    pairs = []
    for line in joined.splitlines():
        instruction, _, args = line.strip().partition(" ")
        pairs.append((instruction.upper(), args.strip()))
    return pairs


# -- docker-compose.yml -------------------------------------------------------------------------


def test_the_six_services_exist(services):
    assert set(services) == SERVICES


def test_app_services_build_the_dockerfile(services):
    for name in APP_SERVICES:
        build = services[name].get("build")
        assert build is not None, name
        context = build if isinstance(build, str) else build.get("context", ".")
        dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "")
        assert (ROOT / context / (dockerfile or "Dockerfile")).resolve() == DOCKERFILE, name


def test_app_services_share_one_environment(services, env):
    assert isinstance(env, dict)
    for name in APP_SERVICES:
        assert services[name]["environment"] == env, name


def test_environment_has_every_setting_and_only_strings(env):
    assert set(env) >= ENV_NAMES, ENV_NAMES - set(env)
    # Unquoted YAML would hand compose booleans and numbers: every value is a string.
    for name, value in env.items():
        assert isinstance(value, str), f"{name}={value!r} is not a string"
    assert env["CLINIC_ENV"] == "production"
    assert env["SMTP_PORT"] == "1025"
    assert env["SMTP_STARTTLS"] == "false"
    assert env["NOTIFY_SEND_HOURS"] == "9-18"
    assert env["DISPATCH_INTERVAL_SECONDS"] == "60"
    assert env["RATELIMIT_ENABLED"] == "true"
    assert env["CLINIC_TIMEZONE"] == "America/New_York"
    assert env["BASE_URL"] == "http://localhost:8000"


def test_environment_points_at_the_compose_services(env):
    database = urlsplit(env["DATABASE_URL"])
    assert database.scheme == "postgresql"
    assert (database.hostname, database.port, database.path) == ("postgres", 5432, "/clinic")
    broker = urlsplit(env["CELERY_BROKER_URL"])
    assert (broker.scheme, broker.hostname, broker.port) == ("redis", "redis", 6379)
    limits = urlsplit(env["REDIS_URL"])
    assert (limits.scheme, limits.hostname, limits.port) == ("redis", "redis", 6379)
    # The broker and the rate limiter keep to separate Redis databases.
    assert broker.path != limits.path
    assert env["SMTP_HOST"] == "mailpit"


def test_secret_key_is_required_from_the_environment_not_written_here(env):
    assert env["SECRET_KEY"].startswith("${SECRET_KEY:?"), env["SECRET_KEY"]
    assert env["SECRET_KEY"].endswith("}")


def test_database_credentials_match_the_postgres_service(services, env):
    pg = services["postgres"]["environment"]
    database = urlsplit(env["DATABASE_URL"])
    assert database.username == pg["POSTGRES_USER"] == "clinic"
    assert database.password == pg["POSTGRES_PASSWORD"]
    assert database.path.lstrip("/") == pg["POSTGRES_DB"] == "clinic"


def test_web_migrates_then_serves_wsgi_app(services):
    argv = _argv(services["web"]["command"])
    assert argv[:2] == ["sh", "-c"], argv
    script = argv[2]
    upgrade = script.find("flask --app clinic db upgrade")
    gunicorn = script.find("gunicorn")
    assert upgrade != -1, script
    assert gunicorn > upgrade, script
    # && so that a failed migration stops the start, not ; which would ignore it.
    assert "&&" in script[upgrade:gunicorn], script
    served = shlex.split(script[gunicorn:])
    assert "wsgi:app" in served
    bind = served.index("--bind") + 1 if "--bind" in served else served.index("-b") + 1
    assert served[bind] == "0.0.0.0:8000"


def test_worker_and_beat_commands(services):
    worker = _argv(services["worker"]["command"])
    assert worker[:4] == ["celery", "-A", "worker", "worker"], worker
    beat = _argv(services["beat"]["command"])
    assert beat[:4] == ["celery", "-A", "worker", "beat"], beat
    # The image's /app is not writable by the app user: the schedule file lives in /tmp.
    schedule = beat[beat.index("--schedule") + 1]
    assert schedule.startswith("/tmp/"), schedule


def test_app_services_wait_for_healthy_postgres_and_redis(services):
    for name in APP_SERVICES:
        depends = services[name]["depends_on"]
        assert isinstance(depends, dict), name
        for needed in ("postgres", "redis"):
            assert depends[needed]["condition"] == "service_healthy", (name, needed)
        assert "mailpit" in depends, name


def test_every_health_dependency_has_a_healthcheck(services):
    for name, service in services.items():
        for needed, how in (service.get("depends_on") or {}).items():
            assert needed in services, (name, needed)
            if how.get("condition") == "service_healthy":
                assert "healthcheck" in services[needed], (name, needed)


def test_healthchecks(services):
    for name in ("postgres", "redis", "mailpit", "web"):
        test = services[name].get("healthcheck", {}).get("test")
        assert test, name
        assert test[0] in {"CMD", "CMD-SHELL"}, (name, test)
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert services["redis"]["healthcheck"]["test"][1:] == ["redis-cli", "ping"]
    web = services["web"]["healthcheck"]["test"]
    # No curl in the slim image: the check is Python's own urllib.
    assert web[1] == "python" and web[2] == "-c", web
    assert "urllib.request" in web[3] and "http://127.0.0.1:8000/healthz" in web[3]
    compile(web[3], "<healthcheck>", "exec")


def test_every_service_has_a_healthcheck(services):
    assert set(services) == SERVICES
    for name, service in services.items():
        check = service.get("healthcheck")
        assert check and not check.get("disable"), name
        assert check["test"][0] in {"CMD", "CMD-SHELL"}, (name, check["test"])
        for key in ("interval", "timeout", "retries"):
            assert key in check, (name, key)
        assert _seconds(check["timeout"]) <= _seconds(check["interval"]), name
        assert isinstance(check["retries"], int) and check["retries"] >= 3, name


def test_worker_healthcheck_pings_this_worker(services):
    argv, check = _ping_check(services, "worker")
    # Its own node, not any worker: with --scale worker=N each container answers for itself.
    # The worker keeps Celery's default node name, celery@<hostname>, and Docker sets HOSTNAME
    # to the container's host name. $$ is compose's escape: a lone $ would be replaced when
    # compose reads the file, with the host's HOSTNAME or nothing.
    worker = _argv(services["worker"]["command"])
    assert _option(worker, "-n", "--hostname") is None, worker
    assert _option(argv, "-d", "--destination") == "celery@$$HOSTNAME", argv
    # inspect exits non-zero when no node replied in time; it returns at the first reply.
    wait = float(_option(argv, "-t", "--timeout"))
    assert wait + 5 <= _seconds(check["timeout"]), (wait, check["timeout"])


def test_beat_healthcheck_pings_beat_which_answers_only_while_ticking(services):
    argv, check = _ping_check(services, "beat")
    beat = _argv(services["beat"]["command"])
    # Beat answers remote control only when asked to, as celerybeat@<hostname>.
    assert "--enable-remote-control" in beat, beat
    assert _option(beat, "-n", "--hostname") is None, beat
    assert _option(argv, "-d", "--destination") == "celerybeat@$$HOSTNAME", argv
    wait = float(_option(argv, "-t", "--timeout"))
    assert wait + 5 <= _seconds(check["timeout"]), (wait, check["timeout"])
    # Beat stops answering once its scheduler has not ticked for twice its longest sleep
    # (--max-interval; 60 s at the least): a stuck scheduler shows within two minutes, not the
    # ten of the default 300 s sleep.
    assert int(_option(beat, "--max-interval")) <= 60, beat


def test_the_pinned_celery_has_what_the_healthchecks_use(fresh_import):
    from celery.beat import BeatPidbox
    from celery.bin.beat import beat as beat_command

    assert "remote_control" in {p.name for p in beat_command.params}
    assert BeatPidbox.min_tick_age == 60
    worker = fresh_import("worker")
    # The worker's ping needs remote control, which the app's settings must leave on.
    assert worker.celery.conf.worker_enable_remote_control is True


def test_images_and_ports(services):
    assert services["postgres"]["image"] == "postgres:16"
    assert services["redis"]["image"] == "redis:7"
    assert services["mailpit"]["image"].split(":")[0] == "axllent/mailpit"
    assert any(str(port).endswith("8000:8000") for port in services["web"]["ports"])
    assert any(str(port).endswith("8025:8025") for port in services["mailpit"]["ports"])


def test_postgres_data_is_on_a_named_volume(compose, services):
    volumes = services["postgres"]["volumes"]
    data = [v for v in volumes if str(v).endswith(":/var/lib/postgresql/data")]
    assert len(data) == 1, volumes
    assert data[0].split(":")[0] in compose["volumes"]


# -- Dockerfile and .dockerignore ---------------------------------------------------------------


def test_dockerfile_base_install_and_copies():
    instructions = _dockerfile_instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    runs = " ".join(args for ins, args in instructions if ins == "RUN")
    assert re.search(r"pip install (--\S+ )*\.(\s|$)", runs), runs
    copied = " ".join(args for ins, args in instructions if ins == "COPY")
    for source in ("pyproject.toml", "clinic/", "migrations/", "worker.py", "wsgi.py"):
        assert source in copied, source
    assert ("EXPOSE", "8000") in instructions


def test_dockerfile_does_not_run_as_root():
    users = [args for ins, args in _dockerfile_instructions() if ins == "USER"]
    assert users, "no USER line: the container would run as root"
    assert users[-1].split(":")[0] not in {"root", "0"}, users


def test_dockerfile_cmd_serves_wsgi_app():
    instructions = _dockerfile_instructions()
    cmds = [args for ins, args in instructions if ins == "CMD"]
    assert len(cmds) == 1, cmds
    argv = json.loads(cmds[0])  # exec form, so gunicorn gets the stop signal
    assert argv[0] == "gunicorn" and "wsgi:app" in argv, argv
    assert argv[argv.index("--bind") + 1] == "0.0.0.0:8000", argv
    assert not [args for ins, args in instructions if ins == "ENTRYPOINT"]


def test_dockerignore_keeps_local_state_out_but_not_the_sources():
    patterns = {
        line.strip().rstrip("/").removeprefix("**/")
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for excluded in (".venv", "instance", ".git", "__pycache__", "bench/results"):
        assert excluded in patterns, excluded
    for needed in ("clinic", "migrations", "worker.py", "wsgi.py", "pyproject.toml"):
        assert needed not in patterns, needed


# -- the entry points compose names -------------------------------------------------------------


@pytest.fixture
def fresh_import(monkeypatch, tmp_path):
    """Import wsgi / worker anew against a throwaway instance directory (SQLite, no server)."""
    import celery._state

    monkeypatch.setenv("CLINIC_INSTANCE_PATH", str(tmp_path))
    for name in ("CLINIC_ENV", "SECRET_KEY", "DATABASE_URL", "CELERY_BROKER_URL", "REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    # The rate limiter is one object per process: keep it switched off for the other tests.
    monkeypatch.setenv("RATELIMIT_ENABLED", "false")
    monkeypatch.syspath_prepend(str(ROOT))
    # worker.py makes its Celery app the process default; put the previous one back after.
    monkeypatch.setattr(celery._state, "default_app", celery._state.default_app)
    imported = []

    def load(name: str):
        sys.modules.pop(name, None)
        imported.append(name)
        return importlib.import_module(name)

    yield load
    for name in imported:
        sys.modules.pop(name, None)


def test_wsgi_app_is_the_flask_app_with_the_migrations(fresh_import, tmp_path):
    from flask import Flask

    wsgi = fresh_import("wsgi")
    assert isinstance(wsgi.app, Flask)
    assert wsgi.app.instance_path == str(tmp_path)
    assert "/healthz" in {rule.rule for rule in wsgi.app.url_map.iter_rules()}
    # `flask --app clinic db upgrade` reads the migrations next to the package, as the image
    # lays them out (/app/clinic, /app/migrations).
    directory = Path(wsgi.app.extensions["migrate"].directory).resolve()
    assert directory == ROOT / "migrations"
    assert (directory / "alembic.ini").is_file()


def test_worker_celery_is_the_app_celery_and_knows_the_beat_tasks(fresh_import):
    from celery import Celery

    worker = fresh_import("worker")
    assert isinstance(worker.celery, Celery)
    assert worker.celery is worker.flask_app.extensions["celery"]
    schedule = worker.celery.conf.beat_schedule
    assert schedule
    # the housekeeping that keeps patient data from piling up: drafts, Idempotency-Key answers
    tasks = {entry["task"] for entry in schedule.values()}
    assert {"intake.purge_stale_drafts", "scheduling.purge_idempotency_records"} <= tasks
    registered = set(worker.celery.tasks)
    for entry in schedule.values():
        assert entry["task"] in registered, entry["task"]


# -- the Celery healthchecks, run as written against a real worker and beat ---------------------


def _as_container_runs_it(services, name: str) -> str:
    """The healthcheck's shell command once compose has read it ($$ is its escape for $)."""
    return services[name]["healthcheck"]["test"][1].replace("$$", "$")


def _with_our_options(argv: list[str], **values: str) -> list[str]:
    """``argv`` with each ``--option value`` given in ``values`` replaced, the rest appended."""
    argv = list(argv)
    for name, value in values.items():
        option = "--" + name.replace("_", "-")
        if option in argv:
            argv[argv.index(option) + 1] = value
        else:
            argv += [option, value]
    return argv


def _run_at_once(commands, env: dict, host: str) -> list[tuple[int, str, str]]:
    """Run shell commands side by side in a container-like environment: (exit code, out, err)."""
    probes = [
        subprocess.Popen(
            ["sh", "-c", command],
            cwd=ROOT,
            env={**env, "HOSTNAME": host},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for command in commands
    ]
    outputs = [p.communicate(timeout=60) for p in probes]
    return [(p.returncode, out, err) for p, (out, err) in zip(probes, outputs, strict=True)]


def test_the_celery_healthchecks_pass_while_the_node_runs_and_fail_once_it_stops(
    services, tmp_path
):
    from celery import Celery

    from tests.conftest import REDIS_TEST_URL

    host = f"healthcheck-{uuid.uuid4().hex[:8]}"  # unique: other test runs share this Redis
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in {"CLINIC_ENV", "SECRET_KEY", "DATABASE_URL", "REDIS_URL"}
    }
    env.update(
        {
            "PATH": f"{Path(sys.executable).parent}:{env.get('PATH', '')}",
            "PYTHONPATH": str(ROOT),
            "CLINIC_INSTANCE_PATH": str(tmp_path),
            "CELERY_BROKER_URL": REDIS_TEST_URL,
            "RATELIMIT_ENABLED": "false",
        }
    )
    # The compose commands, with a node name of our own (in a container it is the default,
    # <name>@$HOSTNAME, which the static tests above hold), a queue of our own for the worker
    # and the schedule file in tmp_path.
    worker = _with_our_options(
        _argv(services["worker"]["command"]),
        hostname=f"celery@{host}",
        queues=host,
        concurrency="1",
    )
    beat = _with_our_options(
        _argv(services["beat"]["command"]),
        hostname=f"celerybeat@{host}",
        schedule=str(tmp_path / "celerybeat-schedule"),
    )
    checks = {
        f"celery@{host}": _as_container_runs_it(services, "worker"),
        f"celerybeat@{host}": _as_container_runs_it(services, "beat"),
    }
    log = (tmp_path / "celery.log").open("w")
    processes = [
        subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        for argv in (worker, beat)
    ]
    control = Celery(broker=REDIS_TEST_URL).control
    try:
        deadline = time.monotonic() + 60
        while len(control.ping(list(checks), timeout=0.5)) < len(checks):
            assert all(p.poll() is None for p in processes), (tmp_path / "celery.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "celery.log").read_text()
        for node, (code, out, err) in zip(
            checks, _run_at_once(checks.values(), env, host), strict=True
        ):
            assert code == 0, (node, out, err)
            assert f"{node}: OK" in out, out
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        log.close()
        # The worker's queue of our own leaves kombu's bindings behind.
        import redis

        redis.Redis.from_url(REDIS_TEST_URL).delete(
            host, f"_kombu.binding.{host}", f"_kombu.binding_permanent.{host}"
        )
    # Gone: no reply, a non-zero exit (waiting 2 s for the reply instead of the check's own).
    shorter = [re.sub(r"--timeout \S+", "--timeout 2", command) for command in checks.values()]
    for code, out, err in _run_at_once(shorter, env, host):
        assert code != 0, (out, err)
        assert "No nodes replied" in err, err
