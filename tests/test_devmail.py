"""`make run`'s local SMTP sink: files every message, and keeps addresses out of its log."""

from __future__ import annotations

import signal
import smtplib
import socket
import subprocess
import sys
import time
from email.message import EmailMessage

from tests.conftest import ROOT


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _connect(port: int, deadline: float) -> smtplib.SMTP:
    while True:
        try:
            return smtplib.SMTP("127.0.0.1", port, timeout=5)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_the_sink_files_each_message_and_logs_no_address(tmp_path):
    port = _free_port()
    sink = subprocess.Popen(
        [sys.executable, "-m", "clinic.devmail", "--port", str(port), "--dir", str(tmp_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = "clinic@clinic.test", "rosa@example.com", "Hi"
        msg.set_content("Hello")
        with _connect(port, time.monotonic() + 20) as smtp:
            smtp.send_message(msg)
    finally:
        sink.send_signal(signal.SIGTERM)
        log, _ = sink.communicate(timeout=20)
    filed = list(tmp_path.glob("*.eml"))
    assert len(filed) == 1
    assert b"To: rosa@example.com" in filed[0].read_bytes()
    assert "filed a message as" in log
    assert "rosa@example.com" not in log
    assert "clinic@clinic.test" not in log
