"""Logging: one line per event, text or JSON (for log shippers); level configurable."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Literal

LogFormat = Literal["text", "json"]


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        event = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info and record.exc_info[0] is not None:
            event["error"] = record.exc_info[0].__name__
        return json.dumps(event, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S%z")

    def format(self, record: logging.LogRecord) -> str:
        # one line per event: an exception is summarised by its type, never a multi-line traceback
        record.exc_text = None
        saved, record.exc_info = record.exc_info, None
        try:
            line = super().format(record)
        finally:
            record.exc_info = saved
        if saved and saved[0] is not None:
            line += f" [{saved[0].__name__}]"
        return line.replace("\n", " ⏎ ")


def setup_logging(level: str = "info", fmt: LogFormat = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    # Third parties log request lines, response headers and internals at info/debug: never ours to show.
    for name in ("httpx", "httpcore", "tzlocal", "asyncio", "alembic"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    # A run skipped because the previous one still runs is counted (tpmon_scheduler_coalesced_runs_total),
    # not logged at every occurrence: a slow target would flood the log.
    logging.getLogger("apscheduler").setLevel(max(logging.ERROR, root.level))
