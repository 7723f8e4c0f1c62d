"""A local SMTP sink for `make run`: every message is filed under instance/mail/.

Run with ``python -m clinic.devmail [--port 8025] [--dir instance/mail]``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from datetime import UTC, datetime
from pathlib import Path

from aiosmtpd.controller import Controller

logger = logging.getLogger(__name__)


class FileSink:
    """aiosmtpd handler that writes each message to its own .eml file."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.count = 0

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        self.count += 1
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        path = self.directory / f"{stamp}-{self.count:05d}.eml"
        path.write_bytes(envelope.original_content or envelope.content)
        logger.info("filed a message as %s", path.name)
        return "250 Message accepted for delivery"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8025)
    parser.add_argument("--dir", default="instance/mail")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s devmail: %(message)s")
    # aiosmtpd logs every SMTP command at INFO, recipients' addresses included.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    controller = Controller(FileSink(Path(args.dir)), hostname=args.host, port=args.port)
    controller.start()
    logger.info("SMTP sink on %s:%d filing mail under %s", args.host, args.port, args.dir)
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        loop.run_until_complete(stop.wait())
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
