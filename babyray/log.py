"""Structured logging: every process writes structlog JSON lines into the session's log dir.

Each line is one event: ``ts`` (unix seconds), ``level``, ``event`` (snake_case), the
``component`` and ``node_id`` bound at configuration, the ``pid``, and the event's ids.
``babyray.log_reader`` reads them back.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import structlog
from structlog.typing import EventDict

_configured_path: str | None = None
_process_fields: dict[str, Any] = {}


def _add_ts(_logger: Any, _method: str, event: EventDict) -> EventDict:
    event["ts"] = round(time.time(), 6)
    return event


def _add_process_fields(_logger: Any, _method: str, event: EventDict) -> EventDict:
    for key, value in _process_fields.items():
        event.setdefault(key, value)
    return event


def configure(log_dir: str, component: str, node_id: str = "", level: int = logging.INFO) -> None:
    """Send this process's structlog events to ``<log_dir>/<component>-<pid>.jsonl``."""
    global _configured_path
    os.makedirs(log_dir, exist_ok=True)
    path = os.path.join(log_dir, f"{component}-{os.getpid()}.jsonl")
    if path == _configured_path:
        return
    stream = open(path, "a", buffering=1)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            _add_process_fields,
            structlog.processors.add_log_level,
            _add_ts,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.WriteLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )
    _process_fields.clear()
    _process_fields.update(component=component, node_id=node_id, pid=os.getpid())
    _configured_path = path


def configured_in_this_process() -> bool:
    """Whether this process (not a parent it was forked from) called ``configure``."""
    return _configured_path is not None and _configured_path.endswith(f"-{os.getpid()}.jsonl")


def configured_path() -> str | None:
    """The file this process's events go to (None before ``configure``)."""
    return _configured_path


def tell_user(message: str, level: int = logging.INFO) -> None:
    """One line for the person running the program, on stderr, through the stdlib logger
    ``babyray`` (given a stderr handler at INFO unless the application configured one)."""
    logger = logging.getLogger("babyray")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s babyray: %(message)s"))
        logger.addHandler(handler)
        if logger.level == logging.NOTSET:  # init(logging_level=...) may have set one
            logger.setLevel(logging.INFO)
        logger.propagate = False
    logger.log(level, message)


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
