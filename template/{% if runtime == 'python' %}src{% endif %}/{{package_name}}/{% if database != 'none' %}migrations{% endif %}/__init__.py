"""Alembic migrations of the bot's database, configured in code.

The migrations ship inside the package, so the Docker image needs nothing but
the installed package to migrate, and there is no alembic.ini to keep in step:
``alembic_config()`` is the whole configuration. Run them through
``database.migrate()``, which hands Alembic an open connection.
"""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config

DIRECTORY = Path(__file__).resolve().parent


def alembic_config() -> Config:
    """The Alembic configuration: where the scripts are and how new ones are named."""
    config = Config()
    config.set_main_option("script_location", str(DIRECTORY))
    config.set_main_option("path_separator", "os")
    # Revision files start with a letter, so they are valid module names for
    # mypy and ruff (Alembic's default starts with the hex revision id).
    config.set_main_option("file_template", "m%%(rev)s_%%(slug)s")
    return config
