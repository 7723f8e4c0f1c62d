"""Load test of POST /api/v1/consultation-requests against a bare Flask + SQLAlchemy baseline.

    .venv/bin/python bench/intake.py [--duration 20] [--connections 16] [--workers 4]

In one run it: creates a fresh PostgreSQL database, runs the migrations on it, starts two
gunicorns with the same worker settings on free 127.0.0.1 ports, one serving the real app
(``wsgi:app``) and one serving ``bench/baseline_app.py`` (one JSON INSERT per request), warms
both up, loads each with wrk (``bench/post.lua``: the example intake body, a new email address
per request unless --same-patient), checks that the rows were stored and that no 5xx came back,
and prints a table with req/s, p50/p99 latency, the errors and the ratio intake ÷ baseline.

The load is split into --rounds windows per server and the servers take turns, intake then
baseline, then baseline then intake, and so on (AB BA AB BA): this virtual machine's speed drifts
by up to 2x within minutes, and one long window per server measured the drift as much as the
code. The ratio is over all windows (requests ÷ loaded seconds per server); each round's own
ratio is printed too.
Both gunicorns are stopped, the database is dropped and Redis db 14 is flushed at the end, also
on errors. Needs PostgreSQL on 127.0.0.1:5432 (user postgres), Redis on 127.0.0.1:6379 and wrk.

Exit status: 0 when every check passed and the ratio met --min-ratio, 1 when a check failed
(5xx, socket errors, missing rows or tasks), 2 when the checks passed but the ratio is below
--min-ratio, 3 when the run could not be made (a service missing, a timeout).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import psycopg
import redis
from psycopg import sql

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PG_SERVER = "postgresql://postgres@127.0.0.1:5432"
REDIS_URL = "redis://127.0.0.1:6379/14"
ENDPOINT = "/api/v1/consultation-requests"
LUA = HERE / "post.lua"
LATENCY_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


class BenchError(RuntimeError):
    """The run could not be made."""


# -- processes ------------------------------------------------------------------------------------


def venv_bin(name: str) -> Path:
    for folder in (Path(sys.executable).parent, ROOT / ".venv" / "bin"):
        if (folder / name).exists():
            return folder / name
    raise BenchError(f"{name} not found next to {sys.executable} nor in .venv/bin")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    name: str
    app: str
    chdir: Path
    env: dict[str, str]
    ready_path: str
    log: Path
    port: int = 0
    proc: subprocess.Popen | None = None

    @property
    def app_name(self) -> str:
        return f"bench_{self.name}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, args: argparse.Namespace) -> None:
        self.port = free_port()
        cmd = [
            str(venv_bin("gunicorn")),
            "--chdir",
            str(self.chdir),
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            str(args.workers),
            "--worker-class",
            args.worker_class,
            "--threads",
            str(args.threads),
            "--timeout",
            "30",
            "--graceful-timeout",
            "5",
            "--log-level",
            "warning",
            self.app,
        ]
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                cmd,
                cwd=self.chdir,
                env={
                    **self.env,
                    # tells this app's PostgreSQL backends apart, to count their CPU time
                    "DATABASE_URL": f"{self.env['DATABASE_URL']}?application_name={self.app_name}",
                },
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() ends master and workers
            )

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                raise BenchError(f"{self.name} gunicorn exited early:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + self.ready_path, timeout=5) as resp:
                    if resp.status == 200:
                        return
                    last = f"HTTP {resp.status}"
            except (OSError, urllib.error.URLError) as exc:
                last = str(exc)
            time.sleep(0.3)
        raise BenchError(f"{self.name} not ready after {timeout:.0f}s ({last}):\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        pgid = self.proc.pid  # the group start_new_session made; holds only this gunicorn
        for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                return
            try:
                self.proc.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


# -- database -------------------------------------------------------------------------------------


def admin_connect() -> psycopg.Connection:
    return psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True, connect_timeout=5)


def create_database(name: str) -> None:
    with admin_connect() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def drop_database(name: str) -> None:
    with admin_connect() as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def count_rows(database_url: str, table: str) -> int:
    with psycopg.connect(database_url, connect_timeout=5) as conn:
        query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
        return conn.execute(query).fetchone()[0]


def run_checked(cmd: list[str], *, env: dict[str, str], cwd: Path, timeout: float) -> str:
    done = subprocess.run(
        cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise BenchError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done.stdout


# -- rows, shared by the scheduling benches ------------------------------------------------------


def bench_location(timezone: str = "America/New_York"):
    """The benches' one clinic location (a new, unsaved row; call inside an app context)."""
    from clinic.scheduling.models import Location

    return Location(
        name="Bench Street",
        address_line1="1 Bench Street",
        city="Springfield",
        state="MA",
        zip="01103",
        phone="(555) 010-0199",
        timezone=timezone,
    )


def bench_patients(first_name: str, count: int) -> list:
    """``count`` new, unsaved patients named <first_name><i> Patient, each with an email."""
    from clinic.models import Patient

    return [
        Patient(
            first_name=f"{first_name}{i}",
            last_name="Patient",
            date_of_birth=date(1950, 1, 1) + timedelta(days=i),
            email=f"{first_name.lower()}{i}@example.com",
            preferred_contact="email",
        )
        for i in range(count)
    ]


# -- clean-up, shared by the benches -------------------------------------------------------------


def dispose(app) -> None:
    """Close an in-process app's database connections (before its database is dropped)."""
    if app is None:
        return
    from clinic.extensions import db

    try:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
    except Exception as exc:  # the database is dropped WITH (FORCE) anyway
        print(f"[bench] could not close the app's connections: {exc}", file=sys.stderr)


def leave_clean(databases: list[str], rc: redis.Redis, redis_url: str, tmp: Path) -> None:
    """Drop the bench's databases, flush its Redis db, remove its temporary folder; never raise."""
    for name in databases:
        try:
            drop_database(name)
        except psycopg.Error as exc:
            print(f"[bench] could not drop {name}: {exc}", file=sys.stderr)
    try:
        rc.flushdb()
    except redis.RedisError as exc:
        print(f"[bench] could not flush {redis_url}: {exc}", file=sys.stderr)
    shutil.rmtree(tmp, ignore_errors=True)


# -- wrk ------------------------------------------------------------------------------------------


@dataclass
class WrkResult:
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: dict[str, int]
    statuses: dict[str, int]
    raw: str = field(repr=False)

    @property
    def socket_error_total(self) -> int:
        return sum(self.socket_errors.values())


def _to_ms(value: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", value)
    if not m:
        raise BenchError(f"cannot read the latency {value!r}")
    return float(m.group(1)) * LATENCY_UNITS_MS[m.group(2)]


def parse_wrk(out: str) -> WrkResult:
    def need(pattern: str) -> re.Match:
        m = re.search(pattern, out, re.MULTILINE)
        if not m:
            raise BenchError(f"wrk output has no match for {pattern!r}:\n{out}")
        return m

    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    socket_errors = dict.fromkeys(("connect", "read", "write", "timeout"), 0)
    if sockets:
        socket_errors = dict(zip(socket_errors, map(int, sockets.groups()), strict=True))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    status = need(r"^STATUS 2xx=(\d+) 3xx=(\d+) 4xx=(\d+) 5xx=(\d+) other=(\d+)$")
    return WrkResult(
        requests=int(need(r"(\d+) requests in ").group(1)),
        rps=float(need(r"^Requests/sec:\s+([\d.]+)").group(1)),
        p50_ms=_to_ms(need(r"^\s+50(?:\.0+)?%\s+(\S+)").group(1)),
        p99_ms=_to_ms(need(r"^\s+99(?:\.0+)?%\s+(\S+)").group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=socket_errors,
        statuses=dict(
            zip(("2xx", "3xx", "4xx", "5xx", "other"), map(int, status.groups()), strict=True)
        ),
        raw=out,
    )


def run_wrk(
    wrk: str, url: str, args: argparse.Namespace, duration: int, body_file: Path, tag: str
) -> WrkResult:
    connections = args.connections
    cmd = [
        wrk,
        f"--threads={min(args.wrk_threads, connections)}",
        f"--connections={connections}",
        f"--duration={duration}s",
        "--timeout=10s",
        "--latency",
        f"--script={LUA}",
        url + ENDPOINT,
        "--",
        str(body_file),
        tag,
    ]
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=duration + 60, check=False, cwd=HERE
    )
    if done.returncode != 0:
        raise BenchError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return parse_wrk(done.stdout)


# -- the run --------------------------------------------------------------------------------------


@dataclass
class Measured:
    name: str
    wrk: WrkResult
    rows: int
    app_cpu_s: float = float("nan")
    db_cpu_s: float = float("nan")
    extra: dict[str, int] = field(default_factory=dict)

    def per_row_ms(self, seconds: float) -> float:
        return seconds / self.rows * 1000 if self.rows else float("nan")


def cpu_busy(seconds: float = 1.0) -> float:
    """The share of all cores busy over ``seconds`` (before the load: is anything else running?)."""

    def sample() -> tuple[int, int]:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
        return sum(values), idle

    try:
        total0, idle0 = sample()
        time.sleep(seconds)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return float("nan")
    return 1.0 - (idle1 - idle0) / max(1, total1 - total0)


def process_cpu(pids: list[int]) -> dict[int, float]:
    """CPU seconds (user + system) used so far by each of these processes that still runs."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        out[pid] = (int(fields[11]) + int(fields[12])) / tick
    return out


def gunicorn_pids(master: int) -> list[int]:
    """The master and its workers."""
    pids = [master]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == master:
                    pids.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return pids


def backend_pids(database_url: str, application_name: str) -> list[int]:
    """The PostgreSQL server processes serving one of the two apps (by application_name)."""
    with psycopg.connect(database_url, connect_timeout=5) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s", [application_name]
        ).fetchall()
    return [pid for (pid,) in rows]


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(t - before.get(pid, 0.0) for pid, t in after.items())


def settle(timeout: float) -> None:
    """Wait until the CPUs are mostly idle (gunicorn workers booting), at most ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and cpu_busy(0.5) > 0.15:
        pass


def machine_facts(args: argparse.Namespace, wrk: str, database_url: str) -> list[str]:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gunicorn = subprocess.run(
        [str(venv_bin("gunicorn")), "--version"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    ).stdout.strip()
    wrk_out = subprocess.run([wrk, "-v"], capture_output=True, text=True, timeout=10, check=False)
    wrk_version = (wrk_out.stdout.splitlines() or ["wrk"])[0].split(" [")[0]
    with psycopg.connect(database_url, connect_timeout=5) as conn:
        pg = conn.execute("SHOW server_version").fetchone()[0]
    redis_version = redis.Redis.from_url(REDIS_URL).info("server").get("redis_version", "?")
    threads = f", {args.threads} threads each" if args.worker_class == "gthread" else ""
    return [
        f"cores: {os.cpu_count()} ({cpu})",
        f"Python {platform.python_version()} on {platform.system()} {platform.release()}",
        f"{gunicorn}: {args.workers} {args.worker_class} workers{threads} per server",
        f"PostgreSQL {pg}, Redis {redis_version}, {wrk_version}",
        f"load: wrk {min(args.wrk_threads, args.connections)} threads, {args.connections} "
        f"connections, {args.duration}s after a {args.warmup}s warm-up, on the same machine",
    ]


def write_body(path: Path, same_patient: bool) -> None:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from clinic.api.openapi import EXAMPLE_REQUEST

    body = dict(EXAMPLE_REQUEST)
    if not same_patient:
        body["email"] = "bench-__SEQ__@example.com"  # post.lua fills in a unique sequence
    path.write_text(json.dumps(body))


def warm_up(server: Server, args: argparse.Namespace, wrk: str, body_file: Path, tag: str) -> None:
    print(f"[bench] warming up {server.name} for {args.warmup}s", flush=True)
    if args.warmup:
        run_wrk(wrk, server.url, args, args.warmup, body_file, f"{tag}w")
    time.sleep(1.0)


def measure(
    server: Server,
    args: argparse.Namespace,
    wrk: str,
    body_file: Path,
    database_url: str,
    table: str,
    tag: str,
    seconds: int,
    redis_client: redis.Redis | None = None,
) -> Measured:
    """One window of load on one server: wrk for ``seconds``, rows and CPU before and after."""
    rows_before = count_rows(database_url, table)
    patients_before = count_rows(database_url, "patient") if redis_client else 0
    acks_before = count_rows(database_url, "notification") if redis_client else 0
    app_before = process_cpu(gunicorn_pids(server.proc.pid))
    db_before = process_cpu(backend_pids(database_url, server.app_name))
    print(f"[bench] loading {server.name} for {seconds}s", flush=True)
    result = run_wrk(wrk, server.url, args, seconds, body_file, tag)
    time.sleep(2.0)  # requests in flight when wrk stopped still finish on the server
    measured = Measured(server.name, result, count_rows(database_url, table) - rows_before)
    measured.app_cpu_s = cpu_delta(app_before, process_cpu(gunicorn_pids(server.proc.pid)))
    db_after = process_cpu(backend_pids(database_url, server.app_name))
    measured.db_cpu_s = cpu_delta(db_before, db_after)
    if redis_client:
        patients_after = count_rows(database_url, "patient")
        measured.extra["patients"] = patients_after - patients_before
        measured.extra["patients_total"] = patients_after
        # the acknowledgement: a message row committed with each request (the dispatcher,
        # not the request, hands it to Celery)
        measured.extra["acks"] = count_rows(database_url, "notification") - acks_before
    return measured


def window_seconds(args: argparse.Namespace) -> int:
    return max(1, round(args.duration / args.rounds))


def round_order(first, second, rounds: int) -> list[tuple[int, object]]:
    """(round, server) in the order they are loaded: AB BA AB BA ..., so a machine that speeds
    up or slows down steadily during the run favours neither server."""
    order = []
    for r in range(rounds):
        pair = (first, second) if r % 2 == 0 else (second, first)
        order.extend((r, server) for server in pair)
    return order


def combine(windows: list[Measured]) -> Measured:
    """One server's windows as one measurement: counts and CPU summed, req/s over the loaded
    time of all windows, p50 the median of the windows' p50s, p99 the highest window p99."""
    results = [m.wrk for m in windows]
    loaded_s = sum(w.requests / w.rps for w in results if w.rps)
    requests = sum(w.requests for w in results)
    socket_errors = {k: sum(w.socket_errors[k] for w in results) for k in results[0].socket_errors}
    statuses = {k: sum(w.statuses[k] for w in results) for k in results[0].statuses}
    wrk = WrkResult(
        requests=requests,
        rps=requests / loaded_s if loaded_s else 0.0,
        p50_ms=statistics.median(w.p50_ms for w in results),
        p99_ms=max(w.p99_ms for w in results),
        non_2xx=sum(w.non_2xx for w in results),
        socket_errors=socket_errors,
        statuses=statuses,
        raw="\n".join(w.raw for w in results),
    )
    combined = Measured(windows[0].name, wrk, sum(m.rows for m in windows))
    combined.app_cpu_s = sum(m.app_cpu_s for m in windows)
    combined.db_cpu_s = sum(m.db_cpu_s for m in windows)
    for key in ("patients", "acks"):
        if key in windows[0].extra:
            combined.extra[key] = sum(m.extra[key] for m in windows)
    if "patients_total" in windows[-1].extra:
        combined.extra["patients_total"] = max(m.extra["patients_total"] for m in windows)
    return combined


def round_ratios(app: list[Measured], baseline: list[Measured]) -> list[float]:
    return [a.wrk.rps / b.wrk.rps if b.wrk.rps else 0.0 for a, b in zip(app, baseline, strict=True)]


def check(m: Measured, args: argparse.Namespace) -> list[str]:
    """What is wrong with one measurement (an empty list when all is well)."""
    w = m.wrk
    problems = []
    if w.statuses["5xx"]:
        problems.append(f"{m.name}: {w.statuses['5xx']} responses were 5xx")
    if w.non_2xx:
        problems.append(f"{m.name}: {w.non_2xx} responses were not 2xx ({w.statuses})")
    if w.socket_error_total:
        problems.append(f"{m.name}: socket errors {w.socket_errors}")
    ok = w.statuses["2xx"]
    if w.requests != sum(w.statuses.values()):
        problems.append(f"{m.name}: wrk counted {w.requests} requests, lua {w.statuses}")
    # wrk stops counting at the deadline; up to one request per connection may still land
    if not (ok <= m.rows <= ok + args.connections):
        problems.append(f"{m.name}: {m.rows} rows stored for {ok} 2xx responses")
    if "patients" in m.extra:
        expected_patients = 0 if args.same_patient else m.rows
        if m.extra["patients"] != expected_patients:
            problems.append(
                f"{m.name}: {m.extra['patients']} new patients, expected {expected_patients}"
            )
    if "acks" in m.extra and m.extra["acks"] != m.rows:
        problems.append(f"{m.name}: {m.extra['acks']} acknowledgement rows for {m.rows} requests")
    return problems


def report(
    facts: list[str], results: list[Measured], ratios: list[float], args: argparse.Namespace
) -> float:
    print()
    print("Machine")
    for line in facts:
        print(f"  {line}")
    print()
    header = (
        f"{'server':<10} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'requests':>9} "
        f"{'non-2xx':>8} {'5xx':>5} {'sock err':>9} {'rows':>8}"
    )
    print(header)
    print("-" * len(header))
    for m in results:
        w = m.wrk
        print(
            f"{m.name:<10} {w.rps:>9.1f} {w.p50_ms:>8.2f} {w.p99_ms:>8.2f} {w.requests:>9} "
            f"{w.non_2xx:>8} {w.statuses['5xx']:>5} {w.socket_error_total:>9} {m.rows:>8}"
        )
    intake, baseline = results
    ratio = intake.wrk.rps / baseline.wrk.rps if baseline.wrk.rps else 0.0
    print()
    print("CPU time per stored row (from /proc; much less sensitive than req/s to other load)")
    cpu_header = f"{'server':<10} {'app ms':>8} {'db ms':>8} {'total ms':>9}"
    print(cpu_header)
    print("-" * len(cpu_header))
    totals = []
    for m in results:
        app_ms, db_ms = m.per_row_ms(m.app_cpu_s), m.per_row_ms(m.db_cpu_s)
        totals.append(app_ms + db_ms)
        print(f"{m.name:<10} {app_ms:>8.3f} {db_ms:>8.3f} {app_ms + db_ms:>9.3f}")
    cost_ratio = totals[1] / totals[0] if totals[0] else float("nan")
    print(
        f"app = the gunicorn master and workers, db = the PostgreSQL backends of that app; "
        f"CPU cost ratio baseline/intake = {cost_ratio:.3f}"
    )
    print()
    print(
        f"intake also: {intake.extra.get('patients', 0)} new patients "
        f"({intake.extra.get('patients_total', 0)} in the table at the end), "
        f"{intake.extra.get('acks', 0)} acknowledgement message rows "
        f"({'same patient every request' if args.same_patient else 'a new email per request'})"
    )
    print(
        f"{args.rounds} rounds of {window_seconds(args)}s per server, loaded in the order "
        "intake-baseline, baseline-intake, ...; ratio per round: "
        + ", ".join(f"{r:.3f}" for r in ratios)
    )
    verdict = "met" if ratio >= args.min_ratio else "NOT met"
    print(
        f"ratio intake req/s / baseline req/s = {ratio:.3f} (goal >= {args.min_ratio}: {verdict})"
    )
    return ratio


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=int, default=20, help="seconds of load per server")
    p.add_argument("--warmup", type=int, default=3, help="seconds of warm-up load per server")
    p.add_argument(
        "--rounds",
        type=int,
        default=4,
        help="windows the load per server is split into, the servers taking turns (AB BA ...)",
    )
    p.add_argument("--connections", type=int, default=16, help="wrk connections")
    p.add_argument("--wrk-threads", type=int, default=2, help="wrk threads")
    p.add_argument("--workers", type=int, default=4, help="gunicorn workers per server")
    p.add_argument("--worker-class", choices=("sync", "gthread"), default="sync")
    p.add_argument("--threads", type=int, default=1, help="threads per gthread worker")
    p.add_argument(
        "--same-patient",
        action="store_true",
        help="send the example body unchanged (matches one patient) instead of a new email each",
    )
    p.add_argument("--min-ratio", type=float, default=0.5, help="goal for intake / baseline")
    args = p.parse_args(argv)
    if not (1 <= args.duration <= 600 and 0 <= args.warmup <= 60):
        p.error("--duration must be 1..600 and --warmup 0..60 seconds")
    if not 1 <= args.rounds <= args.duration:
        p.error("--rounds must be 1..duration")
    if not (1 <= args.connections <= 1000 and 1 <= args.workers <= 32 and args.wrk_threads >= 1):
        p.error("--connections must be 1..1000, --workers 1..32, --wrk-threads >= 1")
    return args


def _on_alarm(signum, frame):
    raise TimeoutError("the benchmark ran past its time budget")


def _on_term(signum, frame):
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wrk = shutil.which("wrk")
    if wrk is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 3
    budget = 240 + 2 * (args.warmup + args.duration + 10) + 2 * 5 * args.rounds
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.signal(signal.SIGTERM, _on_term)
    signal.alarm(budget)

    tag = secrets.token_hex(4)
    db_name = f"clinic_bench_{tag}"
    database_url = f"{PG_SERVER}/{db_name}"
    tmp = Path(tempfile.mkdtemp(prefix="clinic-bench-"))
    servers: list[Server] = []
    db_created = False
    rc = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
    try:
        rc.ping()
        create_database(db_name)
        db_created = True
        print(f"[bench] database {db_name}: running the migrations", flush=True)
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "CELERY_BROKER_URL": REDIS_URL,
            "SECRET_KEY": "bench",
            "RATELIMIT_ENABLED": "false",
            "CLINIC_INSTANCE_PATH": str(tmp / "instance"),
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        for name in ("REDIS_URL", "CLINIC_ENV", "INTAKE_RULES_DIR", "FLASK_APP"):
            env.pop(name, None)
        flask = str(venv_bin("flask"))
        run_checked([flask, "--app", "clinic", "db", "upgrade"], env=env, cwd=ROOT, timeout=180)
        python = str(venv_bin("python"))
        run_checked([python, "baseline_app.py", "create-table"], env=env, cwd=HERE, timeout=60)
        rc.flushdb()

        body_file = tmp / "body.json"
        write_body(body_file, args.same_patient)
        busy = cpu_busy()
        if busy > 0.2:
            print(f"[bench] WARNING: the machine is {busy:.0%} busy; figures will be low")
        intake = Server("intake", "wsgi:app", ROOT, env, "/healthz", tmp / "intake.log")
        baseline = Server("baseline", "baseline_app:app", HERE, env, "/ping", tmp / "base.log")
        servers = [intake, baseline]
        for server in servers:
            server.start(args)
        for server in servers:
            server.wait_ready()
        print(f"[bench] intake on {intake.url}, baseline on {baseline.url}", flush=True)
        settle(timeout=20.0)  # let every worker finish importing the app
        facts = machine_facts(args, wrk, database_url)
        facts.append(f"CPU busy before the servers started (other processes): {busy:.0%}")

        for server in servers:
            warm_up(server, args, wrk, body_file, tag)
        seconds = window_seconds(args)
        windows: dict[str, list[Measured]] = {"intake": [], "baseline": []}
        problems = []
        for r, server in round_order(intake, baseline, args.rounds):
            window_tag = f"{tag}{server.name[0]}{r}"
            if server is intake:
                table, counted = "consultation_request", rc
            else:
                table, counted = "bench_baseline_request", None
            m = measure(
                server, args, wrk, body_file, database_url, table, window_tag, seconds, counted
            )
            windows[server.name].append(m)
            problems += [f"round {r + 1}: {p}" for p in check(m, args)]
        results = [combine(windows["intake"]), combine(windows["baseline"])]
        ratios = round_ratios(windows["intake"], windows["baseline"])
        ratio = report(facts, results, ratios, args)
        if problems:
            print("\nCHECKS FAILED")
            for problem in problems:
                print(f"  {problem}")
            for server in servers:
                print(f"\n{server.name} log tail:\n{server.log_tail()}")
            return 1
        print("checks: no 5xx, no non-2xx, no socket errors, every 2xx stored")
        return 0 if ratio >= args.min_ratio else 2
    except (BenchError, TimeoutError, subprocess.TimeoutExpired, OSError, psycopg.Error) as exc:
        print(f"[bench] could not run: {exc}", file=sys.stderr)
        return 3
    except redis.RedisError as exc:
        print(f"[bench] Redis on {REDIS_URL}: {exc}", file=sys.stderr)
        return 3
    finally:
        signal.alarm(0)
        for server in servers:
            server.stop()
        leave_clean([db_name] if db_created else [], rc, REDIS_URL, tmp)


if __name__ == "__main__":
    sys.exit(main())
