"""Notification delivery throughput and dispatcher scaling.

    .venv/bin/python bench/notifications.py [--messages 5000] [--future 1000000] [--skip-a|--skip-b]

(a) Delivery throughput. A fresh PostgreSQL database gets the migrations, one location, 50
providers, the default appointment types, --messages patients (each with an email address and
``consent_email``) and one booked appointment each, three days ahead, and one *due* pending
notification per appointment (--kind, default ``reminder_24h``: routine, with an unsubscribe link;
``confirmation`` carries an .ics), all loaded with ``INSERT ... SELECT generate_series``. An
aiosmtpd sink runs in its own process (so it does not share the measuring process's GIL) on a
free port and counts the messages, their bytes and the Message-IDs seen twice, per phase.

- **baseline**: a plain smtplib loop over one connection sends --messages copies of one message
  into the sink; the message is built once, by the app (``emails.build`` on the first row), so it
  has the same template and size, then composed again as the standard library composes it
  (``set_content``, ``add_alternative``, its own policy: ``plain_copy``); only its Message-ID is
  replaced before each send.
- **system under test**: ``celery -A worker worker --concurrency=2 --pool=prefork``
  (--concurrency to change the 2; a queue of its own on Redis db 12, ``--loglevel INFO`` as in
  docker-compose.yml, env like tests/conftest.py), then one dispatcher pass in this process
  (``dispatcher.dispatch(now)``: the claim, then one ``notifications.send`` task per id); the
  clock starts at the pass and stops when the sink has all the messages *and* every row is
  ``sent``.

The baseline runs twice, before the SUT and after it (the worker idle both times), and the ratio
is the SUT's rate over the mean of the two: this machine's speed drifts by tens of percent within
minutes, and a baseline taken on one side only moved the ratio more than the code did.

Printed: the three rates, the ratio SUT / baseline, duplicates by Message-ID, row statuses, the CPU
seconds per message of the worker, PostgreSQL, Redis, the sink and this process (from /proc), and
the worker's peak RSS (VmHWM). With --profile N, N rows are then put back to ``sending`` and
``sending.deliver`` is run on them in this process under cProfile (into the same sink).

(b) Dispatcher scaling. Two fresh databases: one gets --small (10,000) pending rows due in the
future (spread over the next year), the other --future (1,000,000), loaded with ``INSERT ...
SELECT generate_series``; both get the same --due (1,000) rows due now; half of all rows are
routine; ``VACUUM ANALYZE``. Then one untimed and --repeats timed passes of
``dispatcher.dispatch(now)`` on each, the two sizes in turn (so a change in background load hits
both alike), with the enqueue replaced by a no-op: nothing goes to Celery, so a pass is the
release of stale claims, the claim statements (batches of 500) with their commits, and the
heartbeat. The claimed rows are put back to pending and the table vacuumed before each pass.
Printed: the EXPLAIN (ANALYZE, BUFFERS) of the claim statement at both sizes, both medians and
their ratio.

Nothing is asserted on timings: the figures are printed. Cleanup, also on errors, Ctrl-C, SIGTERM
and the time limit: the worker and the sink stopped, the databases dropped, Redis db 12 flushed.

Exit status: 0 when every check passed and both goals were met, 1 when a check failed (a message
missing, duplicated or not sent), 2 when the checks passed but a goal (--min-ratio,
--max-scale-ratio) was missed, 3 when the run could not be made.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import multiprocessing as mp
import os
import platform
import pstats
import re
import resource
import secrets
import signal
import smtplib
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email import policy
from email.message import EmailMessage
from pathlib import Path

import psycopg
import redis
from intake import (
    PG_SERVER,
    ROOT,
    BenchError,
    _on_alarm,
    _on_term,
    bench_location,
    cpu_busy,
    create_database,
    dispose,
    free_port,
    gunicorn_pids,
    leave_clean,
    process_cpu,
    settle,
    venv_bin,
)

REDIS_URL = "redis://127.0.0.1:6379/12"
PROVIDERS = 50
MAIL_DOMAIN = "clinic.example"
BASE_URL = "https://clinic.example"
SECRET_KEY = "bench"  # noqa: S105 (a throwaway key for a throwaway database)
MSGID = re.compile(rb"^Message-ID:[ \t]*(\S+)", re.IGNORECASE | re.MULTILINE)
TASK_DONE = re.compile(r"Task notifications\.send\[[^\]]+\] succeeded in ([0-9.e-]+)s")
BASELINE, SUT, BASELINE_AFTER, PROFILE = 0, 1, 2, 3  # sink phases
PHASE_NAMES = ("baseline", "sut", "baseline after", "profile")

PATIENTS_SQL = """
INSERT INTO patient (first_name, last_name, date_of_birth, email, preferred_contact,
    preferred_language, voicemail_ok, consent_email, consent_sms, created_at, updated_at)
SELECT 'Bench' || i, 'Patient', DATE '1950-01-01' + (i %% 20000), 'bench-' || i || '@example.com',
       'email', 'en', false, true, false, %(now)s, %(now)s
FROM generate_series(1, %(n)s) AS i
"""

APPOINTMENTS_SQL = """
INSERT INTO appointment (patient_id, provider_id, location_id, appointment_type_id, status,
    start_at, end_at, occupied_start, occupied_end, sequence, source, created_at, updated_at)
SELECT p.id, (%(providers)s::int[])[1 + p.rn %% %(n_providers)s], %(location)s, %(type)s,
       'booked', t, t + interval '45 minutes', t, t + interval '60 minutes', 0, 'staff',
       %(now)s, %(now)s
FROM (SELECT id, row_number() OVER (ORDER BY id) - 1 AS rn FROM patient) AS p,
     LATERAL (SELECT %(first)s::timestamptz
                     + interval '1 hour' * (p.rn / %(n_providers)s) AS t) AS moment
"""

DUE_FROM_APPOINTMENTS_SQL = """
INSERT INTO notification (patient_id, kind, template, cause_type, cause_id, revision, channel,
    routine, status, due_at, attempts, message_id, created_at, updated_at)
SELECT a.patient_id, %(kind)s, %(template)s, 'appointment', a.id, 0, 'email', %(routine)s,
       'pending', %(now)s::timestamptz - interval '1 millisecond' * (100000 - a.id %% 100000), 0,
       '<' || md5(random()::text || a.id) || '@' || %(domain)s || '>', %(now)s, %(now)s
FROM appointment AS a
"""

# (b): rows whose cause is never loaded (the claim reads the notification table only)
SYNTHETIC_SQL = """
INSERT INTO notification (patient_id, kind, template, cause_type, cause_id, revision, channel,
    routine, status, due_at, attempts, message_id, created_at, updated_at)
SELECT (%(patients)s::int[])[1 + i %% %(n_patients)s],
       CASE WHEN i %% 2 = 0 THEN 'reminder_24h' ELSE 'confirmation' END,
       CASE WHEN i %% 2 = 0 THEN 'appointment_reminder' ELSE 'appointment_confirmation' END,
       'appointment', i, 0, 'email', i %% 2 = 0, 'pending',
       CASE WHEN %(due)s
            THEN %(now)s::timestamptz - interval '1 second' * (1 + i %% 3600)
            ELSE %(now)s::timestamptz + interval '1 hour'
                 + interval '1 minute' * ((i::bigint * 7919) %% 525600) END,
       0, '<n-' || i || '@' || %(domain)s || '>', %(now)s, %(now)s
FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) AS i
"""


# -- the SMTP sink, in its own process -------------------------------------------------------------


def sink_main(port: int, counts, ready, stop) -> None:
    """aiosmtpd on 127.0.0.1:port; counts[0] is the phase, then per phase: messages, bytes,
    Message-IDs seen before in that phase, messages without a Message-ID."""
    import logging

    from aiosmtpd.controller import Controller

    logging.getLogger("mail.log").setLevel(logging.WARNING)

    class Handler:
        def __init__(self):
            self.seen = [set() for _ in PHASE_NAMES]

        async def handle_DATA(self, server, session, envelope):  # noqa: N802
            phase = counts[0]
            base = 1 + 4 * phase
            content = envelope.original_content or envelope.content
            match = MSGID.search(content)
            if match is None:
                counts[base + 3] += 1
            elif match.group(1) in self.seen[phase]:
                counts[base + 2] += 1
            else:
                self.seen[phase].add(match.group(1))
            counts[base + 1] += len(content)
            counts[base] += 1
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    ready.set()
    stop.wait()
    controller.stop()


@dataclass
class Sink:
    port: int = 0
    proc: mp.Process | None = None
    counts: object = None
    stop_event: object = None

    def start(self) -> None:
        ctx = mp.get_context("spawn")
        self.port = free_port()
        self.counts = ctx.Array("q", 1 + 4 * len(PHASE_NAMES), lock=False)
        ready, self.stop_event = ctx.Event(), ctx.Event()
        self.proc = ctx.Process(
            target=sink_main, args=(self.port, self.counts, ready, self.stop_event), daemon=True
        )
        self.proc.start()
        if not ready.wait(30):
            raise BenchError("the SMTP sink did not start")

    def phase(self, phase: int) -> None:
        self.counts[0] = phase

    def received(self, phase: int) -> int:
        return self.counts[1 + 4 * phase]

    def stats(self, phase: int) -> dict[str, int]:
        base = 1 + 4 * phase
        keys = ("messages", "bytes", "duplicates", "no_message_id")
        return {k: self.counts[base + i] for i, k in enumerate(keys)}

    def stop(self) -> None:
        if self.proc is None:
            return
        self.stop_event.set()
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(5)


# -- the Celery worker ---------------------------------------------------------------------------


@dataclass
class Worker:
    env: dict[str, str]
    queue: str
    log: Path
    concurrency: int = 2
    proc: subprocess.Popen | None = None

    def start(self) -> None:
        cmd = [
            str(venv_bin("celery")),
            "-A",
            "worker",
            "worker",
            f"--concurrency={self.concurrency}",
            "--pool=prefork",
            "--loglevel=INFO",
            "-Q",
            self.queue,
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
        ]
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                cmd,
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() ends it and its children
            )

    def wait_ready(self, celery_app, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"the Celery worker exited at start:\n{self.log_tail()}")
            ready = len(self.pids()) >= 1 + self.concurrency
            if ready and celery_app.control.ping(timeout=0.5):
                return
            time.sleep(0.2)
        raise BenchError(f"the Celery worker did not answer a ping:\n{self.log_tail()}")

    def pids(self) -> list[int]:
        return gunicorn_pids(self.proc.pid) if self.proc else []  # the main process + children

    def peak_rss_mib(self) -> dict[int, float]:
        out = {}
        for pid in self.pids():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        out[pid] = int(line.split()[1]) / 1024
            except OSError:
                continue
        return out

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.proc.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue

    def task_runtimes_ms(self) -> list[float]:
        """Celery's own measure of each send task's run time, from the worker's INFO log."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return []
        return [float(m) * 1000 for m in TASK_DONE.findall(text)]

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


# -- apps and databases --------------------------------------------------------------------------


def base_env(tmp: Path, smtp_port: int) -> dict[str, str]:
    env = {
        **os.environ,
        "CELERY_BROKER_URL": REDIS_URL,
        "SECRET_KEY": SECRET_KEY,
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp_port),
        "BASE_URL": BASE_URL,
        "MAIL_FROM": f"Riverside Clinic <no-reply@{MAIL_DOMAIN}>",
        "NOTIFY_SEND_HOURS": "0-24",  # routine rows are claimable whenever the bench runs
        "RATELIMIT_ENABLED": "false",
        "CLINIC_INSTANCE_PATH": str(tmp / "instance"),
        "PYTHONPATH": str(ROOT),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    for name in ("REDIS_URL", "CLINIC_ENV", "FLASK_APP", "NOTIFY_SCHEDULES_FILE", "DATABASE_URL"):
        env.pop(name, None)
    return env


def make_app(env: dict[str, str], database_url: str, queue: str):
    """The real app in this process, configured like the worker, with migrations applied."""
    os.environ.clear()
    os.environ.update(env)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from flask_migrate import upgrade

    from clinic import create_app
    from clinic.config import from_environment

    celery = from_environment()["CELERY"] | {"task_default_queue": queue}
    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": "postgresql+psycopg://"
            + database_url.removeprefix("postgresql://")
            + "?application_name=bench_self",
            "CELERY": celery,
        }
    )
    with app.app_context():
        upgrade(directory=str(ROOT / "migrations"))
    return app


def pg(database_url: str) -> psycopg.Connection:
    return psycopg.connect(database_url, connect_timeout=5, autocommit=True)


def backend_pids(database_url: str) -> list[int]:
    with pg(database_url) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        ).fetchall()
    return [pid for (pid,) in rows]


def statuses(database_url: str) -> dict[str, int]:
    with pg(database_url) as conn:
        rows = conn.execute("SELECT status, count(*) FROM notification GROUP BY status").fetchall()
    return dict(rows)


def self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def redis_pid(client: redis.Redis) -> int | None:
    try:
        return int(client.info("server")["process_id"])
    except (redis.RedisError, KeyError, ValueError):
        return None


def machine_facts(database_url: str, client: redis.Redis) -> list[str]:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    with pg(database_url) as conn:
        pg_version = conn.execute("SHOW server_version").fetchone()[0]
    import aiosmtpd
    import celery

    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return [
        f"cores: {os.cpu_count()} ({cpu}), {mem_gib:.0f} GiB",
        f"Python {platform.python_version()} on {platform.system()} {platform.release()}",
        f"PostgreSQL {pg_version}, Redis {client.info('server').get('redis_version', '?')}, "
        f"Celery {celery.__version__}, aiosmtpd {aiosmtpd.__version__}, all on this machine",
    ]


# -- (a) delivery throughput ---------------------------------------------------------------------


@dataclass
class Delivery:
    messages: int
    baseline_s: float = 0.0  # before the SUT
    baseline_after_s: float = 0.0  # and after it, so that the machine's drift cancels out
    dispatch_s: float = 0.0
    sink_done_s: float = 0.0
    sut_s: float = 0.0
    claimed: int = 0
    enqueue_failed: int = 0
    sink: dict[str, dict[str, int]] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)
    rss_mib: dict[int, float] = field(default_factory=dict)
    worker_pids: list[int] = field(default_factory=list)
    task_ms: list[float] = field(default_factory=list)
    profile: str = ""
    profile_s: float = 0.0
    profile_n: int = 0

    @property
    def baseline_rate(self) -> float:
        """The mean of the two baseline rates, before and after the SUT."""
        rates = [self.messages / s for s in (self.baseline_s, self.baseline_after_s) if s]
        return statistics.fmean(rates) if rates else 0.0

    def rate(self, seconds: float) -> float:
        return self.messages / seconds if seconds else 0.0

    @property
    def sut_rate(self) -> float:
        return self.messages / self.sut_s if self.sut_s else 0.0

    @property
    def ratio(self) -> float:
        return self.sut_rate / self.baseline_rate if self.baseline_rate else 0.0


def load_delivery(app, database_url: str, n: int, kind: str, now: datetime) -> None:
    from sqlalchemy import select

    from clinic.extensions import db
    from clinic.notifications.services import TEMPLATES
    from clinic.scheduling import services
    from clinic.scheduling.models import AppointmentType, Provider

    with app.app_context():
        location = bench_location()
        providers = [
            Provider(name=f"Dr. Bench {i}", title="MD", feed_token=services.new_feed_token())
            for i in range(PROVIDERS)
        ]
        db.session.add_all([location, *providers])
        services.install_default_types()
        db.session.flush()
        type_id = db.session.scalar(
            select(AppointmentType.id).where(AppointmentType.code == "consultation")
        )
        location_id, provider_ids = location.id, [p.id for p in providers]
        db.session.commit()
        db.session.remove()
    first = (now + timedelta(days=3)).replace(minute=0, second=0, microsecond=0)
    with pg(database_url) as conn:
        conn.execute(PATIENTS_SQL, {"n": n, "now": now})
        conn.execute(
            APPOINTMENTS_SQL,
            {
                "providers": provider_ids,
                "n_providers": PROVIDERS,
                "location": location_id,
                "type": type_id,
                "first": first,
                "now": now,
            },
        )
        conn.execute(
            DUE_FROM_APPOINTMENTS_SQL,
            {
                "kind": kind,
                "template": TEMPLATES[kind],
                "routine": kind.startswith("reminder"),
                "now": now,
                "domain": MAIL_DOMAIN,
            },
        )
        conn.execute("VACUUM ANALYZE")


def sample_message(app, now: datetime):
    """The first row's message, built by the app (same template and size as the SUT's), then
    composed again as the standard library composes it (``plain_copy``)."""
    from sqlalchemy import select

    from clinic.extensions import db
    from clinic.notifications import emails
    from clinic.notifications.models import Notification

    with app.app_context():
        row = db.session.scalars(select(Notification).order_by(Notification.id).limit(1)).one()
        built = emails.build(row, now=now)
        db.session.rollback()
        db.session.remove()
    return plain_copy(built)


def plain_copy(built: EmailMessage) -> EmailMessage:
    """The same headers, bodies and attachments, composed with ``set_content``,
    ``add_alternative`` and ``add_attachment`` under the email package's own policy (with the
    app's 998-character line limit): plain smtplib and the email package as they come. The app
    composes its parts itself and keeps parsed headers for reuse (clinic/email.py); that is part
    of the system under test, not of the baseline. The headers are kept as the app stored them.
    """
    msg = EmailMessage(policy=policy.default.clone(max_line_length=998))
    for name, value in built.raw_items():
        if not name.lower().startswith(("content-", "mime-version")):
            msg.set_raw(name, value)
    msg.set_content(built.get_body(("plain",)).get_content())
    msg.add_alternative(built.get_body(("html",)).get_content(), subtype="html")
    for part in built.iter_attachments():
        method = part.get_param("method")
        msg.add_attachment(
            part.get_content(),
            subtype=part.get_content_subtype(),
            filename=part.get_filename(),
            params={"method": method} if method else {},
        )
    return msg


def run_baseline(msg, n: int, port: int, tag: str) -> float:
    """n sends of one message over one smtplib connection; seconds from the first to the last."""
    conn = smtplib.SMTP("127.0.0.1", port, timeout=30)
    try:
        conn.ehlo()
        started = time.perf_counter()
        for i in range(n):
            msg.replace_header("Message-ID", f"<baseline-{tag}-{i}@{MAIL_DOMAIN}>")
            conn.send_message(msg)
        return time.perf_counter() - started
    finally:
        conn.quit()


def wait_delivered(
    sink: Sink, n: int, database_url: str, started: float, timeout: float
) -> tuple[float, float]:
    """Seconds from ``started`` until the sink has n messages, and until all n rows are sent."""
    deadline = time.perf_counter() + timeout
    last, last_change = -1, time.perf_counter()
    while sink.received(SUT) < n:
        now = time.perf_counter()
        got = sink.received(SUT)
        if got != last:
            last, last_change = got, now
        if now > deadline or now - last_change > 60:
            raise BenchError(f"the sink has {got} of {n} messages after {now - started:.0f}s")
        time.sleep(0.01)
    sink_done = time.perf_counter() - started
    with pg(database_url) as conn:
        while True:
            sent = conn.execute(
                "SELECT count(*) FROM notification WHERE status = 'sent'"
            ).fetchone()[0]
            if sent >= n:
                return sink_done, time.perf_counter() - started
            if time.perf_counter() > deadline:
                raise BenchError(f"{sent} of {n} rows sent after {timeout:.0f}s")
            time.sleep(0.01)


def profile_deliver(app, database_url: str, n: int) -> tuple[str, float]:
    """Put n sent rows back to 'sending' and run sending.deliver on them here, under cProfile."""
    from clinic import email
    from clinic.models import utcnow
    from clinic.notifications import sending

    with pg(database_url) as conn:
        ids = [
            r[0]
            for r in conn.execute(
                "UPDATE notification SET status = 'sending', sent_at = NULL WHERE id IN "
                "(SELECT id FROM notification ORDER BY id LIMIT %s) RETURNING id",
                [n],
            ).fetchall()
        ]
    profiler = cProfile.Profile()
    with app.app_context():
        sending.deliver(ids[0], now=utcnow())  # warm: connections, templates, imports
        started = time.perf_counter()
        profiler.enable()
        for notification_id in ids[1:]:
            sending.deliver(notification_id, now=utcnow())
        profiler.disable()
        elapsed = time.perf_counter() - started
        email.close_connection()
        from clinic.extensions import db

        db.session.remove()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(35)
    return out.getvalue(), elapsed / max(1, len(ids) - 1)


def measure_delivery(args, tmp: Path, tag: str, rc: redis.Redis, state: dict) -> Delivery:
    from clinic.models import utcnow

    db_name = f"clinic_bench_notify_a_{tag}"
    database_url = f"{PG_SERVER}/{db_name}"
    create_database(db_name)
    state["databases"].append(db_name)
    sink = Sink()
    state["sink"] = sink
    sink.start()
    env = base_env(tmp, sink.port)
    queue = f"bench-notify-{tag}"
    print(f"[bench] (a) database {db_name}: migrations, then {args.messages:,} due rows")
    app = make_app(env, database_url, queue)
    state["apps"].append(app)
    now = utcnow()
    load_started = time.perf_counter()
    load_delivery(app, database_url, args.messages, args.kind, now)
    print(f"[bench] (a) loaded in {time.perf_counter() - load_started:.1f}s", flush=True)
    result = Delivery(args.messages)

    worker_env = env | {"DATABASE_URL": f"{database_url}?application_name=bench_worker"}
    worker = Worker(worker_env, queue, tmp / "worker.log", args.concurrency)
    state["worker"] = worker
    worker.start()
    worker.wait_ready(app.extensions["celery"])
    settle(timeout=15.0)
    print(f"[bench] (a) worker ready (pids {worker.pids()}), sink on port {sink.port}")

    msg = sample_message(app, now)
    print(f"[bench] (a) baseline: {args.messages:,} x smtplib send_message", flush=True)
    sink.phase(BASELINE)
    result.baseline_s = run_baseline(msg, args.messages, sink.port, "before")
    result.sink["baseline"] = sink.stats(BASELINE)

    from clinic.notifications import dispatcher

    worker_pids = worker.pids()
    pids = {
        "worker main process": worker_pids[:1],
        "worker children": worker_pids[1:],
        "sink": [sink.proc.pid],
    }
    redis_server = redis_pid(rc)
    if redis_server:
        pids["redis"] = [redis_server]
    before = {name: process_cpu(p) for name, p in pids.items()}
    before_pg = process_cpu(backend_pids(database_url))
    self_before = self_cpu()
    sink.phase(SUT)
    print(f"[bench] (a) SUT: dispatcher pass + worker, {args.messages:,} messages", flush=True)
    with app.app_context():
        started = time.perf_counter()
        passed = dispatcher.dispatch(utcnow())
        result.dispatch_s = time.perf_counter() - started
        from clinic.extensions import db

        db.session.remove()
    self_after = self_cpu()
    result.claimed, result.enqueue_failed = passed.claimed, passed.enqueue_failed
    result.sink_done_s, result.sut_s = wait_delivered(
        sink, args.messages, database_url, started, timeout=args.timeout
    )
    time.sleep(0.5)  # the last commits and acks
    for name, p in pids.items():
        result.cpu[name] = sum(t - before[name].get(pid, 0.0) for pid, t in process_cpu(p).items())
    after_pg = process_cpu(backend_pids(database_url))
    result.cpu["postgres"] = sum(t - before_pg.get(pid, 0.0) for pid, t in after_pg.items())
    result.cpu["bench (dispatch pass)"] = self_after - self_before
    result.sink["sut"] = sink.stats(SUT)
    result.statuses = statuses(database_url)
    result.rss_mib = worker.peak_rss_mib()
    result.worker_pids = worker.pids()
    # The baseline once more, as before with the worker idle: this machine's speed drifts by
    # tens of percent within minutes, so the SUT is compared with the mean of both.
    print(f"[bench] (a) baseline again: {args.messages:,} x smtplib send_message", flush=True)
    sink.phase(BASELINE_AFTER)
    result.baseline_after_s = run_baseline(msg, args.messages, sink.port, "after")
    result.sink["baseline after"] = sink.stats(BASELINE_AFTER)
    worker.stop()
    result.task_ms = worker.task_runtimes_ms()

    if args.profile:
        sink.phase(PROFILE)
        n = min(args.profile, args.messages)
        print(f"[bench] (a) profiling sending.deliver on {n} rows in this process", flush=True)
        result.profile, result.profile_s = profile_deliver(app, database_url, n)
        result.profile_n = n
        result.sink["profile"] = sink.stats(PROFILE)
    return result


def report_delivery(r: Delivery, args) -> list[str]:
    n = r.messages
    print("\n(a) Delivery throughput")
    print(f"  messages: {n:,} of kind {args.kind}; same aiosmtpd sink (own process) for both")
    base, sut, after = r.sink["baseline"], r.sink["sut"], r.sink["baseline after"]
    for label, seconds, counted in (
        ("before", r.baseline_s, base),
        ("after ", r.baseline_after_s, after),
    ):
        print(
            f"  baseline  smtplib loop, one connection, {label} the SUT: {seconds:7.2f} s  "
            f"{r.rate(seconds):8.1f} msg/s  (sink: {counted['messages']:,} messages, "
            f"{counted['bytes'] / max(1, counted['messages']):.0f} bytes each)"
        )
    print(f"  baseline  mean of the two rates: {r.baseline_rate:8.1f} msg/s")
    print(
        f"  SUT       dispatch + {args.concurrency}-process worker:  {r.sut_s:7.2f} s  "
        f"{r.sut_rate:8.1f} msg/s  "
        f"(sink: {sut['messages']:,} messages, {sut['bytes'] / max(1, sut['messages']):.0f} "
        f"bytes each)"
    )
    print(
        f"  of which: dispatcher pass (claim {r.claimed:,} + enqueue) {r.dispatch_s:.2f} s, "
        f"sink complete at {r.sink_done_s:.2f} s, all rows sent at {r.sut_s:.2f} s"
    )
    verdict = "met" if r.ratio >= args.min_ratio else "NOT met"
    print(f"  ratio SUT / baseline = {r.ratio:.3f} (goal >= {args.min_ratio}: {verdict})")
    print(
        f"  duplicates by Message-ID: SUT {sut['duplicates']}, "
        f"baseline {base['duplicates'] + after['duplicates']}; "
        f"without Message-ID: {sut['no_message_id']}"
    )
    print(f"  row statuses after: {r.statuses}; enqueue failures: {r.enqueue_failed}")
    print("  CPU seconds during the SUT run (from /proc), and per message:")
    for name, seconds in r.cpu.items():
        print(f"    {name:<22} {seconds:7.2f} s  {seconds / n * 1000:6.2f} ms/msg")
    total = sum(r.cpu.values())
    print(
        f"    {'total':<22} {total:7.2f} s  {total / n * 1000:6.2f} ms/msg "
        f"(of {os.cpu_count()} cores x {r.sut_s:.1f} s = {os.cpu_count() * r.sut_s:.1f} s)"
    )
    if r.task_ms:
        busy = sum(r.task_ms) / 1000 / args.concurrency
        print(
            f"  send task run time (Celery's 'succeeded in', {len(r.task_ms):,} tasks): median "
            f"{statistics.median(r.task_ms):.2f} ms, mean {statistics.fmean(r.task_ms):.2f} ms, "
            f"p90 {statistics.quantiles(r.task_ms, n=10)[-1]:.2f} ms; the children spent "
            f"{busy:.1f} s each inside tasks out of {r.sut_s:.1f} s ({busy / r.sut_s:.0%})"
        )
    if r.rss_mib:
        rss = ", ".join(f"{pid}: {mib:.0f} MiB" for pid, mib in r.rss_mib.items())
        print(f"  worker peak RSS (VmHWM; main process first, then the children): {rss}")
    if r.profile:
        print(
            f"\n  cProfile of sending.deliver in this process, {r.profile_n - 1} rows after one "
            f"warm-up: {r.profile_s * 1000:.2f} ms per message (wall, profiler on)"
        )
        print(r.profile)
    problems = []
    if sut["messages"] != n:
        problems.append(f"(a) the sink got {sut['messages']} messages from the SUT, wanted {n}")
    if sut["duplicates"] or sut["no_message_id"]:
        problems.append(f"(a) {sut['duplicates']} duplicates, {sut['no_message_id']} without id")
    if r.statuses.get("sent", 0) != n:
        problems.append(f"(a) row statuses {r.statuses}, wanted {n} sent")
    if r.claimed != n or r.enqueue_failed:
        problems.append(f"(a) claimed {r.claimed}, enqueue failures {r.enqueue_failed}")
    for name, counted in (("baseline", base), ("second baseline", after)):
        if counted["messages"] != n:
            problems.append(f"(a) the sink got {counted['messages']} {name} messages, wanted {n}")
    return problems


# -- (b) dispatcher scaling ----------------------------------------------------------------------


@dataclass
class Scale:
    future: int
    due: int
    load_s: float
    passes_ms: list[float]
    claim_ms: list[float]
    plan: str

    @property
    def median_ms(self) -> float:
        return statistics.median(self.passes_ms)


def capture_claim(app, now: datetime) -> tuple[str, dict]:
    """The claim statement as the app sends it (captured from the engine), rolled back."""
    from sqlalchemy import event

    from clinic.extensions import db
    from clinic.notifications import dispatcher

    captured = []

    def hook(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("UPDATE NOTIFICATION"):
            captured.append((statement, parameters))

    with app.app_context():
        event.listen(db.engine, "before_cursor_execute", hook)
        try:
            dispatcher.claim(now, dispatcher.BATCH)
        finally:
            event.remove(db.engine, "before_cursor_execute", hook)
            db.session.rollback()
            db.session.remove()
    if not captured:
        raise BenchError("the claim statement was not captured")
    return captured[-1]


def explain_claim(app, now: datetime) -> str:
    from clinic.extensions import db

    statement, params = capture_claim(app, now)
    with app.app_context():
        with db.engine.connect() as conn:
            cursor = conn.connection.dbapi_connection.cursor()
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, params)
            lines = [row[0] for row in cursor.fetchall()]
            conn.rollback()  # EXPLAIN ANALYZE ran the UPDATE
        db.session.remove()
    return "\n".join(lines)


def reset_claims(database_url: str) -> None:
    with pg(database_url) as conn:
        conn.execute(
            "UPDATE notification SET status = 'pending', claimed_at = NULL WHERE status = 'sending'"
        )
        conn.execute("VACUUM ANALYZE notification")


def timed_passes(targets: list, repeats: int, due: int) -> list[tuple[list, list]]:
    """One untimed and ``repeats`` timed dispatcher passes on each (app, database_url), taken in
    turn (so a change in background load hits every size alike), the enqueue a no-op."""
    from clinic.extensions import db
    from clinic.models import utcnow
    from clinic.notifications import dispatcher

    claim = dispatcher.claim
    claim_time = [0.0]

    def timed_claim(now, limit=dispatcher.BATCH):
        started = time.perf_counter()
        try:
            return claim(now, limit)
        finally:
            claim_time[0] += time.perf_counter() - started

    enqueued = [0]

    def no_enqueue(task, calls):
        enqueued[0] += len(calls)
        return []

    out: list[tuple[list, list]] = [([], []) for _ in targets]
    dispatcher.claim, dispatcher.enqueue_each = timed_claim, no_enqueue
    try:
        for i in range(repeats + 1):
            for (app, database_url), (passes, claims) in zip(targets, out, strict=True):
                reset_claims(database_url)
                claim_time[0], enqueued[0] = 0.0, 0
                with app.app_context():
                    started = time.perf_counter()
                    result = dispatcher.dispatch(utcnow())
                    elapsed = time.perf_counter() - started
                    db.session.remove()
                if result.claimed != due or enqueued[0] != due:
                    raise BenchError(f"a pass claimed {result.claimed} rows, {due} are due")
                if i:  # the first pass warms the caches and the connection
                    passes.append(elapsed * 1000)
                    claims.append(claim_time[0] * 1000)
    finally:
        dispatcher.claim = claim
        from clinic.celery_app import enqueue_each

        dispatcher.enqueue_each = enqueue_each
    return out


def load_synthetic(database_url: str, lo: int, hi: int, due: bool, patients: list[int]) -> float:
    from clinic.models import utcnow

    started = time.perf_counter()
    with pg(database_url) as conn:
        conn.execute(
            SYNTHETIC_SQL,
            {
                "patients": patients,
                "n_patients": len(patients),
                "due": due,
                "now": utcnow(),
                "lo": lo,
                "hi": hi,
                "domain": MAIL_DOMAIN,
            },
        )
        conn.execute("VACUUM ANALYZE notification")
    return time.perf_counter() - started


def measure_scaling(args, tmp: Path, tag: str, state: dict) -> list[Scale]:
    """Two databases, one per size, so that their passes can be taken in turn."""
    from clinic.models import utcnow

    env = base_env(tmp, 25)  # nothing is sent
    due_lo = 100_000_000  # cause ids apart from the future rows'
    targets, loads = [], []
    for size, future in (("small", args.small), ("big", args.future)):
        db_name = f"clinic_bench_notify_b{size}_{tag}"
        database_url = f"{PG_SERVER}/{db_name}"
        create_database(db_name)
        state["databases"].append(db_name)
        print(f"[bench] (b) database {db_name}: migrations", flush=True)
        app = make_app(env, database_url, f"bench-notify-unused-{tag}")
        state["apps"].append(app)
        with pg(database_url) as conn:
            conn.execute(PATIENTS_SQL, {"n": 1000, "now": utcnow()})
            patients = [r[0] for r in conn.execute("SELECT id FROM patient").fetchall()]
        print(f"[bench] (b) loading {future:,} future + {args.due:,} due rows", flush=True)
        load_s = load_synthetic(database_url, 1, future, False, patients)
        load_s += load_synthetic(database_url, due_lo, due_lo + args.due - 1, True, patients)
        counts = statuses(database_url)
        if counts.get("pending") != future + args.due:
            raise BenchError(f"(b) statuses {counts}, wanted {future + args.due} pending")
        targets.append((app, database_url))
        loads.append((future, load_s))
    print(f"[bench] (b) {args.repeats} passes per size, the sizes in turn", flush=True)
    timings = timed_passes(targets, args.repeats, args.due)
    runs = []
    for (app, database_url), (future, load_s), (passes, claims) in zip(
        targets, loads, timings, strict=True
    ):
        reset_claims(database_url)
        plan = explain_claim(app, utcnow())
        runs.append(Scale(future, args.due, load_s, passes, claims, plan))
    return runs


def report_scaling(runs: list[Scale], args) -> float:
    print("\n(b) Dispatcher scaling: one pass = dispatcher.dispatch(now), enqueue a no-op")
    print("    (nothing sent to Celery); claimed rows reset to pending + VACUUM between passes;")
    print("    one database per size, their passes taken in turn")
    header = (
        f"  {'future rows':>12} {'due':>6} {'load s':>7} {'median ms':>10} {'min ms':>8} "
        f"{'max ms':>8} {'claim stmts ms (median)':>24}"
    )
    print(header)
    for r in runs:
        print(
            f"  {r.future:>12,} {r.due:>6,} {r.load_s:>7.1f} {r.median_ms:>10.2f} "
            f"{min(r.passes_ms):>8.2f} {max(r.passes_ms):>8.2f} "
            f"{statistics.median(r.claim_ms):>24.2f}"
        )
    small, big = runs
    ratio = big.median_ms / small.median_ms if small.median_ms else float("nan")
    verdict = "met" if ratio <= args.max_scale_ratio else "NOT met"
    print(
        f"  ratio median({big.future:,}) / median({small.future:,}) = {ratio:.3f} "
        f"(goal <= {args.max_scale_ratio}: {verdict}); {args.repeats} timed passes each"
    )
    for r in runs:
        uses = "uses" if "ix_notification_pending_due" in r.plan else "does NOT use"
        print(
            f"\n  EXPLAIN (ANALYZE, BUFFERS) of the claim at {r.future:,} future rows ({uses} "
            f"ix_notification_pending_due):"
        )
        print("\n".join("    " + line for line in r.plan.splitlines()))
    return ratio


# -- main ----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--messages", type=int, default=5000, help="(a) due messages to deliver")
    p.add_argument(
        "--kind", choices=("reminder_24h", "confirmation"), default="reminder_24h", help="(a)"
    )
    p.add_argument("--concurrency", type=int, default=2, help="(a) worker processes (prefork)")
    p.add_argument("--min-ratio", type=float, default=0.5, help="(a) goal for SUT / baseline")
    p.add_argument("--timeout", type=float, default=600, help="(a) seconds to wait for delivery")
    p.add_argument(
        "--profile", type=int, default=0, help="(a) then cProfile sending.deliver on N rows"
    )
    p.add_argument("--small", type=int, default=10_000, help="(b) future rows, first size")
    p.add_argument("--future", type=int, default=1_000_000, help="(b) future rows, second size")
    p.add_argument("--due", type=int, default=1000, help="(b) due rows")
    p.add_argument("--repeats", type=int, default=9, help="(b) timed passes per size")
    p.add_argument("--max-scale-ratio", type=float, default=1.5, help="(b) goal")
    p.add_argument("--skip-a", action="store_true", help="skip the delivery throughput")
    p.add_argument("--skip-b", action="store_true", help="skip the dispatcher scaling")
    args = p.parse_args(argv)
    if not (1 <= args.messages <= 1_000_000 and args.profile >= 0 and 1 <= args.concurrency <= 32):
        p.error("--messages must be 1..1000000, --concurrency 1..32")
    if not (1 <= args.small < args.future <= 20_000_000 and args.due >= 1 and args.repeats >= 1):
        p.error("--small must be below --future (at most 20M), --due and --repeats at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.signal(signal.SIGTERM, _on_term)
    signal.alarm(int(args.timeout) + 900)
    tag = secrets.token_hex(4)
    tmp = Path(tempfile.mkdtemp(prefix="clinic-bench-notify-"))
    state: dict = {"databases": [], "apps": [], "worker": None, "sink": None}
    rc = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
    problems: list[str] = []
    goals_met = True
    started = time.perf_counter()
    try:
        rc.ping()
        if rc.dbsize():
            print(f"[bench] note: {REDIS_URL} holds {rc.dbsize()} keys; it is flushed at the end")
        busy = cpu_busy()
        facts = machine_facts(f"{PG_SERVER}/postgres", rc)
        facts.append(f"CPU busy before the run (other processes): {busy:.0%}")
        print("Machine\n" + "\n".join(f"  {line}" for line in facts), flush=True)
        delivery = scaling = None
        if not args.skip_a:
            delivery = measure_delivery(args, tmp, tag, rc, state)
            problems += report_delivery(delivery, args)
            goals_met &= delivery.ratio >= args.min_ratio
        scale_ratio = None
        if not args.skip_b:
            scaling = measure_scaling(args, tmp, tag, state)
            scale_ratio = report_scaling(scaling, args)
            goals_met &= scale_ratio <= args.max_scale_ratio

        print("\n" + "=" * 78 + "\nSummary")
        for line in facts:
            print(f"  {line}")
        if delivery:
            sut = delivery.sink["sut"]
            worker_cpu = sum(v for k, v in delivery.cpu.items() if k.startswith("worker"))
            print(
                f"  (a) {delivery.messages:,} x {args.kind}: baseline (mean) "
                f"{delivery.baseline_rate:.1f} "
                f"msg/s, SUT {delivery.sut_rate:.1f} msg/s, ratio {delivery.ratio:.3f} "
                f"(goal >= {args.min_ratio}); duplicates {sut['duplicates']}; worker CPU "
                f"{worker_cpu / delivery.messages * 1000:.2f} ms/msg"
            )
        if scaling:
            small, big = scaling
            print(
                f"  (b) pass with {args.due:,} due: {small.median_ms:.2f} ms at "
                f"{small.future:,} future rows, {big.median_ms:.2f} ms at {big.future:,}; "
                f"ratio {scale_ratio:.3f} (goal <= {args.max_scale_ratio})"
            )
        print(f"  wall time {time.perf_counter() - started:.0f} s")
        if problems:
            print("\nCHECKS FAILED")
            for problem in problems:
                print(f"  {problem}")
            if state["worker"]:
                print(f"\nworker log tail:\n{state['worker'].log_tail()}")
            return 1
        print("  checks passed" + ("" if goals_met else "; a goal was missed"))
        return 0 if goals_met else 2
    except (BenchError, TimeoutError, subprocess.TimeoutExpired, OSError, psycopg.Error) as exc:
        print(f"[bench] could not run: {exc}", file=sys.stderr)
        if state["worker"]:
            print(f"\nworker log tail:\n{state['worker'].log_tail()}", file=sys.stderr)
        return 3
    except redis.RedisError as exc:
        print(f"[bench] Redis on {REDIS_URL}: {exc}", file=sys.stderr)
        return 3
    finally:
        signal.alarm(0)
        if state["worker"]:
            state["worker"].stop()
        if state["sink"]:
            state["sink"].stop()
        for app in state["apps"]:
            dispose(app)
        leave_clean(state["databases"], rc, REDIS_URL, tmp)


if __name__ == "__main__":
    sys.exit(main())
