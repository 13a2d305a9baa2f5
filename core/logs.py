"""Logging that never shows a secret: every record is scrubbed of the configured tokens, of
anything shaped like a Slack token and of Slack's response_urls before it is written, whichever
format writes it: `text` (one readable line) or `json` (one JSON object per line, for a log
collector: ts, level, logger, message, and exc when there is a traceback)."""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from types import TracebackType

_TOKEN_SHAPE = re.compile(r"\b(xox[abposr]-[A-Za-z0-9-]+|xapp-[A-Za-z0-9-]+)")
# A response_url lets whoever holds it answer as the bot for 30 minutes: never written down.
_RESPONSE_URL = re.compile(r"https?://hooks\.slack(?:-gov)?\.com/[^\s'\"]*")
REDACTED = "[redacted]"


class RedactSecrets(logging.Filter):
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s and len(s) >= 6]

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return _RESPONSE_URL.sub(REDACTED, _TOKEN_SHAPE.sub(REDACTED, text))

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.msg, record.args = self.scrub(message), None
        if record.exc_text:
            record.exc_text = self.scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = self.scrub(record.stack_info)
        return True


class JsonLines(logging.Formatter):
    """One JSON object per record, on one line (newlines inside are escaped). It writes what
    RedactSecrets left in the record: the message and the traceback already scrubbed."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, str] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_text:
            line["exc"] = record.exc_text
        if record.stack_info:
            line["stack"] = record.stack_info
        return json.dumps(line, ensure_ascii=False)


def formatter(log_format: str) -> logging.Formatter:
    if log_format == "json":
        return JsonLines()
    return logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")


def configure(level: str, secrets: Iterable[str], log_format: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(log_format))
    handler.addFilter(RedactSecrets(secrets))
    # A library may set its own logger to DEBUG when imported (bm25s does), after this runs.
    handler.setLevel(level)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # Their DEBUG output carries request bodies and headers.
    for noisy in ("slack_sdk", "slack_bolt", "urllib3", "apscheduler", "waitress"):
        logging.getLogger(noisy).setLevel(max(logging.getLevelName(level), logging.INFO))
    # Warnings and uncaught exceptions would otherwise be printed raw: unredacted, and not as JSON.
    logging.captureWarnings(True)
    threading.excepthook = _log_uncaught_in_thread
    sys.excepthook = _log_uncaught


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    where = args.thread.name if args.thread is not None else "?"
    logging.getLogger("crewcall").error("uncaught exception in thread %s", where, exc_info=args.exc_value)


def _log_uncaught(kind: type[BaseException], value: BaseException, traceback: TracebackType | None) -> None:
    logging.getLogger("crewcall").critical("uncaught exception", exc_info=(kind, value, traceback))
