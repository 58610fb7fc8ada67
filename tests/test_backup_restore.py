"""scripts/backup.sh and scripts/restore.sh, run for real.

The scripts exist only on the GitHub Actions backup path, which serves
PostgreSQL alone (backup_path=actions; copier.yml refuses it for SQLite,
whose file only the bot's own process can reach). They are rendered from
the template and run as subprocesses with /bin/sh, the shell the postgres
image has. PostgreSQL is the real server on this machine
(CRB_TEST_DATABASE_URL, trust auth); every test creates its own scratch
database and drops it.

What is proven:
- a backup restores to exactly the contents it was taken from (rows,
  sequences, constraints), after the data was changed or deleted;
- a restore that fails at any point (a damaged file, a wrong checksum, an
  object in the way halfway through) leaves the database exactly as it was,
  compared as a full dump / byte for byte, and says so;
- a database that holds data is only overwritten with --confirm <the
  environment it records> (the bot's migrate writes it into bot_state;
  every Railway database is called "railway"); without it the scripts exit
  3 and name the flag to add; a backup of another environment (read from
  the bot_state inside the dump, also in its file name) needs
  --from-environment, and the database records its own environment after;
- no password ever appears on a command line: every process's
  /proc/PID/cmdline is read while backup and restore run;
- backups and safety copies are readable by their owner only, concurrent
  backups never share or overwrite a file, and a refused archive is
  refused with pg_restore's own reason;
- a safety copy of the previous contents is kept and is itself restorable;
- backups are taken as the read-only role DEPLOYMENT.md has the owner
  create (its SQL is read from the rendered runbook and run here), and
  backup.sh refuses a role that can write (a superuser, pg_write_all_data,
  a table privilege, transactions not read-only by default) unless
  --allow-writable-role is given;
- pg_dump gets PGSSLMODE=require for any host but this machine's, and the
  URL's own sslmode (or ssl=true/false) in libpq's words: observed in the
  environment of the real pg_dump, and by a dump that fails against this
  machine's server (no TLS) when reached by a host name;
- a dump encrypted by backup.yml's own Encrypt step (age, to a recipient)
  restores with restore.sh --identity, and without the right identity
  nothing changes;
- the private path (backup_path=railway) renders neither script;
- every error message names the problem and the fix.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import stat
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import yaml

import matrix
from conftest import TEST_DATABASE_URL

PACKAGE = "pingu_bot"
SCRIPT_TIMEOUT = 120


# ----------------------------------------------------------------- helpers --
def _backup_combo(database: str, path: str) -> matrix.Combination:
    return next(
        c
        for c in matrix.combinations()
        if c.answers.get("database") == database
        and c.answers.get("backups")
        and c.answers.get("backup_path") == path
    )


@pytest.fixture(scope="module")
def scripts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """scripts/ of a rendered project on the actions path (PostgreSQL only)."""
    combo = _backup_combo("postgres", "actions")
    tree = matrix.render(combo.answers, tmp_path_factory.mktemp("render-postgres"))
    for name in ("backup.sh", "restore.sh"):
        assert os.access(tree / "scripts" / name, os.X_OK), f"{name} must be executable"
    return {"postgres": tree / "scripts"}


@pytest.mark.parametrize("database", ["postgres", "sqlite"])
def test_private_path_renders_no_backup_scripts(
    database: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    combo = _backup_combo(database, "railway")
    tree = matrix.render(combo.answers, tmp_path_factory.mktemp(f"render-{database}-railway"))
    for name in ("backup.sh", "restore.sh"):
        assert not (tree / "scripts" / name).exists(), name
    assert not (tree / ".github" / "workflows" / "backup.yml").exists()
    # Nothing on that path goes through `railway ssh`, which needs a personal
    # SSH key and refuses project tokens.
    for path in tree.rglob("*"):
        if path.is_file() and path.suffix in {".yml", ".sh", ".py"}:
            assert "railway ssh" not in path.read_text(encoding="utf-8"), path


def run(
    script: Path, *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    # This machine's DATABASE_URL must never reach the scripts by accident.
    full_env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    full_env.update(env or {})
    return subprocess.run(
        ["sh", str(script), *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT,
        check=False,
    )


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -------------------------------------------------------------- PostgreSQL --
def _url_for(database: str) -> str:
    parts = urlsplit(TEST_DATABASE_URL)
    return urlunsplit(parts._replace(path=f"/{database}"))


def confirm_for(url: str) -> str:
    """What --confirm must say for the database of a URL: the environment it records."""
    return psql(url, "SELECT value FROM bot_state WHERE key = 'environment'")


def restore_postgres(
    scripts: dict[str, Path], backup: Path, target: str, *, cwd: Path, url: str | None = None
) -> subprocess.CompletedProcess[str]:
    """restore.sh of ``backup`` into ``target``, confirmed; the URL may carry a password."""
    return run(
        scripts["postgres"] / "restore.sh",
        "--from",
        str(backup),
        "--confirm",
        confirm_for(target),
        cwd=cwd,
        env={"DATABASE_URL": url or target},
    )


@pytest.fixture(scope="module")
def postgres_admin() -> Iterator[object]:
    psycopg = pytest.importorskip("psycopg")
    try:
        connection = psycopg.connect(TEST_DATABASE_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as error:
        if os.environ.get("REQUIRE_SERVICES") == "1":
            pytest.fail(f"PostgreSQL is required (REQUIRE_SERVICES=1) but unreachable: {error}")
        pytest.skip(f"PostgreSQL unreachable at {TEST_DATABASE_URL}: {error}")
    for tool in ("pg_dump", "pg_restore", "psql"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is needed on PATH for these tests (PostgreSQL client)")
    yield connection
    connection.close()


#: The read-only role backups are taken as; one per test module (roles belong
#: to the whole server).
READER = f"crb_reader_{uuid.uuid4().hex[:12]}"


def runbook_reader_sql(tree: Path, role: str) -> str:
    """The SQL DEPLOYMENT.md has the owner run for the read-only role, for ``role``.

    psql's interactive \\password is left out: the local server trusts its
    clients.
    """
    text = (tree / "DEPLOYMENT.md").read_text(encoding="utf-8")
    [block] = [b for b in re.findall(r"```sql\n(.*?)```", text, re.S) if "CREATE ROLE" in b]
    assert "CREATE ROLE backup_reader LOGIN;" in block
    lines = [line for line in block.splitlines() if not line.lstrip().startswith("\\password")]
    return "\n".join(lines).replace("backup_reader", role)


def as_role(url: str, role: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{role}@{parts.hostname}:{parts.port or 5432}"))


@pytest.fixture(scope="module")
def reader(scripts: dict[str, Path], postgres_admin: object) -> Iterator[str]:
    """The runbook's read-only role, created with the runbook's own SQL."""
    psql(TEST_DATABASE_URL, runbook_reader_sql(scripts["postgres"].parent, READER))
    yield READER
    postgres_admin.execute(f'DROP ROLE IF EXISTS "{READER}"')  # type: ignore[attr-defined]


@pytest.fixture
def scratch(postgres_admin: object, reader: str) -> Iterator[str]:
    """A new, empty database; its URL. Dropped afterwards."""
    name = f"crb_backup_{uuid.uuid4().hex[:12]}"
    postgres_admin.execute(f'CREATE DATABASE "{name}"')  # type: ignore[attr-defined]
    yield _url_for(name)
    postgres_admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[attr-defined]


def psql(url: str, sql: str) -> str:
    result = subprocess.run(
        ["psql", "--no-psqlrc", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return result.stdout.strip()


#: bot_state as the bot's first migration creates it (m0001_initial.py,
#: 0001_initial.ts), with the environment its migrate records.
BOT_STATE = """
    CREATE TABLE bot_state (
        key varchar(100) PRIMARY KEY, value text NOT NULL, updated_at timestamptz NOT NULL
    );
    INSERT INTO bot_state VALUES ('environment', '{environment}', now());
"""


def seed(url: str, environment: str = "production") -> None:
    psql(url, BOT_STATE.format(environment=environment))
    psql(
        url,
        """
        CREATE TABLE guilds (id bigint PRIMARY KEY, name text NOT NULL);
        CREATE TABLE points (
            id serial PRIMARY KEY,
            guild_id bigint NOT NULL REFERENCES guilds (id),
            member text NOT NULL,
            score integer NOT NULL CHECK (score >= 0)
        );
        CREATE INDEX points_member ON points (member);
        INSERT INTO guilds SELECT g, 'guild ' || g FROM generate_series(1, 20) g;
        INSERT INTO points (guild_id, member, score)
            SELECT 1 + g % 20, 'member ' || g, g FROM generate_series(1, 2000) g;
        """,
    )


def snapshot(url: str) -> str:
    """Everything a restore could change: schema and data, as pg_dump prints them."""
    result = subprocess.run(
        ["pg_dump", "--no-owner", "--no-privileges", "--inserts", "--dbname", url],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    # pg_dump 15+ prints a random \restrict key; it says nothing about contents.
    lines = result.stdout.splitlines()
    return "\n".join(line for line in lines if not line.startswith(("\\restrict", "\\unrestrict")))


def pg_backup(scripts: dict[str, Path], url: str, workdir: Path) -> Path:
    """backup.sh of the database at ``url``, as the read-only role."""
    result = run(
        scripts["postgres"] / "backup.sh",
        "--output-dir",
        "out",
        cwd=workdir,
        env={"DATABASE_URL": as_role(url, READER)},
    )
    assert result.returncode == 0, result.stderr
    backup = workdir / result.stdout.strip().splitlines()[-1]
    environment = confirm_for(url)
    assert backup.name.startswith(f"{PACKAGE}-{environment}-") and backup.suffix == ".dump"
    assert (backup.parent / f"{backup.name}.sha256").read_text().split()[0] == sha256(backup)
    return backup


def test_postgres_round_trip_restores_exactly(
    scripts: dict[str, Path], scratch: str, tmp_path: Path
) -> None:
    seed(scratch)
    before = snapshot(scratch)
    backup = pg_backup(scripts, scratch, tmp_path)

    psql(
        scratch,
        "DELETE FROM points WHERE id > 10; UPDATE guilds SET name = 'changed';"
        " INSERT INTO points (guild_id, member, score) VALUES (1, 'late', 1)",
    )
    assert snapshot(scratch) != before
    name = urlsplit(scratch).path.lstrip("/")

    result = run(
        scripts["postgres"] / "restore.sh",
        "--from",
        str(backup),
        "--confirm",
        confirm_for(scratch),
        "--database-url",
        scratch,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert snapshot(scratch) == before
    # The sequence is restored too: the next id follows the backed-up rows.
    next_id = psql(
        scratch, "INSERT INTO points (guild_id, member, score) VALUES (1, 'x', 1) RETURNING id"
    )
    assert next_id == "2001"

    # The safety dump holds the contents the restore replaced.
    safety = list((tmp_path / "backups").glob(f"{name}-before-restore-*.dump"))
    assert len(safety) == 1
    listed = subprocess.run(
        ["pg_restore", "--list", str(safety[0])], capture_output=True, text=True, check=True
    )
    assert "TABLE DATA public points" in listed.stdout


def test_postgres_restore_into_an_empty_database_needs_no_confirmation(
    scripts: dict[str, Path], scratch: str, postgres_admin: object, tmp_path: Path
) -> None:
    seed(scratch)
    before = snapshot(scratch)
    backup = pg_backup(scripts, scratch, tmp_path)
    empty = f"crb_backup_{uuid.uuid4().hex[:12]}"
    postgres_admin.execute(f'CREATE DATABASE "{empty}"')  # type: ignore[attr-defined]
    try:
        result = run(
            scripts["postgres"] / "restore.sh",
            "--from",
            str(backup),
            cwd=tmp_path,
            env={"DATABASE_URL": _url_for(empty)},
        )
        assert result.returncode == 0, result.stderr
        assert snapshot(_url_for(empty)) == before
        assert not (tmp_path / "backups").exists(), "nothing to save from an empty database"
    finally:
        postgres_admin.execute(f'DROP DATABASE IF EXISTS "{empty}" WITH (FORCE)')  # type: ignore[attr-defined]


def test_postgres_refuses_a_database_with_data_without_its_environment(
    scripts: dict[str, Path], scratch: str, tmp_path: Path
) -> None:
    seed(scratch)
    backup = pg_backup(scripts, scratch, tmp_path)
    psql(scratch, "DELETE FROM points")
    before = snapshot(scratch)
    name = urlsplit(scratch).path.lstrip("/")
    host = urlsplit(scratch).hostname
    for extra in ([], ["--confirm", "staging"], ["--confirm", name]):
        result = run(
            scripts["postgres"] / "restore.sh",
            "--from",
            str(backup),
            "--database-url",
            scratch,
            *extra,
            cwd=tmp_path,
        )
        assert result.returncode == 3, result.stderr
        assert "--confirm production" in result.stderr, "the message names the flag that proceeds"
        assert "3 tables" in result.stderr
    # The old HOST/DBNAME form is refused with what it means now.
    old = run(
        scripts["postgres"] / "restore.sh", "--from", str(backup), "--database-url", scratch,
        "--confirm", f"{host}/{name}", cwd=tmp_path,
    )  # fmt: skip
    assert old.returncode == 3, old.stderr
    assert "looks like HOST/DBNAME" in old.stderr and "such as --confirm production" in old.stderr
    assert snapshot(scratch) == before


def test_postgres_backup_of_another_environment_needs_its_name(
    scripts: dict[str, Path], scratch: str, postgres_admin: object, tmp_path: Path
) -> None:
    """Staging's backup goes into production's database only when the owner says so."""
    seed(scratch, environment="staging")
    staging_backup = pg_backup(scripts, scratch, tmp_path)
    assert staging_backup.name.startswith(f"{PACKAGE}-staging-")
    production = f"crb_backup_{uuid.uuid4().hex[:12]}"
    postgres_admin.execute(f'CREATE DATABASE "{production}"')  # type: ignore[attr-defined]
    target = _url_for(production)
    try:
        seed(target)
        psql(target, "DELETE FROM points WHERE id > 5")
        before = snapshot(target)

        def restore(*extra: str) -> subprocess.CompletedProcess[str]:
            return run(
                scripts["postgres"] / "restore.sh", "--from", str(staging_backup),
                "--database-url", target, "--confirm", "production", *extra,
                "--safety-dir", str(tmp_path / "safety"), cwd=tmp_path,
            )  # fmt: skip

        refused = restore()
        assert refused.returncode == 3, refused.stderr
        assert "is a backup of staging" in refused.stderr
        assert "--from-environment staging" in refused.stderr
        wrong = restore("--from-environment", "preview")
        assert wrong.returncode == 3 and "comes from staging" in wrong.stderr, wrong.stderr
        assert snapshot(target) == before

        done = restore("--from-environment", "staging")
        assert done.returncode == 0, done.stderr
        assert psql(target, "SELECT count(*) FROM points") == "2000"
        # Staging's rows, production's label: the next backup is production's.
        assert confirm_for(target) == "production"
        assert pg_backup(scripts, target, tmp_path).name.startswith(f"{PACKAGE}-production-")
    finally:
        postgres_admin.execute(f'DROP DATABASE IF EXISTS "{production}" WITH (FORCE)')  # type: ignore[attr-defined]


def test_postgres_refuses_a_database_that_is_not_the_bots(
    scripts: dict[str, Path], scratch: str, postgres_admin: object, tmp_path: Path
) -> None:
    seed(scratch)
    backup = pg_backup(scripts, scratch, tmp_path)
    other = f"crb_backup_{uuid.uuid4().hex[:12]}"
    postgres_admin.execute(f'CREATE DATABASE "{other}"')  # type: ignore[attr-defined]
    try:
        psql(_url_for(other), "CREATE TABLE invoices (id int PRIMARY KEY)")
        foreign = run(
            scripts["postgres"] / "restore.sh", "--from", str(backup),
            "--database-url", _url_for(other), "--confirm", "production", cwd=tmp_path,
        )  # fmt: skip
        assert foreign.returncode == 3, foreign.stderr
        assert (
            "no bot_state table" in foreign.stderr and "not this bot's database" in foreign.stderr
        )
        psql(_url_for(other), BOT_STATE.format(environment="x") + "DELETE FROM bot_state;")
        unlabelled = run(
            scripts["postgres"] / "restore.sh", "--from", str(backup),
            "--database-url", _url_for(other), "--confirm", "production", cwd=tmp_path,
        )  # fmt: skip
        assert unlabelled.returncode == 3, unlabelled.stderr
        assert "does not record its environment" in unlabelled.stderr
        assert psql(_url_for(other), "SELECT count(*) FROM invoices") == "0"
    finally:
        postgres_admin.execute(f'DROP DATABASE IF EXISTS "{other}" WITH (FORCE)')  # type: ignore[attr-defined]


def test_postgres_failure_halfway_leaves_the_database_unchanged(
    scripts: dict[str, Path], scratch: str, tmp_path: Path
) -> None:
    seed(scratch)
    backup = pg_backup(scripts, scratch, tmp_path)
    # Created after the backup: a view on a table the restore must drop and
    # recreate. DROP TABLE fails on it, after other objects were already
    # dropped in the same transaction.
    psql(
        scratch,
        "DELETE FROM points WHERE id > 100;"
        " CREATE VIEW top AS SELECT * FROM points WHERE score > 50",
    )
    before = snapshot(scratch)

    result = run(
        scripts["postgres"] / "restore.sh",
        "--from",
        str(backup),
        "--database-url",
        scratch,
        "--confirm",
        confirm_for(scratch),
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert "rolled back" in result.stderr and "exactly as it was" in result.stderr
    assert snapshot(scratch) == before


@pytest.mark.parametrize("damage", ["truncated", "checksum"])
def test_postgres_damaged_backup_is_rejected_before_anything_changes(
    scripts: dict[str, Path], scratch: str, tmp_path: Path, damage: str
) -> None:
    seed(scratch)
    backup = pg_backup(scripts, scratch, tmp_path)
    psql(scratch, "DELETE FROM points WHERE id > 100")
    before = snapshot(scratch)
    data = backup.read_bytes()
    backup.write_bytes(data[: len(data) // 3])
    if damage == "truncated":
        (backup.parent / f"{backup.name}.sha256").unlink()
        # pg_restore's own reason follows the script's words.
        expected = (
            "is not a readable pg_dump archive (custom format, as scripts/backup.sh writes):"
            " pg_restore:"
        )
    else:
        expected = "does not match"
    result = run(
        scripts["postgres"] / "restore.sh",
        "--from",
        str(backup),
        "--database-url",
        scratch,
        "--confirm",
        confirm_for(scratch),
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert expected in result.stderr and "Nothing was changed" in result.stderr
    assert snapshot(scratch) == before


def test_postgres_backup_explains_a_private_or_missing_url(
    scripts: dict[str, Path], tmp_path: Path
) -> None:
    script = scripts["postgres"] / "backup.sh"
    internal = "postgresql://u:p@postgres.railway.internal:5432/railway"
    private = run(script, cwd=tmp_path, env={"DATABASE_URL": internal})
    assert private.returncode == 1
    assert "private network" in private.stderr and "DATABASE_PUBLIC_URL" in private.stderr
    missing = run(script, cwd=tmp_path, env={"DATABASE_URL": ""})
    assert missing.returncode == 1
    assert "DATABASE_URL" in missing.stderr and "--database-url" in missing.stderr
    unreachable = run(
        script, "--database-url", "postgresql://postgres@127.0.0.1:1/none", cwd=tmp_path
    )
    assert unreachable.returncode == 1 and "cannot connect" in unreachable.stderr
    assert not list(tmp_path.glob("backups/*")), "a failed backup leaves nothing behind"


class CommandLineWatcher:
    """Reads every process's /proc/PID/cmdline until stopped; keeps what it saw."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.is_set():
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                try:
                    raw = Path(f"/proc/{pid}/cmdline").read_bytes()
                except OSError:
                    continue
                if raw:
                    self.seen.add(raw.replace(b"\0", b" ").decode(errors="replace"))

    def __enter__(self) -> CommandLineWatcher:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def programs(self) -> set[str]:
        return {Path(line.split(" ", 1)[0]).name for line in self.seen}


def test_the_watcher_sees_a_short_lived_command_line(tmp_path: Path) -> None:
    marker = f"marker-{uuid.uuid4().hex}"
    with CommandLineWatcher() as watcher:
        subprocess.run(["sh", "-c", "sleep 0.2", "sh", marker], check=True)
    assert any(marker in line for line in watcher.seen)


#: What backup.sh and restore.sh run; each is wrapped to record its argv.
WRAPPED_PROGRAMS = (
    "pg_dump", "pg_restore", "psql", "sed", "awk", "grep", "sha256sum", "head",
    "tr", "wc", "date", "mktemp", "ln", "rm", "mkdir", "dirname", "basename", "cat",
)  # fmt: skip


def argv_recorder(bin_dir: Path, log: Path) -> dict[str, str]:
    """A PATH whose first directory records each wrapped program's argv in ``log``."""
    bin_dir.mkdir()
    for name in WRAPPED_PROGRAMS:
        real = shutil.which(name)
        if real is None:
            continue
        wrapper = bin_dir / name
        # printf is the shell's builtin: recording adds no command line.
        wrapper.write_text(
            f"#!/bin/sh\nprintf '%s ' {name} \"$@\" >> '{log}'\n"
            f"printf '\\n' >> '{log}'\nexec '{real}' \"$@\"\n"
        )
        wrapper.chmod(0o755)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}"}


@pytest.mark.parametrize("where", ["userinfo", "query"])
def test_postgres_password_never_on_a_command_line(
    scripts: dict[str, Path], scratch: str, tmp_path: Path, where: str
) -> None:
    seed(scratch)
    # The local server trusts its clients, so any password connects; what
    # matters is where the scripts put it. Characters that need
    # percent-encoding in a URL are decoded before PostgreSQL gets them.
    # libpq takes the password from the user part or from a ?password=
    # parameter alike.
    password = f"pw-{uuid.uuid4().hex}"
    parts = urlsplit(scratch)
    user = READER
    host = f"{parts.hostname}:{parts.port or 5432}"
    if where == "userinfo":
        url = urlunsplit(
            parts._replace(netloc=f"{user}:{password}%40x@{host}", query="application_name=backup")
        )
    else:
        url = urlunsplit(
            parts._replace(
                netloc=f"{user}@{host}",
                query=f"connect_timeout=10&password={password}%40x&application_name=backup",
            )
        )
    log = tmp_path / "argv.log"
    path = argv_recorder(tmp_path / "bin", log)
    with CommandLineWatcher() as watcher:
        result = run(
            scripts["postgres"] / "backup.sh",
            "--output-dir",
            "out",
            cwd=tmp_path,
            env={"DATABASE_URL": url, **path},
        )
        assert result.returncode == 0, result.stderr
        backup = tmp_path / result.stdout.strip().splitlines()[-1]
        # The restore writes: as the owner, with the same kind of URL.
        owner = url.replace(f"{READER}", parts.username or "postgres", 1)
        result = run(
            scripts["postgres"] / "restore.sh",
            "--from",
            str(backup),
            "--confirm",
            confirm_for(scratch),
            cwd=tmp_path,
            env={"DATABASE_URL": owner, **path},
        )
        assert result.returncode == 0, result.stderr
    # The wrappers and the watch saw the PostgreSQL tools run, so not seeing
    # the password means something.
    recorded = log.read_text().splitlines()
    assert {"pg_dump", "pg_restore", "psql"} <= {line.split(" ", 1)[0] for line in recorded}
    assert {"pg_dump", "pg_restore", "psql"} <= watcher.programs(), watcher.programs()
    leaks = [line for line in [*recorded, *watcher.seen] if password in line]
    assert not leaks, leaks
    assert password not in result.stderr
    # The other parameters still reach libpq.
    assert any("application_name=backup" in line for line in recorded if line.startswith("pg_dump"))


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://postgres:secret@127.0.0.1:5432/x",
        "postgresql://postgres@127.0.0.1:5432/x?sslmode=disable&password=secret",
    ],
    ids=["userinfo", "query"],
)
def test_postgres_password_on_the_command_line_is_refused(
    scripts: dict[str, Path], tmp_path: Path, url: str
) -> None:
    for script in ("backup.sh", "restore.sh"):
        result = run(scripts["postgres"] / script, "--database-url", url, cwd=tmp_path)
        assert result.returncode == 2
        assert "DATABASE_URL" in result.stderr and "secret" not in result.stderr


def test_postgres_files_are_private_and_concurrent_backups_stay_apart(
    scripts: dict[str, Path], scratch: str, tmp_path: Path
) -> None:
    seed(scratch)
    runs = [
        subprocess.Popen(
            ["sh", str(scripts["postgres"] / "backup.sh"), "--output-dir", "out"],
            cwd=tmp_path,
            env={
                **{k: v for k, v in os.environ.items() if k != "DATABASE_URL"},
                "DATABASE_URL": as_role(scratch, READER),
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [process.communicate(timeout=SCRIPT_TIMEOUT) for process in runs]
    assert all(process.returncode == 0 for process in runs), [err for _, err in outputs]
    backups = {tmp_path / out.strip().splitlines()[-1] for out, _ in outputs}
    assert len(backups) == 3, "each run keeps a backup of its own"
    for backup in backups:
        listed = subprocess.run(
            ["pg_restore", "--list", str(backup)], capture_output=True, text=True, check=True
        )
        assert "TABLE DATA public points" in listed.stdout
        checksum = backup.parent / f"{backup.name}.sha256"
        assert checksum.read_text().split()[0] == sha256(backup)
        for path in (backup, checksum):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        [b.name for b in backups] + [f"{b.name}.sha256" for b in backups]
    ), "no temporary file is left behind"

    # The safety dump of a restore is private too.
    backup = sorted(backups)[0]
    result = restore_postgres(scripts, backup, scratch, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (safety,) = (tmp_path / "backups").iterdir()
    assert stat.S_IMODE(safety.stat().st_mode) == 0o600


def test_postgres_restore_says_why_pg_restore_refuses_an_archive(
    scripts: dict[str, Path], scratch: str, tmp_path: Path
) -> None:
    seed(scratch)
    backup = pg_backup(scripts, scratch, tmp_path)
    (backup.parent / f"{backup.name}.sha256").unlink()
    # "PGDMP", then the format version: one no pg_restore knows, as when
    # the archive comes from a newer pg_dump.
    data = bytearray(backup.read_bytes())
    data[5:8] = bytes([1, 99, 0])
    backup.write_bytes(bytes(data))
    result = restore_postgres(scripts, backup, scratch, cwd=tmp_path)
    assert result.returncode == 1
    assert "unsupported version (1.99) in file header" in result.stderr, result.stderr
    assert "Nothing was changed" in result.stderr


# ------------------------------------------------------ the read-only role --
def test_the_runbook_role_reads_everything_and_changes_nothing(
    scripts: dict[str, Path], scratch: str, tmp_path: Path
) -> None:
    seed(scratch)
    before = snapshot(scratch)
    backup = pg_backup(scripts, scratch, tmp_path)  # as READER
    listed = subprocess.run(
        ["pg_restore", "--list", str(backup)], capture_output=True, text=True, check=True
    )
    assert "TABLE DATA public points" in listed.stdout
    assert "SEQUENCE SET public points_id_seq" in listed.stdout
    # The role itself cannot write, whatever a bug in the script would try.
    failed = subprocess.run(
        ["psql", "-X", "-q", "-d", as_role(scratch, READER), "-c", "DELETE FROM points"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert failed.returncode != 0
    assert "read-only transaction" in failed.stderr
    assert snapshot(scratch) == before


@pytest.mark.parametrize(
    ("grants", "reason"),
    [
        (None, "is a superuser"),
        ("GRANT pg_read_all_data TO {role}", "not read-only by default"),
        (
            "GRANT pg_read_all_data TO {role}; GRANT pg_write_all_data TO {role};"
            " ALTER ROLE {role} SET default_transaction_read_only = on",
            "pg_write_all_data",
        ),
        (
            "GRANT pg_read_all_data TO {role}; GRANT INSERT ON points TO {role};"
            " ALTER ROLE {role} SET default_transaction_read_only = on",
            "can change tables",
        ),
    ],
    ids=["superuser", "not-read-only", "write-all-data", "insert"],
)
def test_postgres_backup_refuses_a_role_that_can_write(
    scripts: dict[str, Path],
    scratch: str,
    postgres_admin: object,
    tmp_path: Path,
    grants: str | None,
    reason: str,
) -> None:
    seed(scratch)
    role = f"crb_writer_{uuid.uuid4().hex[:12]}"
    if grants is None:
        url = scratch  # this machine's superuser, as an owner's URL would be
    else:
        postgres_admin.execute(f'CREATE ROLE "{role}" LOGIN')  # type: ignore[attr-defined]
        psql(scratch, grants.format(role=f'"{role}"'))
        url = as_role(scratch, role)
    try:
        refused = run(
            scripts["postgres"] / "backup.sh", "--output-dir", "out", cwd=tmp_path,
            env={"DATABASE_URL": url},
        )  # fmt: skip
        assert refused.returncode == 1, refused.stderr
        assert reason in refused.stderr, refused.stderr
        for words in ("read-only role", "DEPLOYMENT.md", "--allow-writable-role"):
            assert words in refused.stderr, words
        assert not list(tmp_path.glob("out/*")), "nothing is dumped"
        # Asked for explicitly (a copy of a local database), it goes ahead.
        allowed = run(
            scripts["postgres"] / "backup.sh", "--output-dir", "out", "--allow-writable-role",
            cwd=tmp_path, env={"DATABASE_URL": url},
        )  # fmt: skip
        assert allowed.returncode == 0, allowed.stderr
        assert "warning" in allowed.stderr and len(list(tmp_path.glob("out/*.dump"))) == 1
    finally:
        if grants is not None:
            psql(scratch, f'DROP OWNED BY "{role}"')
            postgres_admin.execute(f'DROP ROLE "{role}"')  # type: ignore[attr-defined]


# -------------------------------------------------------------------- TLS --
def env_recorder(bin_dir: Path, log: Path) -> dict[str, str]:
    """A PATH whose pg_dump and psql record PGSSLMODE and their argv, then run."""
    bin_dir.mkdir()
    for name in ("pg_dump", "psql"):
        real = shutil.which(name)
        assert real is not None
        wrapper = bin_dir / name
        wrapper.write_text(
            f'#!/bin/sh\nprintf \'%s PGSSLMODE=%s %s\\n\' {name} "${{PGSSLMODE-unset}}" "$*"'
            f" >> '{log}'\nexec '{real}' \"$@\"\n"
        )
        wrapper.chmod(0o755)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}"}


def network_name() -> str:
    """A name of this machine that is not a loopback spelling.

    To the scripts it is a host across a network.
    """
    name = socket.gethostname()
    try:
        address = socket.gethostbyname(name)
    except OSError:
        pytest.skip(f"this machine's name {name} does not resolve")
    if not address.startswith("127.") or name in {"localhost"}:
        pytest.skip(f"{name} resolves to {address}, where the test server does not listen")
    return name


@pytest.mark.parametrize(
    ("host", "query", "mode", "works"),
    [
        ("127.0.0.1", "", "unset", True),
        ("localhost", "", "unset", True),
        ("127.0.0.1", "?ssl=0", "disable", True),
        (None, "", "require", False),
        (None, "?sslmode=disable", "disable", True),
        (None, "?ssl=true&application_name=backup", "require", False),
        (None, "?application_name=backup&sslmode=prefer", "prefer", True),
        (None, "?sslmode=verify-full", "verify-full", False),
    ],
)
def test_postgres_backup_requires_tls_across_a_network(
    scripts: dict[str, Path], scratch: str, tmp_path: Path,
    host: str | None, query: str, mode: str, works: bool,
) -> None:  # fmt: skip
    """This machine's server has no TLS: reached by a host name, require must fail."""
    seed(scratch)
    host = host or network_name()
    parts = urlsplit(scratch)
    url = urlunsplit(
        parts._replace(netloc=f"{READER}@{host}:{parts.port or 5432}", query=query.lstrip("?"))
    )
    log = tmp_path / "env.log"
    path = env_recorder(tmp_path / "bin", log)
    # --allow-writable-role skips the role check, so pg_dump itself connects
    # (the check connects the same way: see the last assertion).
    for extra in (["--allow-writable-role"], []):
        log.write_text("")
        result = run(
            scripts["postgres"] / "backup.sh", "--output-dir", "out", *extra,
            cwd=tmp_path, env={"DATABASE_URL": url, **path},
        )  # fmt: skip
        recorded = log.read_text().splitlines()
        program = "pg_dump" if extra else "psql"
        # The first run connects; a failure message may ask pg_dump --version.
        line = next(line for line in recorded if line.startswith(f"{program} "))
        assert f" PGSSLMODE={mode} " in line, line
        # libpq refuses ssl=...; the mode travels in PGSSLMODE only.
        assert "ssl=" not in line.split(" ", 2)[2] and "sslmode=" not in line.split(" ", 2)[2]
        if works:
            assert result.returncode == 0, result.stderr
        else:
            assert result.returncode == 1
            assert "SSL" in result.stderr, result.stderr
            assert not list(tmp_path.glob("out/*.dump"))


def test_postgres_backup_refuses_an_unknown_sslmode(
    scripts: dict[str, Path], tmp_path: Path
) -> None:
    url = "postgresql://u:hunter2@db.example:5432/railway?sslmode=yes-please"
    result = run(scripts["postgres"] / "backup.sh", cwd=tmp_path, env={"DATABASE_URL": url})
    assert result.returncode == 1
    assert "sslmode" in result.stderr and "verify-full" in result.stderr
    assert "hunter2" not in result.stderr


# -------------------------------------------------------------- encryption --
def keygen(path: Path) -> str:
    """A new age identity in ``path``; its recipient."""
    subprocess.run(["age-keygen", "-o", str(path)], check=True, capture_output=True)
    return subprocess.run(
        ["age-keygen", "-y", str(path)], check=True, capture_output=True, text=True
    ).stdout.strip()


def encrypt_step(tree: Path) -> str:
    workflow = yaml.safe_load((tree / ".github/workflows/backup.yml").read_text(encoding="utf-8"))
    [step] = [s for s in workflow["jobs"]["backup"]["steps"] if s.get("name") == "Encrypt"]
    assert "if" not in step, "every backup is encrypted"
    return str(step["run"])


def run_encrypt_step(
    tree: Path, workdir: Path, recipients: str
) -> subprocess.CompletedProcess[str]:
    runner_temp = workdir / "runner-temp"
    runner_temp.mkdir(exist_ok=True)
    # GitHub runs a step's script with `bash -e {0}`.
    return subprocess.run(
        ["bash", "-e", "-c", encrypt_step(tree)],
        cwd=workdir,
        env={
            "PATH": os.environ["PATH"],
            "RUNNER_TEMP": str(runner_temp),
            "BACKUP_AGE_RECIPIENTS": recipients,
        },
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT,
        check=False,
    )


def test_postgres_encrypted_backup_restores_with_the_identity_only(
    scripts: dict[str, Path], scratch: str, tmp_path: Path
) -> None:
    if shutil.which("age") is None:
        pytest.fail("age is needed on PATH for this test (Debian: apt-get install age)")
    tree = scripts["postgres"].parent
    seed(scratch)
    before = snapshot(scratch)
    # As backup.yml does: backup.sh into backups/, then its Encrypt step.
    result = run(
        scripts["postgres"] / "backup.sh", "--output-dir", "backups", cwd=tmp_path,
        env={"DATABASE_URL": as_role(scratch, READER)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    plain = tmp_path / result.stdout.strip().splitlines()[-1]
    plain_sha = sha256(plain)
    first, second, stranger = (tmp_path / f"{n}.key" for n in ("first", "second", "stranger"))
    recipients = f"{keygen(first)}, {keygen(second)}"
    keygen(stranger)
    encrypted = run_encrypt_step(tree, tmp_path, recipients)
    assert encrypted.returncode == 0, encrypted.stdout + encrypted.stderr
    assert not plain.exists(), "no plaintext dump is uploaded"
    sealed = plain.parent / f"{plain.name}.age"
    assert sealed.read_bytes().startswith(b"age-encryption.org/v1\n")
    assert sorted(p.name for p in plain.parent.iterdir()) == sorted(
        [sealed.name, f"{plain.name}.sha256"]
    )
    # The checksum beside it is the plaintext's: restore.sh checks it after decrypting.
    assert (plain.parent / f"{plain.name}.sha256").read_text().split()[0] == plain_sha

    psql(scratch, "DELETE FROM points WHERE id > 10; UPDATE guilds SET name = 'changed'")
    changed = snapshot(scratch)
    temp = tmp_path / "tmp"
    temp.mkdir()

    def restore(*args: str) -> subprocess.CompletedProcess[str]:
        return run(
            scripts["postgres"] / "restore.sh", "--from", str(sealed), *args,
            "--confirm", confirm_for(scratch), "--safety-dir", str(tmp_path / "safety"),
            cwd=tmp_path, env={"DATABASE_URL": scratch, "TMPDIR": str(temp)},
        )  # fmt: skip

    missing = restore()
    assert missing.returncode == 2 and "--identity" in missing.stderr, missing.stderr
    wrong = restore("--identity", str(stranger))
    assert wrong.returncode == 1, wrong.stderr
    assert "cannot decrypt" in wrong.stderr and "Nothing was changed" in wrong.stderr
    assert snapshot(scratch) == changed
    # Either recipient's identity decrypts; no plaintext is left behind. As
    # DEPLOYMENT.md has it: the identity through a pipe, from bash.
    done = subprocess.run(
        [
            "bash", "-c",
            'sh "$0" --from "$1" --identity <(printf \'%s\\n\' "$AGE_IDENTITY") --confirm "$2"'
            ' --safety-dir "$3"',
            str(scripts["postgres"] / "restore.sh"), str(sealed), confirm_for(scratch),
            str(tmp_path / "safety"),
        ],
        cwd=tmp_path,
        env={
            **{k: v for k, v in os.environ.items() if k != "DATABASE_URL"},
            "DATABASE_URL": scratch, "TMPDIR": str(temp), "AGE_IDENTITY": second.read_text(),
        },
        capture_output=True, text=True, timeout=SCRIPT_TIMEOUT, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert snapshot(scratch) == before
    assert not list(temp.iterdir()), "the decrypted dump is deleted"

    # A damaged download fails age's own authentication: nothing changes.
    data = sealed.read_bytes()
    sealed.write_bytes(data[: len(data) - 100])
    psql(scratch, "DELETE FROM points WHERE id > 10")
    changed = snapshot(scratch)
    damaged = restore("--identity", str(first))
    assert damaged.returncode == 1 and "Nothing was changed" in damaged.stderr, damaged.stderr
    assert snapshot(scratch) == changed


def test_the_encrypt_step_refuses_to_run_without_a_recipient(
    scripts: dict[str, Path], tmp_path: Path
) -> None:
    (tmp_path / "backups").mkdir()
    dump = tmp_path / "backups" / f"{PACKAGE}-20260101T000000Z.dump"
    dump.write_bytes(b"PGDMP not really")
    for recipients in ("", " , "):
        result = run_encrypt_step(scripts["postgres"].parent, tmp_path, recipients)
        assert result.returncode != 0
        assert "::error::" in result.stdout and "BACKUP_AGE_RECIPIENTS" in result.stdout
        assert "age-keygen" in result.stdout
        assert not list((tmp_path / "backups").glob("*.age"))
