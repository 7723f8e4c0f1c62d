"""What the waitlist page's "earliest open time" costs: the page with it against the same page
without it, in the same run.

    .venv/bin/python bench/waitlist.py [--providers 6] [--full-days 21] [--entries 20,200]

A fresh PostgreSQL database gets the migrations, one location, --providers providers (weekdays
08:00-12:00 and 13:00-17:00 in America/New_York), the default appointment types and a calendar
booked solid for the next --full-days days (a consultation every hour of every provider), so
each search for an earliest open time has to look past three weeks (its windows double: 7 days,
then 14, ...). The waitlist then gets each --entries count of waiting patients in turn, dealt
round robin over every wish (4 kinds of visit x any provider or one of the providers).

For each count, --repeats rounds of ``GET /staff/waitlist`` as the front desk (Flask test
client, in this process), each round timing the page as it is and then the page with
``waitlist.earliest_open`` replaced by one that finds nothing (the page as it was before the
column: same entries, same freed slots, same audit event). Printed: the median ms of both, their
ratio, and how many searches a page ran. Checked: every provider's earliest open time is the
first slot ``services.search_slots`` offers over the whole horizon, and lies after the full days.

Exit status: 0 when every check passed, 1 when one failed, 3 when the run could not be made. The
database is dropped at the end, also on errors and Ctrl-C.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from zoneinfo import ZoneInfo

from booking import TIMEZONE, load_app, server_env
from intake import (
    PG_SERVER,
    ROOT,
    BenchError,
    bench_location,
    bench_patients,
    create_database,
    dispose,
    drop_database,
    run_checked,
    venv_bin,
)

PASSWORD = secrets.token_urlsafe(18)
FRONT_DESK = "desk@bench.example"


def build(app, providers: int, full_days: int, now: datetime) -> dict:
    """The clinic, its solid calendar and a front-desk user (committed)."""
    from clinic.extensions import db
    from clinic.scheduling import services
    from clinic.scheduling.models import Appointment, Provider, ProviderHours
    from clinic.staff import services as staff_services

    tz = ZoneInfo(TIMEZONE)
    with app.app_context():
        location = bench_location(TIMEZONE)
        people = []
        for i in range(providers):
            provider = Provider(name=f"Dr. Bench {i}", title="MD", feed_token=f"bench-{i}")
            for weekday in range(5):
                for start, end in ((8, 12), (13, 17)):
                    provider.hours.append(
                        ProviderHours(
                            location=location,
                            weekday=weekday,
                            start_time=clock(start),
                            end_time=clock(end),
                        )
                    )
            people.append(provider)
        db.session.add_all([location, *people])
        types = {t.code: t for t in services.install_default_types()}
        patients = bench_patients("Waiting", 400)
        db.session.add_all(patients)
        staff_services.create_staff(FRONT_DESK, "front_desk", PASSWORD, full_name="Desk", now=now)
        db.session.flush()
        consultation = types["consultation"]
        today = now.astimezone(tz).date()
        rows = 0
        for offset in range(full_days + 1):
            day = today + timedelta(days=offset)
            for hour in (8, 9, 10, 11, 13, 14, 15, 16):
                start = datetime.combine(day, clock(hour), tzinfo=tz).astimezone(UTC)
                for provider in people:
                    db.session.add(
                        Appointment(
                            patient_id=patients[rows % len(patients)].id,
                            provider_id=provider.id,
                            location_id=location.id,
                            appointment_type_id=consultation.id,
                            status="booked",
                            start_at=start,
                            end_at=start + timedelta(minutes=45),
                            occupied_start=start,
                            occupied_end=start + timedelta(hours=1),
                            source="staff",
                        )
                    )
                    rows += 1
        db.session.commit()
        built = {
            "providers": [p.id for p in people],
            "types": [t.id for t in types.values()],
            "patients": [p.id for p in patients],
            "booked": rows,
        }
        db.session.remove()
    return built


def fill_waitlist(app, built: dict, entries: int, now: datetime) -> int:
    """Replace the waitlist with ``entries`` waiting patients, dealt over every wish; returns
    how many distinct wishes they hold."""
    from sqlalchemy import delete

    from clinic.extensions import db
    from clinic.scheduling.models import WaitlistEntry

    wishes = [(t, p) for t in built["types"] for p in [None, *built["providers"]]]
    with app.app_context():
        db.session.execute(delete(WaitlistEntry))
        for i in range(entries):
            type_id, provider_id = wishes[i % len(wishes)]
            db.session.add(
                WaitlistEntry(
                    patient_id=built["patients"][i % len(built["patients"])],
                    appointment_type_id=type_id,
                    provider_id=provider_id,
                    created_at=now - timedelta(days=1, minutes=i),
                )
            )
        db.session.commit()
        db.session.remove()
    return min(entries, len(wishes))


def check_openings(app, built: dict, full_days: int, now: datetime) -> list[str]:
    """Each provider wish's earliest open time against a whole-horizon slot search."""
    from sqlalchemy import select

    from clinic.extensions import db
    from clinic.scheduling import services, waitlist
    from clinic.scheduling.models import WaitlistEntry

    problems = []
    after = now + timedelta(days=full_days)
    with app.app_context():
        entries = db.session.scalars(
            select(WaitlistEntry).where(WaitlistEntry.provider_id.is_not(None))
        ).all()
        found = waitlist.earliest_open(entries, now)
        for entry in entries:
            kind, provider = entry.appointment_type, entry.provider
            days = waitlist.search_days(kind)
            slots = services.search_slots(
                kind, now, now + timedelta(days=days, minutes=1), now=now, provider=provider
            )
            want = slots[0].start if slots else None
            got = found[entry.id].start if found[entry.id] else None
            if got != want:
                problems.append(f"{kind.code} with {provider.name}: {got} shown, {want} first")
            elif got is not None and got < after:
                problems.append(f"{kind.code} with {provider.name}: {got} inside the full days")
        db.session.remove()
    return problems


def measure(app, client, repeats: int) -> tuple[list[float], list[float], int]:
    """Interleaved timings of the page with and without the earliest open times (ms), and the
    number of slot searches one page ran."""
    from clinic.scheduling import services, waitlist

    real_open, real_search = waitlist.earliest_open, services.search_slots
    searches = 0

    def counting(*args, **kwargs):
        nonlocal searches
        searches += 1
        return real_search(*args, **kwargs)

    def none_open(entries, now):
        return dict.fromkeys(entry.id for entry in entries)

    def page() -> float:
        began = time.perf_counter()
        response = client.get("/staff/waitlist")
        elapsed = (time.perf_counter() - began) * 1000
        if response.status_code != 200:
            raise BenchError(f"GET /staff/waitlist answered {response.status_code}")
        return elapsed

    services.search_slots = counting
    try:
        page()  # warm-up, and the count of searches
        per_page = searches
        with_column, without = [], []
        for _ in range(repeats):
            with_column.append(page())
            waitlist.earliest_open = none_open
            try:
                without.append(page())
            finally:
                waitlist.earliest_open = real_open
    finally:
        services.search_slots = real_search
    return with_column, without, per_page


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--providers", type=int, default=6)
    parser.add_argument("--full-days", type=int, default=21)
    parser.add_argument("--entries", default="20,200", help="waitlist sizes, comma-separated")
    parser.add_argument("--repeats", type=int, default=30)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = [int(n) for n in args.entries.split(",")]
    db_name = f"clinic_bench_waitlist_{secrets.token_hex(4)}"
    database_url = f"{PG_SERVER}/{db_name}"
    tmp = Path(tempfile.mkdtemp(prefix="clinic-bench-waitlist-"))
    app = None
    created = False
    try:
        create_database(db_name)
        created = True
        env = server_env(database_url, tmp)
        print(f"[bench] database {db_name}: running the migrations", flush=True)
        flask = str(venv_bin("flask"))
        run_checked([flask, "--app", "clinic", "db", "upgrade"], env=env, cwd=ROOT, timeout=180)
        app = load_app(env)
        now = datetime.now(UTC).replace(microsecond=0)
        app.config["CLINIC_NOW"] = now
        app.config["WTF_CSRF_ENABLED"] = False  # the test client posts the login form bare
        built = build(app, args.providers, args.full_days, now)
        print(
            f"[bench] {args.providers} providers, {built['booked']} appointments "
            f"(the next {args.full_days} days booked solid)",
            flush=True,
        )
        client = app.test_client()
        login = client.post("/staff/login", data={"email": FRONT_DESK, "password": PASSWORD})
        if login.status_code != 302:
            raise BenchError(f"could not log in ({login.status_code})")

        print(
            f"\n{'entries':>7} {'wishes':>6} {'searches':>8} {'with ms':>8} "
            f"{'without ms':>10} {'ratio':>6}"
        )
        problems: list[str] = []
        for entries in sizes:
            wishes = fill_waitlist(app, built, entries, now)
            problems += check_openings(app, built, args.full_days, now)
            with_column, without, searches = measure(app, client, args.repeats)
            a, b = statistics.median(with_column), statistics.median(without)
            print(f"{entries:>7} {wishes:>6} {searches:>8} {a:>8.1f} {b:>10.1f} {a / b:>6.2f}")
        print(
            f"\nmedians of {args.repeats} interleaved pages each; 'without' = the same page with "
            "earliest_open finding nothing (no slot searches)"
        )
        for problem in problems:
            print(f"CHECK FAILED: {problem}")
        return 1 if problems else 0
    except BenchError as exc:
        print(f"[bench] {exc}", file=sys.stderr)
        return 3
    finally:
        dispose(app)
        if created:
            drop_database(db_name)


if __name__ == "__main__":
    sys.exit(main())
