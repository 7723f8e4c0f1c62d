"""Start the whole clinic for `make run`: web, Celery worker and beat, and a local SMTP sink.

Ctrl-C stops everything. With no environment set it needs no server: SQLite under instance/,
Celery over kombu's SQLAlchemy transport on SQLite, and mail filed under instance/mail/.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def main() -> int:
    env = dict(os.environ)
    port = env.get("PORT", "5000")
    instance = Path(env.get("CLINIC_INSTANCE_PATH") or ROOT / "instance")
    procs: list[tuple[str, subprocess.Popen]] = []

    def start(name: str, args: list[str]) -> None:
        print(f"[run] starting {name}: {' '.join(args)}", flush=True)
        procs.append((name, subprocess.Popen(args, cwd=ROOT, env=env)))

    if not env.get("SMTP_HOST"):
        env["SMTP_HOST"], env["SMTP_PORT"] = "127.0.0.1", env.get("DEV_SMTP_PORT", "8025")
        start(
            "mail sink",
            [
                str(BIN / "python"),
                "-m",
                "clinic.devmail",
                "--port",
                env["SMTP_PORT"],
                "--dir",
                str(instance / "mail"),
            ],
        )
    start(
        "web",
        [
            str(BIN / "flask"),
            "--app",
            "clinic",
            "run",
            "--host",
            "127.0.0.1",
            "--port",
            port,
            "--no-reload",
        ],
    )
    start(
        "worker",
        [str(BIN / "celery"), "-A", "worker", "worker", "--loglevel", "INFO", "--concurrency", "2"],
    )
    start(
        "beat",
        [
            str(BIN / "celery"),
            "-A",
            "worker",
            "beat",
            "--loglevel",
            "INFO",
            "--schedule",
            str(instance / "celerybeat-schedule"),
        ],
    )
    print(
        f"[run] the clinic is at http://127.0.0.1:{port}/  (staff: /staff/login; demo "
        "passwords in instance/demo-credentials.txt). Ctrl-C stops it all.",
        flush=True,
    )
    # `kill` (SIGTERM) stops everything too, not only Ctrl-C.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        while True:
            for name, proc in procs:
                if proc.poll() is not None:
                    print(f"[run] {name} exited with {proc.returncode}; stopping", flush=True)
                    return 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        return 0
    finally:
        for _, proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.time() + 10
        for _, proc in procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    sys.exit(main())
