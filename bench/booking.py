"""Load test of booking (POST /api/v1/appointments) and scaling test of the slot search.

    .venv/bin/python bench/booking.py [--duration 30] [--connections 32] [--only booking|search]

(a) Booking throughput. A fresh PostgreSQL database gets the migrations and a schedule: one
location, one lane provider per wrk connection plus one shared provider, all working 06:00-22:00
every day, and an appointment type ``bench_slot`` (15 minutes, no buffers, step 15, no notice,
400 days ahead, no daily cap, bookable by patients); 500 patients, each with a booking token made
by the app's own ``make_token`` under the servers' SECRET_KEY. Two gunicorns with the same worker
settings as bench/intake.py run on free 127.0.0.1 ports: the real app (``wsgi:app``) and
``bench/baseline_app.py`` (one JSON INSERT per request). wrk (``bench/book.lua``) posts patient
bookings (the public path, a ``booking_token`` in the body): every request asks for a slot no
other request asks for, except one in --collide-every (20, so 5 %): those sent within the same
100 ms, from any connection, all ask for the same slot of a shared provider, so exactly one wins
and the others get 409, from the availability check or, when they race, from the database's
exclusion constraint. The baseline gets the same bodies, and so does a third gunicorn, the
*floor* (``baseline_app:floor``, off with --no-floor): the baseline's insert plus, after its
commit, a confirmation task handed to Celery on Redis, which every booking must also do; its
ratio to the baseline is the most any booking could reach in this stack. Then 20 bursts of
--workers requests released together for one slot, which must give one 201 and the rest 409
each. Printed: req/s, p50/p99, the 201/409/other/5xx counts, CPU per request, how many 409s the
exclusion constraint gave (aborted inserts, from pg_stat_user_tables), the ratios app / baseline
and floor / baseline. Checked with SQL: no two active appointments of a provider overlap, every
201 stored (and, for the floor, queued in Redis), 409s only where due, no 5xx.

(b) Slot search scaling. The appointment table is emptied, the searched provider (weekdays
08:00-12:00 and 13:00-17:00) gets a few hundred appointments and 200 other providers get the
rest, bulk-loaded with ``INSERT ... SELECT generate_series`` without overlaps, to 10 thousand
rows, then to 1 million. At each size: ``VACUUM ANALYZE``, then ``GET /api/v1/slots`` for the
``consultation`` type, the searched provider and 30 days, sequentially (--search-requests after
a warm-up), and EXPLAIN ANALYZE of the statements ``services.search_slots`` runs (captured from
the app itself, in this process). Printed: the median latency at both sizes and their ratio.

Cleanup, also on errors, Ctrl-C, SIGTERM and the time limit: both gunicorns stopped, the database
dropped, Redis db 11 flushed. Only 127.0.0.1 is loaded. Needs PostgreSQL on 127.0.0.1:5432 (user
postgres), Redis on 127.0.0.1:6379 and wrk.

Exit status: 0 when every check passed and both goals were met, 1 when a check failed, 2 when
the checks passed but a goal (--min-ratio, --max-search-ratio) was missed, 3 when the run could
not be made.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import resource
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from zoneinfo import ZoneInfo

import intake  # bench/intake.py: processes, database, wrk parsing, CPU from /proc
import psycopg
import redis
from intake import (
    PG_SERVER,
    ROOT,
    BenchError,
    Server,
    WrkResult,
    _on_alarm,
    _on_term,
    backend_pids,
    bench_location,
    bench_patients,
    cpu_busy,
    cpu_delta,
    create_database,
    dispose,
    gunicorn_pids,
    leave_clean,
    machine_facts,
    parse_wrk,
    process_cpu,
    run_checked,
    settle,
    venv_bin,
)

HERE = Path(__file__).resolve().parent
LUA = HERE / "book.lua"
REDIS_URL = "redis://127.0.0.1:6379/11"
BOOK_PATH = "/api/v1/appointments"
BASELINE_PATH = "/api/v1/consultation-requests"  # bench/baseline_app.py answers only this POST
CELERY_QUEUE = "celery"  # the default queue: the floor's messages wait there (no worker runs)
TIMEZONE = "America/New_York"
TYPE_CODE = "bench_slot"
SEARCH_TYPE = "consultation"  # a default type: 45 min + 15 buffer, daily cap 8
PATIENTS = 500
LANE_HOURS = (clock(6), clock(22))  # every day: 64 slots of 15 minutes
SLOT_DAYS = 360  # slots listed for the lanes, from tomorrow (the type allows 400 days)
WARM_SLOTS = 2000  # per lane, for the warm-ups; the measured run starts after them
OTHER_PROVIDERS = 200
POSITIONS = 5003  # per other provider: prime, so k * STRIDE mod POSITIONS never repeats
STRIDE = 1999
SPACING_MINUTES = 420  # 5003 positions x 7 h = 4 years of appointments per other provider
COLLIDE_BUCKET_MS = 100  # collisions sent within the same 100 ms ask for the same slot
STATS_DELAY_S = 12.0
BURST_ROUNDS = 20
ACTIVE = ("pending", "booked", "arrived", "checked-in", "fulfilled")

OVERLAPS_SQL = """
SELECT a.provider_id, a.id, b.id, a.occupied_start, a.occupied_end, b.occupied_start
FROM appointment a
JOIN appointment b
  ON b.provider_id = a.provider_id AND b.id > a.id
 AND tstzrange(a.occupied_start, a.occupied_end, '[)')
     && tstzrange(b.occupied_start, b.occupied_end, '[)')
WHERE a.status = ANY(%(active)s) AND b.status = ANY(%(active)s)
LIMIT 20
"""

BULK_SQL = """
INSERT INTO appointment (patient_id, provider_id, location_id, appointment_type_id, status,
    start_at, end_at, occupied_start, occupied_end, sequence, source, created_at, updated_at)
SELECT (%(patients)s::int[])[1 + i %% %(n_patients)s],
       (%(providers)s::int[])[1 + i %% %(n_providers)s],
       %(location)s, %(type)s,
       CASE WHEN i %% 20 = 0 THEN 'cancelled' WHEN t < now() THEN 'fulfilled' ELSE 'booked' END,
       t, t + interval '45 minutes', t, t + interval '60 minutes',
       0, 'staff', t - interval '14 days', t - interval '14 days'
FROM generate_series(%(lo)s::bigint, %(hi)s::bigint - 1) AS i,
     LATERAL (
         SELECT %(origin)s::timestamptz
                + interval '1 minute' * (%(spacing)s * ((i / %(n_providers)s) * %(stride)s
                                                        %% %(positions)s)) AS t
     ) AS moment
"""


# -- the in-process app (schedule, tokens, captured statements) ----------------------------------


def server_env(database_url: str, tmp: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": REDIS_URL,
        "SECRET_KEY": "bench",
        "RATELIMIT_ENABLED": "false",
        "CLINIC_TIMEZONE": TIMEZONE,
        "CLINIC_INSTANCE_PATH": str(tmp / "instance"),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    for name in ("REDIS_URL", "CLINIC_ENV", "INTAKE_RULES_DIR", "FLASK_APP", "CLINIC_NOW"):
        env.pop(name, None)
    return env


def load_app(env: dict[str, str]):
    """The real app in this process, configured like the servers (same SECRET_KEY, database)."""
    os.environ.clear()
    os.environ.update(env)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from clinic import create_app

    return create_app()


@dataclass
class Schedule:
    location: int
    lanes: list[int]
    shared: int
    searched: int
    others: list[int]
    patients: list[int]
    tokens: list[str]
    types: dict[str, int]


def build_schedule(app, lanes: int) -> Schedule:
    """Providers, hours, types and patients through the ORM, then one booking token each."""
    from clinic.extensions import db
    from clinic.scheduling import services
    from clinic.scheduling.models import AppointmentType, Provider, ProviderHours
    from clinic.tokens import make_token

    with app.app_context():
        location = bench_location(TIMEZONE)

        def provider(name: str, windows: list[tuple[int, clock, clock]]) -> Provider:
            p = Provider(name=name, title="MD", feed_token=services.new_feed_token())
            for weekday, start, end in windows:
                p.hours.append(
                    ProviderHours(
                        location=location, weekday=weekday, start_time=start, end_time=end
                    )
                )
            return p

        long_days = [(d, *LANE_HOURS) for d in range(7)]
        office = [(d, clock(h0), clock(h1)) for d in range(5) for h0, h1 in ((8, 12), (13, 17))]
        lane_providers = [provider(f"Dr. Lane {i}", long_days) for i in range(lanes)]
        shared = provider("Dr. Shared", long_days)
        searched = provider("Dr. Searched", office)
        others = [provider(f"Dr. Other {i}", office) for i in range(OTHER_PROVIDERS)]
        db.session.add_all([location, *lane_providers, shared, searched, *others])
        services.install_default_types()
        db.session.add(
            AppointmentType(
                code=TYPE_CODE,
                name="Benchmark slot",
                duration_minutes=15,
                buffer_before_minutes=0,
                buffer_after_minutes=0,
                step_minutes=15,
                min_notice_minutes=0,
                horizon_days=400,
                daily_cap=None,
                patient_bookable=True,
                active=True,
            )
        )
        patients = bench_patients("Bench", PATIENTS)
        db.session.add_all(patients)
        db.session.commit()
        types = {t.code: t.id for t in db.session.query(AppointmentType)}
        tokens = [make_token("booking", {"request_id": None, "patient_id": p.id}) for p in patients]
        schedule = Schedule(
            location=location.id,
            lanes=[p.id for p in lane_providers],
            shared=shared.id,
            searched=searched.id,
            others=[p.id for p in others],
            patients=[p.id for p in patients],
            tokens=tokens,
            types=types,
        )
        db.session.remove()
    return schedule


def lane_slots(today: date) -> list[str]:
    """Every bookable start of a lane provider from tomorrow on, as the app lays them out."""
    from clinic.scheduling import availability as av

    tz = ZoneInfo(TIMEZONE)
    weekly = [av.Window(d, *LANE_HOURS) for d in range(7)]
    step = timedelta(minutes=15)
    out = []
    for n in range(1, SLOT_DAYS + 1):
        for interval in av.working_intervals(today + timedelta(days=n), tz, weekly, {}):
            moment = interval.start
            while moment + step <= interval.end:
                out.append(moment.astimezone(tz).isoformat())
                moment += step
    return out


def write_plan(path: Path, schedule: Schedule, slots: list[str]) -> None:
    lines = [f"type {TYPE_CODE}", f"shared {schedule.shared}"]
    lines += [f"lane {p}" for p in schedule.lanes]
    lines += [f"slot {s}" for s in slots]
    lines += [f"token {t}" for t in schedule.tokens]
    path.write_text("\n".join(lines) + "\n")


# -- (a) booking throughput -----------------------------------------------------------------------


@dataclass
class BookRun:
    name: str
    wrk: WrkResult
    book: dict[str, int]
    first_other: str
    warm_409: int = 0
    all_rows: int = 0  # stored by the warm-up and the run, with the requests in flight at ends
    queued: int = -1  # Celery messages the run left in the broker's queue (the floor's), or -1
    ended: float = 0.0  # time.monotonic() when the load stopped
    new_rows: int = 0
    shared_rows: int = 0
    app_cpu_s: float = float("nan")
    db_cpu_s: float = float("nan")
    wrk_cpu_s: float = float("nan")
    busy_cpu_s: float = float("nan")  # all cores, all processes, over the measured run
    seconds: float = float("nan")

    def per_request_ms(self, seconds: float) -> float:
        return seconds / self.wrk.requests * 1000 if self.wrk.requests else float("nan")

    @property
    def other_cpu_s(self) -> float:
        """CPU used by processes that are not this run's (someone else's tests, say)."""
        return self.busy_cpu_s - self.app_cpu_s - self.db_cpu_s - self.wrk_cpu_s


def busy_cpu_seconds() -> float:
    """CPU seconds all cores have been busy since boot (everything but idle and iowait)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_book_wrk(
    wrk: str, server: Server, path: str, args, plan: Path, duration: int, first_slot: int
) -> tuple[WrkResult, dict[str, int], str]:
    connections = args.connections
    threads = min(args.wrk_threads, connections)
    cmd = [
        wrk,
        f"--threads={threads}",
        f"--connections={connections}",
        f"--duration={duration}s",
        "--timeout=10s",
        "--latency",
        f"--script={LUA}",
        server.url + path,
        "--",
        str(plan),
        path,
        str(first_slot),
        str(args.collide_every),
        str(threads),
        str(int(time.time() * 1000)),  # the collisions' clock starts now, for every thread
        str(COLLIDE_BUCKET_MS),
    ]
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=duration + 60, check=False, cwd=HERE
    )
    if done.returncode != 0:
        raise BenchError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    book = re.search(r"^BOOK (.*)$", done.stdout, re.MULTILINE)
    if not book:
        raise BenchError(f"wrk output has no BOOK line:\n{done.stdout}")
    counts = {k: int(v) for k, v in (pair.split("=") for pair in book.group(1).split())}
    other = re.search(r"^FIRST_OTHER (.*)$", done.stdout, re.MULTILINE)
    return parse_wrk(done.stdout), counts, other.group(1) if other else ""


def count(database_url: str, query: str, params: dict | None = None) -> int:
    with psycopg.connect(database_url, connect_timeout=5) as conn:
        return conn.execute(query, params or {}).fetchone()[0]


def measure_booking(
    server: Server,
    path: str,
    args,
    wrk: str,
    plan: Path,
    database_url: str,
    table: str,
    schedule: Schedule,
) -> BookRun:
    rows_at_start = count(database_url, f"SELECT count(*) FROM {table}")
    print(f"[bench] warming up {server.name} for {args.warmup}s", flush=True)
    _, warm, _ = run_book_wrk(wrk, server, path, args, plan, args.warmup, first_slot=0)
    time.sleep(1.0)
    shared_sql = "SELECT count(*) FROM appointment WHERE provider_id = %(p)s"
    rows_before = count(database_url, f"SELECT count(*) FROM {table}")
    shared_before = count(database_url, shared_sql, {"p": schedule.shared})
    app_before = process_cpu(gunicorn_pids(server.proc.pid))
    db_before = process_cpu(backend_pids(database_url, server.app_name))
    wrk_before, busy_before, t0 = children_cpu_seconds(), busy_cpu_seconds(), time.monotonic()
    print(f"[bench] loading {server.name} for {args.duration}s", flush=True)
    result, book, other = run_book_wrk(
        wrk, server, path, args, plan, args.duration, first_slot=WARM_SLOTS
    )
    run = BookRun(server.name, result, book, other, warm_409=warm["409"])
    run.ended = time.monotonic()
    run.seconds = run.ended - t0
    run.busy_cpu_s = busy_cpu_seconds() - busy_before
    run.wrk_cpu_s = children_cpu_seconds() - wrk_before
    run.app_cpu_s = cpu_delta(app_before, process_cpu(gunicorn_pids(server.proc.pid)))
    run.db_cpu_s = cpu_delta(db_before, process_cpu(backend_pids(database_url, server.app_name)))
    time.sleep(1.0)  # the requests in flight when wrk stopped
    rows = count(database_url, f"SELECT count(*) FROM {table}")
    run.new_rows = rows - rows_before
    run.all_rows = rows - rows_at_start
    run.shared_rows = count(database_url, shared_sql, {"p": schedule.shared}) - shared_before
    return run


def refused_inserts(database_url: str, idle_since: float) -> int:
    """Appointment rows inserted but not kept: the inserts the exclusion constraint refused.

    PostgreSQL counts aborted inserts in n_tup_ins too. A backend reports its counts at most
    10 s after it went idle, so this waits until 12 s after ``idle_since`` (time.monotonic()).
    """
    time.sleep(max(0.0, idle_since + STATS_DELAY_S - time.monotonic()))
    with psycopg.connect(database_url, connect_timeout=5) as conn:
        inserted = conn.execute(
            "SELECT n_tup_ins FROM pg_stat_user_tables WHERE relname = 'appointment'"
        ).fetchone()[0]
        kept = conn.execute("SELECT count(*) FROM appointment").fetchone()[0]
    return inserted - kept


def burst(server: Server, schedule: Schedule, slots: list[str], width: int) -> dict[int, int]:
    """BURST_ROUNDS times, ``width`` requests released together for one free shared slot.

    wrk's collisions seldom reach the database at the same moment (the availability check
    sees the first booking committed); these do, so the exclusion constraint has to decide.
    """
    codes: list[int] = []
    deadline = time.monotonic() + 120

    def post(patient: int, index: int, barrier: threading.Barrier) -> None:
        body = {
            "booking_token": schedule.tokens[patient],
            "appointment_type": TYPE_CODE,
            "provider_id": schedule.shared,
            "start": slots[index],
        }
        request = urllib.request.Request(
            server.url + BOOK_PATH,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            barrier.wait()
            with urllib.request.urlopen(request, timeout=30) as resp:
                codes.append(resp.status)
        except urllib.error.HTTPError as exc:
            codes.append(exc.code)
        except (OSError, threading.BrokenBarrierError):
            codes.append(0)

    for n in range(BURST_ROUNDS):
        if time.monotonic() > deadline:
            raise BenchError("the burst of simultaneous bookings took more than 120 s")
        index = len(slots) - BURST_ROUNDS + n  # far past anything wrk asked for
        barrier = threading.Barrier(width, timeout=30)
        workers = [
            threading.Thread(target=post, args=(i % len(schedule.tokens), index, barrier))
            for i in range(n * width, (n + 1) * width)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=60)
    return {code: codes.count(code) for code in sorted(set(codes))}


def overlapping(database_url: str) -> list[tuple]:
    with psycopg.connect(database_url, connect_timeout=5) as conn:
        conn.execute("SET statement_timeout = '300s'")
        return conn.execute(OVERLAPS_SQL, {"active": list(ACTIVE)}).fetchall()


def check_booking(runs: list[BookRun], overlaps: list, args) -> list[str]:
    """The app's run first, then the baseline's and, if run, the floor's."""
    problems = []
    slack = args.connections  # requests still in flight when wrk stopped counting
    app_run = runs[0]
    for run in runs:
        w, b = run.wrk, run.book
        if w.statuses["5xx"]:
            problems.append(f"{run.name}: {w.statuses['5xx']} responses were 5xx")
        if w.socket_error_total:
            problems.append(f"{run.name}: socket errors {w.socket_errors}")
        if w.requests != sum(w.statuses.values()):
            problems.append(f"{run.name}: wrk counted {w.requests} requests, lua {w.statuses}")
        unexpected = w.requests - b["201"] - b["409"]
        if unexpected:
            problems.append(
                f"{run.name}: {unexpected} responses neither 201 nor 409, first: {run.first_other}"
            )
        if b["exhausted"]:
            problems.append(f"{run.name}: ran out of slots {b['exhausted']} times")
        if not (b["201"] <= run.new_rows <= b["201"] + slack):
            problems.append(f"{run.name}: {run.new_rows} rows stored for {b['201']} responses 201")
    for run in runs[1:]:
        if run.book["409"]:
            problems.append(f"{run.name}: {run.book['409']} responses 409")
        if run.queued >= 0 and run.queued != run.all_rows:  # one message per committed row
            problems.append(f"{run.name}: {run.queued} messages queued for {run.all_rows} rows")
    # every shared slot reached is won once; every other collision request must get 409
    b = app_run.book
    due = b["collide_sent"] - app_run.shared_rows
    if abs(b["409"] - due) > slack:
        problems.append(
            f"app: {b['409']} responses 409 where {due} were due "
            f"({b['collide_sent']} collision requests, {app_run.shared_rows} shared slots won)"
        )
    if overlaps:
        problems.append(f"{len(overlaps)}+ pairs of overlapping active appointments: {overlaps}")
    return problems


def report_booking(
    facts: list[str],
    runs: list[BookRun],
    overlaps: list,
    refused: list[int],
    burst_codes: dict[int, int],
    args,
) -> float:
    print()
    print("Machine")
    for line in facts:
        print(f"  {line}")
    print()
    print("(a) Booking: POST /api/v1/appointments, patient path (booking_token in the body)")
    header = (
        f"{'server':<10} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'requests':>9} {'201':>7} "
        f"{'409':>6} {'other':>6} {'5xx':>4} {'sock err':>8} {'rows':>7}"
    )
    print(header)
    print("-" * len(header))
    for r in runs:
        w, b = r.wrk, r.book
        print(
            f"{r.name:<10} {w.rps:>8.1f} {w.p50_ms:>8.2f} {w.p99_ms:>8.2f} {w.requests:>9} "
            f"{b['201']:>7} {b['409']:>6} {w.requests - b['201'] - b['409']:>6} "
            f"{w.statuses['5xx']:>4} {w.socket_error_total:>8} {r.new_rows:>7}"
        )
    app_run, base_run = runs[0], runs[1]
    print()
    print("CPU per request (from /proc), and CPU used by other processes during the run")
    cpu_header = (
        f"{'server':<10} {'app ms':>7} {'db ms':>7} {'total ms':>8} {'wrk s':>6} "
        f"{'other s':>8} {'of cores':>8}"
    )
    print(cpu_header)
    print("-" * len(cpu_header))
    for r in runs:
        app_ms, db_ms = r.per_request_ms(r.app_cpu_s), r.per_request_ms(r.db_cpu_s)
        share = max(0.0, r.other_cpu_s) / (r.seconds * (os.cpu_count() or 1))
        print(
            f"{r.name:<10} {app_ms:>7.3f} {db_ms:>7.3f} {app_ms + db_ms:>8.3f} "
            f"{r.wrk_cpu_s:>6.1f} {r.other_cpu_s:>8.1f} {share:>8.0%}"
        )
    print(
        "other s = CPU seconds of all cores minus gunicorn, its PostgreSQL backends and wrk "
        "(PostgreSQL's background writers and anyone else's processes)"
    )
    b = app_run.book
    print()
    print(
        f"app collisions: {b['collide_sent']} requests for a shared slot (1 in "
        f"{args.collide_every}), {app_run.shared_rows} shared slots won, {b['409']} answered 409"
    )
    print(
        f"  of its {b['409'] + app_run.warm_409} answers 409 (warm-up included), {refused[0]} "
        f"came from the exclusion constraint refusing the INSERT (a race the availability check "
        f"could not see), the rest from the availability check"
    )
    print(
        f"burst: {BURST_ROUNDS} rounds of {args.workers} simultaneous requests for one slot: "
        f"{', '.join(f'{n} x {code}' for code, n in burst_codes.items())}; "
        f"{refused[1]} refused by the exclusion constraint"
    )
    print(f"overlapping active appointments (self-join on tstzrange &&): {len(overlaps)}")
    if len(runs) > 2:
        floor = runs[2]
        print(
            f"floor: the baseline's insert and, after its commit, a confirmation handed to Celery "
            f"({floor.queued:,} messages queued for {floor.all_rows:,} rows stored, warm-up "
            "included); nothing else"
        )
        print(
            f"  ratio floor req/s / baseline req/s = {floor.wrk.rps / base_run.wrk.rps:.3f}: the "
            "most a booking can reach here before any check, read or audit row"
        )
    ratio = app_run.wrk.rps / base_run.wrk.rps if base_run.wrk.rps else 0.0
    verdict = "met" if ratio >= args.min_ratio else "NOT met"
    print(f"ratio app req/s / baseline req/s = {ratio:.3f} (goal >= {args.min_ratio}: {verdict})")
    return ratio


# -- (b) slot search scaling ----------------------------------------------------------------------


def searched_rows(schedule: Schedule, today: date) -> list[tuple]:
    """The searched provider's few hundred consultations: 09:00 and 14:00, weekdays, +-4 months."""
    tz = ZoneInfo(TIMEZONE)
    now = datetime.now(UTC)
    rows = []
    for n in range(-120, 121):
        day = today + timedelta(days=n)
        if day.weekday() >= 5:
            continue
        for hour in (9, 14):
            start = datetime.combine(day, clock(hour), tzinfo=tz).astimezone(UTC)
            i = len(rows)
            status = "cancelled" if i % 10 == 0 else "fulfilled" if start < now else "booked"
            rows.append(
                (
                    schedule.patients[i % len(schedule.patients)],
                    schedule.searched,
                    schedule.location,
                    schedule.types[SEARCH_TYPE],
                    status,
                    start,
                    start + timedelta(minutes=45),
                    start,
                    start + timedelta(minutes=60),
                    0,
                    "patient",
                    start - timedelta(days=14),
                    start - timedelta(days=14),
                )
            )
    return rows


def bulk_load(database_url: str, schedule: Schedule, lo: int, hi: int, origin: datetime) -> float:
    """Rows lo..hi-1 of the other providers' appointments; returns the seconds it took."""
    t0 = time.monotonic()
    with psycopg.connect(database_url, connect_timeout=5) as conn:
        conn.execute("SET statement_timeout = '600s'")
        conn.execute(
            BULK_SQL,
            {
                "patients": schedule.patients,
                "n_patients": len(schedule.patients),
                "providers": schedule.others,
                "n_providers": len(schedule.others),
                "location": schedule.location,
                "type": schedule.types[SEARCH_TYPE],
                "lo": lo,
                "hi": hi,
                "origin": origin,
                "spacing": SPACING_MINUTES,
                "stride": STRIDE,
                "positions": POSITIONS,
            },
        )
    with psycopg.connect(database_url, connect_timeout=5, autocommit=True) as conn:
        conn.execute("SET statement_timeout = '600s'")
        conn.execute("VACUUM (ANALYZE) appointment")
    return time.monotonic() - t0


def search_path(schedule: Schedule, first: date, days: int) -> str:
    last = first + timedelta(days=days - 1)  # the API's end day is inclusive
    return (
        f"/api/v1/slots?appointment_type={SEARCH_TYPE}&start={first.isoformat()}"
        f"&end={last.isoformat()}&provider_id={schedule.searched}"
    )


def timed_get(port: int, path: str) -> tuple[float, int, bytes]:
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
    finally:
        conn.close()
    return (time.perf_counter() - t0) * 1000, resp.status, body


@dataclass
class SearchRun:
    rows: int
    load_s: float
    latencies_ms: list[float]
    slots: int
    other_share: float  # of all cores, used by other processes during the timed searches
    plans: list[dict] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.latencies_ms)

    @property
    def p90(self) -> float:
        return statistics.quantiles(self.latencies_ms, n=10)[-1]


def measure_search(
    server: Server, path: str, args, database_url: str
) -> tuple[list[float], int, float]:
    """Latencies of sequential searches, the number of slots found, and the share of all cores
    that other processes (not this one, the app's gunicorn or its PostgreSQL backends) used."""
    deadline = time.monotonic() + 300
    latencies, slots = [], set()
    for _ in range(args.search_warmup):
        if time.monotonic() > deadline:
            raise BenchError("the slot search took more than 300 s")
        timed_get(server.port, path)
    app_before = process_cpu(gunicorn_pids(server.proc.pid))
    db_before = process_cpu(backend_pids(database_url, server.app_name))
    own_before, busy_before, t0 = time.process_time(), busy_cpu_seconds(), time.monotonic()
    for _ in range(args.search_requests):
        if time.monotonic() > deadline:
            raise BenchError("the slot search took more than 300 s")
        ms, status, body = timed_get(server.port, path)
        if status != 200:
            raise BenchError(f"GET {path}: HTTP {status}: {body[:300]!r}")
        latencies.append(ms)
        slots.add(len(json.loads(body)))
    elapsed = time.monotonic() - t0
    other = (
        busy_cpu_seconds()
        - busy_before
        - (time.process_time() - own_before)
        - cpu_delta(app_before, process_cpu(gunicorn_pids(server.proc.pid)))
        - cpu_delta(db_before, process_cpu(backend_pids(database_url, server.app_name)))
    )
    if len(slots) != 1:
        raise BenchError(f"the search answered different numbers of slots: {sorted(slots)}")
    return latencies, slots.pop(), max(0.0, other) / (elapsed * (os.cpu_count() or 1))


def label(statement: str) -> str:
    s = " ".join(statement.split())
    if "FROM appointment" in s:
        return "_booked_per_day" if "appointment_type_id =" in s else "_busy (appointments)"
    for table, name in (
        ("time_off", "_busy (time off)"),
        ("provider_hours", "schedules (provider.hours)"),
        ("schedule_exception", "schedules (exceptions)"),
        ("clinic_closure", "schedules (closures)"),
        ("location", "locations"),
        ("provider", "provider"),
    ):
        if f"FROM {table}" in s:
            return name
    return s[:60]


def _scans(node: dict, out: list[str]) -> None:
    if "Scan" in node.get("Node Type", ""):
        where = f" using {node['Index Name']}" if node.get("Index Name") else ""
        removed = node.get("Rows Removed by Filter", 0)
        table = f" on {node['Relation Name']}" if node.get("Relation Name") else ""
        out.append(
            f"{node['Node Type']}{where}{table}: "
            f"{node.get('Actual Rows', 0)} rows"
            + (f", {removed} removed by filter" if removed else "")
        )
    for child in node.get("Plans", []):
        _scans(child, out)


def explain_search(app, schedule: Schedule, first: date, days: int) -> list[dict]:
    """Run services.search_slots in this process, capture its SQL, EXPLAIN ANALYZE each."""
    from sqlalchemy import event

    from clinic.extensions import db
    from clinic.scheduling import services
    from clinic.scheduling.models import AppointmentType, Provider

    tz = ZoneInfo(TIMEZONE)
    start = datetime.combine(first, clock(0), tzinfo=tz)
    end = datetime.combine(first + timedelta(days=days), clock(0), tzinfo=tz)
    captured: list[tuple[str, dict]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        captured.append((statement, parameters))

    with app.app_context():
        appointment_type = db.session.get(AppointmentType, schedule.types[SEARCH_TYPE])
        provider = db.session.get(Provider, schedule.searched)
        engine = db.engine
        event.listen(engine, "before_cursor_execute", capture)
        try:
            services.search_slots(
                appointment_type, start, end, now=datetime.now(UTC), provider=provider
            )
        finally:
            event.remove(engine, "before_cursor_execute", capture)
        db.session.rollback()
        plans = []
        with engine.connect() as conn:
            for statement, parameters in captured:
                if not statement.lstrip().upper().startswith("SELECT"):
                    continue
                runs = []
                for _ in range(5):
                    (doc,) = conn.exec_driver_sql(
                        "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + statement, parameters
                    ).one()
                    runs.append(doc[0])
                text = conn.exec_driver_sql(
                    "EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters
                ).all()
                scans: list[str] = []
                _scans(runs[-1]["Plan"], scans)
                plans.append(
                    {
                        "label": label(statement),
                        "ms": statistics.median(r["Execution Time"] for r in runs),
                        "scans": scans,
                        "text": "\n".join(row[0] for row in text),
                        "sql": statement,
                    }
                )
            conn.rollback()
        db.session.remove()
    return plans


def report_search(runs: list[SearchRun], args) -> float:
    print()
    print("(b) Slot search: GET /api/v1/slots, one provider, 30 days, type consultation")
    header = (
        f"{'appointments':>12} {'load s':>7} {'median ms':>9} {'p90 ms':>7} {'min ms':>7} "
        f"{'slots':>6} {'others':>6}"
    )
    print(header)
    print("-" * len(header))
    for r in runs:
        print(
            f"{r.rows:>12,} {r.load_s:>7.1f} {r.median:>9.2f} {r.p90:>7.2f} "
            f"{min(r.latencies_ms):>7.2f} {r.slots:>6} {r.other_share:>6.0%}"
        )
    print(
        f"sequential, {args.search_requests} timed after {args.search_warmup} untimed; others = "
        "the share of all cores other processes used meanwhile (not this script, the app, its "
        "PostgreSQL backends)"
    )
    small, big = runs
    print()
    print("SQL of services.search_slots, EXPLAIN ANALYZE (median execution time of 5)")
    for a, b in zip(small.plans, big.plans, strict=True):
        print(f"  {a['label']:<28} {a['ms']:>7.3f} ms -> {b['ms']:>7.3f} ms")
        for scan in b["scans"]:
            print(f"      {scan}")
    ratio = big.median / small.median
    verdict = "met" if ratio <= args.max_search_ratio else "NOT met"
    print(
        f"ratio median({big.rows:,}) / median({small.rows:,}) = {ratio:.3f} "
        f"(goal <= {args.max_search_ratio}: {verdict})"
    )
    if ratio > args.max_search_ratio:
        print("\nFull plans at the larger size:")
        for plan in big.plans:
            print(f"\n-- {plan['label']}\n{plan['sql']}\n{plan['text']}")
    return ratio


# -- the run --------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=int, default=30, help="seconds of booking load per server")
    p.add_argument("--warmup", type=int, default=3, help="seconds of warm-up load per server")
    p.add_argument("--connections", type=int, default=32, help="wrk connections (= lanes)")
    p.add_argument("--wrk-threads", type=int, default=2, help="wrk threads")
    p.add_argument("--workers", type=int, default=4, help="gunicorn workers per server")
    p.add_argument("--worker-class", choices=("sync", "gthread"), default="sync")
    p.add_argument("--threads", type=int, default=1, help="threads per gthread worker")
    p.add_argument("--collide-every", type=int, default=20, help="1 request in N collides")
    p.add_argument("--min-ratio", type=float, default=0.6, help="goal for app / baseline")
    p.add_argument("--search-requests", type=int, default=200, help="timed slot searches")
    p.add_argument("--search-warmup", type=int, default=20, help="untimed slot searches first")
    p.add_argument("--small", type=int, default=10_000, help="appointments, first search")
    p.add_argument("--big", type=int, default=1_000_000, help="appointments, second search")
    p.add_argument("--max-search-ratio", type=float, default=1.5, help="goal for big / small")
    p.add_argument("--only", choices=("booking", "search"), help="run one part only")
    p.add_argument(
        "--floor",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also load the floor server (the baseline's insert + a Celery publish)",
    )
    args = p.parse_args(argv)
    if not (1 <= args.duration <= 600 and 0 <= args.warmup <= 60):
        p.error("--duration must be 1..600 and --warmup 0..60 seconds")
    if not (1 <= args.connections <= 256 and 1 <= args.workers <= 32 and args.wrk_threads >= 1):
        p.error("--connections must be 1..256, --workers 1..32, --wrk-threads >= 1")
    if not (args.collide_every == 0 or args.collide_every >= 2):
        p.error("--collide-every must be 0 (no collisions) or >= 2")
    if not (1_000 <= args.small < args.big <= POSITIONS * OTHER_PROVIDERS):
        p.error(f"need 1000 <= --small < --big <= {POSITIONS * OTHER_PROVIDERS}")
    if not (10 <= args.search_requests <= 5000 and 0 <= args.search_warmup <= 1000):
        p.error("--search-requests must be 10..5000 and --search-warmup 0..1000")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wrk = shutil.which("wrk")
    if wrk is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 3
    budget = 900 + 2 * (args.warmup + args.duration + 15)
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.signal(signal.SIGTERM, _on_term)
    signal.alarm(budget)

    tag = secrets.token_hex(4)
    db_name = f"clinic_bench_booking_{tag}"
    database_url = f"{PG_SERVER}/{db_name}"
    tmp = Path(tempfile.mkdtemp(prefix="clinic-bench-booking-"))
    servers: list[Server] = []
    db_created = False
    app = None
    rc = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
    problems: list[str] = []
    goals_met = True
    try:
        rc.ping()
        if rc.dbsize():
            print(f"[bench] note: {REDIS_URL} holds {rc.dbsize()} keys; it is flushed at the end")
        busy = cpu_busy()
        create_database(db_name)
        db_created = True
        print(f"[bench] database {db_name}: running the migrations", flush=True)
        env = server_env(database_url, tmp)
        flask = str(venv_bin("flask"))
        run_checked([flask, "--app", "clinic", "db", "upgrade"], env=env, cwd=ROOT, timeout=180)
        python = str(venv_bin("python"))
        run_checked([python, "baseline_app.py", "create-table"], env=env, cwd=HERE, timeout=60)
        app = load_app(env)
        schedule = build_schedule(app, args.connections)
        today = datetime.now(ZoneInfo(TIMEZONE)).date()
        slots = lane_slots(today)
        if len(slots) < 2 * WARM_SLOTS:
            raise BenchError(f"only {len(slots)} slots per lane")
        plan = tmp / "plan.txt"
        write_plan(plan, schedule, slots)
        print(
            f"[bench] {len(schedule.lanes)} lane providers + 1 shared, {len(slots)} slots each "
            f"({WARM_SLOTS} for the warm-ups), {len(schedule.tokens)} patients with tokens",
            flush=True,
        )

        application = Server("app", "wsgi:app", ROOT, env, "/healthz", tmp / "app.log")
        baseline = Server("baseline", "baseline_app:app", HERE, env, "/ping", tmp / "base.log")
        floor = Server("floor", "baseline_app:floor", HERE, env, "/ping", tmp / "floor.log")
        servers = [application]
        if args.only != "search":
            servers += [baseline, floor] if args.floor else [baseline]
        for server in servers:
            server.start(args)
        for server in servers:
            server.wait_ready()
        print(f"[bench] servers: {', '.join(f'{s.name} {s.url}' for s in servers)}", flush=True)
        settle(timeout=20.0)
        intake.REDIS_URL = REDIS_URL  # machine_facts asks this Redis for its version
        facts = machine_facts(args, wrk, database_url)
        facts.append(f"CPU busy before the run (other processes): {busy:.0%}")

        if args.only != "search":
            runs = [
                measure_booking(
                    application, BOOK_PATH, args, wrk, plan, database_url, "appointment", schedule
                )
            ]
            for server in servers[1:]:  # the baseline, then the floor: the same bodies
                queued = rc.llen(CELERY_QUEUE)
                run = measure_booking(
                    server,
                    BASELINE_PATH,
                    args,
                    wrk,
                    plan,
                    database_url,
                    "bench_baseline_request",
                    schedule,
                )
                if server is floor:  # the only one of the two that hands messages to Celery
                    run.queued = rc.llen(CELERY_QUEUE) - queued
                runs.append(run)
                server.stop()
            refused = [refused_inserts(database_url, runs[0].ended)]
            print(f"[bench] {BURST_ROUNDS} bursts of {args.workers} simultaneous bookings")
            burst_codes = burst(application, schedule, slots, args.workers)
            burst_ended = time.monotonic()
            print("[bench] checking for overlapping appointments", flush=True)
            overlaps = overlapping(database_url)
            refused.append(refused_inserts(database_url, burst_ended) - refused[0])
            ratio = report_booking(facts, runs, overlaps, refused, burst_codes, args)
            problems += check_booking(runs, overlaps, args)
            if burst_codes != {201: BURST_ROUNDS, 409: BURST_ROUNDS * (args.workers - 1)}:
                problems.append(
                    f"burst: {burst_codes}, wanted one 201 and {args.workers - 1} 409 per round"
                )
            goals_met &= ratio >= args.min_ratio
        else:
            print("\nMachine\n" + "\n".join(f"  {line}" for line in facts))

        if args.only != "booking":
            with psycopg.connect(database_url, connect_timeout=5, autocommit=True) as conn:
                conn.execute("TRUNCATE appointment CASCADE")
            first = today + timedelta(days=2)  # past the type's 12 h notice
            path = search_path(schedule, first, 30)
            own = searched_rows(schedule, today)
            with (
                psycopg.connect(database_url, connect_timeout=5) as conn,
                conn.cursor() as cur,
            ):
                cur.executemany(
                    "INSERT INTO appointment (patient_id, provider_id, location_id, "
                    "appointment_type_id, status, start_at, end_at, occupied_start, "
                    "occupied_end, sequence, source, created_at, updated_at) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    own,
                )
            origin = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(
                days=3 * 365
            )
            search_runs = []
            loaded = 0
            for total in (args.small, args.big):
                print(f"[bench] bulk-loading to {total:,} appointments", flush=True)
                load_s = bulk_load(database_url, schedule, loaded, total - len(own), origin)
                loaded = total - len(own)
                rows = count(database_url, "SELECT count(*) FROM appointment")
                if rows != total:
                    raise BenchError(f"{rows} appointments loaded, {total} wanted")
                print(f"[bench] searching ({rows:,} appointments)", flush=True)
                latencies, found, others = measure_search(application, path, args, database_url)
                run = SearchRun(rows, load_s, latencies, found, others)
                run.plans = explain_search(app, schedule, first, 30)
                search_runs.append(run)
            search_ratio = report_search(search_runs, args)
            if search_runs[0].slots != search_runs[1].slots:
                problems.append(
                    f"search: {search_runs[0].slots} slots at the small size, "
                    f"{search_runs[1].slots} at the big one"
                )
            goals_met &= search_ratio <= args.max_search_ratio

        if problems:
            print("\nCHECKS FAILED")
            for problem in problems:
                print(f"  {problem}")
            for server in servers:
                print(f"\n{server.name} log tail:\n{server.log_tail()}")
            return 1
        print("\nchecks passed: no 5xx, no overlaps, every 201 stored, 409 only where due")
        return 0 if goals_met else 2
    except (BenchError, TimeoutError, subprocess.TimeoutExpired, OSError, psycopg.Error) as exc:
        print(f"[bench] could not run: {exc}", file=sys.stderr)
        for server in servers:
            print(f"\n{server.name} log tail:\n{server.log_tail()}", file=sys.stderr)
        return 3
    except redis.RedisError as exc:
        print(f"[bench] Redis on {REDIS_URL}: {exc}", file=sys.stderr)
        return 3
    finally:
        signal.alarm(0)
        for server in servers:
            server.stop()
        dispose(app)
        leave_clean([db_name] if db_created else [], rc, REDIS_URL, tmp)


if __name__ == "__main__":
    sys.exit(main())
