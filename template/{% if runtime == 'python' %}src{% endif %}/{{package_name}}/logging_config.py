"""Logging for the whole process, discord.py included, set up in one place.

On Railway each line is one JSON object (timestamp, level, logger, message,
exception and any context passed with ``extra=``), which Railway's log search
can filter on. In development the same records read as plain text.
"""

from __future__ import annotations

import logging
import logging.config
from pathlib import Path
from typing import Any

#: Keys passed through ``extra=`` that say which request a line belongs to.
CONTEXT_KEYS = ("command", "guild_id", "user_id", "interaction_id", "role", "error")


class TextFormatter(logging.Formatter):
    """Readable lines, with the request context appended as key=value pairs."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = " ".join(
            f"{key}={value}"
            for key in CONTEXT_KEYS
            if (value := record.__dict__.get(key)) is not None
        )
        if not context:
            return line
        head, sep, tail = line.partition("\n")
        return f"{head} [{context}]{sep}{tail}"


def configure_logging(level: str = "INFO", *, json: bool = False, file: Path | None = None) -> None:
    """Send every logger's records to stdout, and to a rotating file if asked."""
    formatter = "json" if json else "text"
    handlers: dict[str, dict[str, Any]] = {
        "stdout": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "formatter": formatter,
        },
    }
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        handlers["file"] = {
            "class": "logging.handlers.RotatingFileHandler",
            "filename": str(file),
            "maxBytes": 10 * 1024 * 1024,
            "backupCount": 3,
            "encoding": "utf-8",
            "formatter": formatter,
        }
    numeric = logging.getLevelNamesMapping()[level]
    logging.config.dictConfig(
        {
            "version": 1,
            # discord.py creates its loggers at import time; keep them.
            "disable_existing_loggers": False,
            "formatters": {
                "json": {
                    "()": "pythonjsonlogger.json.JsonFormatter",
                    "fmt": "%(levelname)s %(name)s %(message)s",
                    "rename_fields": {
                        "levelname": "level",
                        "name": "logger",
                        "exc_info": "exception",
                    },
                    "timestamp": True,
                },
                "text": {
                    "()": TextFormatter,
                    "format": "%(asctime)s %(levelname)-8s %(name)s: %(message)s",
                },
            },
            "handlers": handlers,
            "root": {"level": level, "handlers": list(handlers)},
            "loggers": {
                # At DEBUG discord.py logs every gateway payload; keep it at
                # INFO unless the bot asks for less.
                "discord": {"level": max(numeric, logging.INFO)},
                "aiohttp.access": {"level": "WARNING"},
                # Alembic announces each of its own plugins at INFO on every
                # migrate: noise, not news.
                "alembic.runtime.plugins": {"level": "WARNING"},
            },
        }
    )
