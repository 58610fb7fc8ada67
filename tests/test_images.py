"""Every distinct Dockerfile the template renders is built and booted for real.

tests/images.py builds the images: with buildah here (bases made locally
from the official recipes), with docker in the template's GitHub CI. For
each image, as Railway would run it:

- with no settings, the bot exits 78 and `check` 1, naming every missing
  variable;
- `migrate` runs as Railway's pre-deploy command (PostgreSQL);
- the start command, as the image's user (root only where the runbook sets
  RAILWAY_RUN_UID=0 for a volume), with settings pointing at the local
  PostgreSQL and Redis on the host network, serves 200 on /health at $PORT;
- the bot is PID 1 and shuts down cleanly within its bound on SIGTERM;
- it wrote nothing outside its volume.

A build step that needs a host this machine cannot reach is reported by
name (stage, step, why) in the run's summary; the rest of the build runs.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import images
import pytest
import yaml
from jinja2 import Environment, FileSystemLoader

import matrix
from conftest import exclusive, shared_dir

ROOT = Path(__file__).resolve().parent.parent
POSTGRES_ADMIN = os.environ.get(
    "CRB_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("CRB_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")

#: The bot's promise on SIGTERM (docs/design/operations.md), with the margin
#: assert_clean_stop in test_dockerfile.py gives it.
SHUTDOWN_BOUND = 10.5


def _image_combinations() -> list[dict[str, Any]]:
    """One combination per distinct Dockerfile the template renders.

    The image depends on the runtime, its version, the database, and whether
    the PostgreSQL client for private backups is in it;
    test_image_combinations_cover_every_dockerfile proves that on the whole
    matrix. Redis is on wherever it can be, so its client boots too.
    """
    combos = []
    for runtime in matrix.choices("runtime"):
        for database in matrix.choices("database"):
            variants = [{"backups": False}]
            if database == "postgres":
                variants.append({"backups": True, "backup_path": "railway"})
            for extra in variants:
                wanted = {"runtime": runtime, "database": database, "redis": True, **extra}
                if database == "none":
                    wanted.pop("backups")
                combos.append(wanted)
    # The other Python a bot can choose: its own base image.
    others = [
        v for v in matrix.choices("python_version") if v != matrix.default("python_version", {})
    ]
    for version in others:
        combos.append(
            {
                "runtime": "python",
                "python_version": version,
                "database": "postgres",
                "redis": True,
                "backups": True,
                "backup_path": "railway",
            }
        )
    return combos


IMAGE_COMBOS = _image_combinations()


def image_id(wanted: dict[str, Any]) -> str:
    parts = [wanted["runtime"] + wanted.get("python_version", ""), wanted["database"]]
    if wanted.get("backups"):
        parts.append("backups-" + wanted["backup_path"])
    return "-".join(parts)


def answers_of(wanted: dict[str, Any]) -> dict[str, Any]:
    return matrix.complete({**matrix.REQUIRED_ANSWERS, **wanted})


def dockerfile_of(tree: Path, answers: dict[str, Any]) -> Path:
    return tree / ("Dockerfile" if answers["builder"] == "dockerfile" else "docker/Dockerfile")


def railway_service(answers: dict[str, Any]) -> dict[str, Any]:
    """The Railway settings of these answers, from the include every IaC file is made of."""
    env = Environment(
        loader=FileSystemLoader(str(ROOT)),
        extensions=["jinja2_ansible_filters.AnsibleCoreFiltersExtension"],
    )
    text = env.from_string(
        '{%- from "includes/railway/service.jinja" import railway with context -%}'
        "{{ railway | tojson }}"
    ).render(**answers)
    return json.loads(text)  # type: ignore[no-any-return]


def dockerfile_key(answers: dict[str, Any]) -> tuple:
    """What a rendered Dockerfile depends on, beyond its location and builder comment."""
    version = answers["python_version"] if answers["runtime"] == "python" else ""
    pg_client = answers["database"] == "postgres" and matrix.private_backups(answers)
    return (answers["runtime"], version, answers["database"], pg_client)


def normalised(text: str) -> str:
    """A Dockerfile without the lines that name its own location or builder."""
    return "\n".join(
        line
        for line in text.splitlines()
        if not line.startswith(("# Image for ", "# Local build: "))
    )


# --------------------------------------------------------------- fixtures --
@pytest.fixture(scope="session")
def engine() -> images.Buildah | images.Docker:
    engine = images.engine()
    missing = engine.available()
    if missing:
        message = f"no real image builds here: {missing}"
        if os.environ.get("REQUIRE_SERVICES"):
            pytest.fail(message)
        pytest.skip(message)
    return engine


@pytest.fixture(scope="session")
def builder(engine, pytestconfig) -> images.Builder:
    if isinstance(engine, images.Docker):
        return images.Builder(engine)
    return images.Builder(engine, images.StandIn(engine.cache / "stand-in"))


def build_with_bases(
    builder: images.Builder, pytestconfig, context: Path, dockerfile: Path, tag: str
) -> images.Build:
    """One build at a time in the whole run; the bases it names made first if needed.

    Builds do not wait for the generated bots' suites: a suite spends most
    of its time in its drills' timers (about one core busy), and a build
    beside it uses the other. Two builds at once never run.
    """
    with exclusive(shared_dir(pytestconfig) / "image-build.lock"):
        if isinstance(builder.engine, images.Buildah):
            assert builder.stand_in is not None
            with exclusive(builder.engine.cache / "bases.lock"):
                images.Bases(builder.engine, builder.stand_in).ensure(
                    images.from_images(dockerfile)
                )
            with builder.stand_in:
                return builder.build(context, dockerfile, tag)
        return builder.build(context, dockerfile, tag)


@pytest.fixture
def database(request) -> str:
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    psycopg = pytest.importorskip("psycopg")
    name = f"crb_image_{uuid.uuid4().hex[:12]}"
    admin = psycopg.connect(POSTGRES_ADMIN, autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    yield POSTGRES_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # type: ignore[no-any-return]


def health(port: int) -> tuple[int, dict | None] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as reply:
            status, text = reply.status, reply.read()
    except urllib.error.HTTPError as exc:
        status, text = exc.code, exc.read()
    except OSError:
        return None
    try:
        return status, json.loads(text)
    except ValueError:
        return status, None


def record(pytestconfig, name: str, report: dict[str, Any]) -> None:
    folder = shared_dir(pytestconfig) / "images"
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(report), encoding="utf-8")


# ------------------------------------------------------------------ tests --
def test_image_combinations_cover_every_dockerfile(rendered_matrix):
    """Each distinct Dockerfile of the matrix has its key among IMAGE_COMBOS."""
    texts: dict[tuple, set[str]] = {}
    for combo in matrix.combinations():
        answers = answers_of(combo.answers)
        text = dockerfile_of(rendered_matrix.tree(combo), answers).read_text(encoding="utf-8")
        texts.setdefault(dockerfile_key(answers), set()).add(normalised(text))
    assert all(len(v) == 1 for v in texts.values()), {k: len(v) for k, v in texts.items()}
    built = {dockerfile_key(answers_of(w)) for w in IMAGE_COMBOS}
    assert set(texts) <= built, f"never built: {sorted(set(texts) - built)}"


def test_every_base_image_has_a_recipe(rendered_matrix):
    """Any FROM or COPY --from image a render names can be made here, by the exact name."""
    named = set()
    for combo in matrix.combinations():
        answers = answers_of(combo.answers)
        named |= images.from_images(dockerfile_of(rendered_matrix.tree(combo), answers))
    for wanted in IMAGE_COMBOS:
        answers = answers_of(wanted)
        if answers["runtime"] == "python":
            named.add(f"python:{answers['python_version']}-slim-{images.DEBIAN_SUITE}")
    for tag in sorted(named):
        assert images.base_for(tag).tag == tag
    with pytest.raises(images.BuildError, match="no local recipe"):
        images.base_for("alpine:3")


def test_unreachable_steps_are_wrapped_and_nothing_else(tmp_path):
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(
        "FROM debian:trixie-slim AS base\n"
        "RUN apt-get update\n"
        "RUN echo 'deb https://apt.postgresql.org/pub/repos/apt trixie-pgdg main' \\\n"
        "      > /etc/apt/sources.list.d/pgdg.list \\\n"
        "    && apt-get update\n"
        'CMD ["bash"]\n'
    )
    out = tmp_path / "derived"
    wrapped = images.wrap_unreachable(dockerfile, out)
    assert [(w.stage, w.host) for w in wrapped] == [("base", "apt.postgresql.org")]
    lines = out.read_text().splitlines()
    assert lines[1] == "RUN apt-get update"
    assert lines[2].startswith("RUN if ( echo 'deb https://apt.postgresql.org/")
    assert lines[3] == 'CMD ["bash"]'
    dockerfile.write_text("FROM debian:trixie-slim\nADD https://apt.postgresql.org/x /x\n")
    with pytest.raises(images.BuildError, match="only shell-form RUN"):
        images.wrap_unreachable(dockerfile, out)


def test_digests_are_stripped_from_image_references_and_nothing_else(tmp_path):
    """The bases here carry their tag alone, so the tier drops a base's digest, only that."""
    pin = "@sha256:" + "0123456789abcdef" * 4
    text = (
        f"FROM ghcr.io/astral-sh/uv:0.13.9{pin} AS uv\n"
        f"FROM python:3.13-slim-trixie{pin} AS build\n"
        "COPY --from=uv /uv /usr/local/bin/uv\n"
        f"RUN echo python:3.13-slim-trixie{pin} > /pinned\n"
        f'LABEL pinned="node:24.19.0-trixie-slim{pin}"\n'
        f"FROM build AS runtime\n"
        f"COPY --from=node:24.19.0-trixie-slim{pin} \\\n"
        "     /usr/local/bin/node /usr/local/bin/node\n"
    )
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(text)
    stripped = images.strip_digests(dockerfile)
    assert stripped == [
        f"ghcr.io/astral-sh/uv:0.13.9{pin}",
        f"python:3.13-slim-trixie{pin}",
        f"node:24.19.0-trixie-slim{pin}",
    ]
    lines = text.splitlines(keepends=True)
    for n in (0, 1, 6):
        lines[n] = lines[n].replace(pin, "")
    assert dockerfile.read_text() == "".join(lines)
    assert images.image_references(dockerfile) == {
        "ghcr.io/astral-sh/uv:0.13.9",
        "python:3.13-slim-trixie",
        "node:24.19.0-trixie-slim",
    }


def test_rendered_dockerfiles_lose_their_digests_and_nothing_else(rendered_matrix, tmp_path):
    """Each distinct Dockerfile, stripped as a build here strips it: only FROM/COPY lines change."""
    seen = set()
    for combo in matrix.combinations():
        answers = answers_of(combo.answers)
        if dockerfile_key(answers) in seen:
            continue
        seen.add(dockerfile_key(answers))
        original = dockerfile_of(rendered_matrix.tree(combo), answers)
        copy = tmp_path / "Dockerfile"
        shutil.copyfile(original, copy)
        stripped = images.strip_digests(copy)
        pinned = {r for r in images.image_references(original) if "@sha256:" in r}
        assert pinned and set(stripped) == pinned
        before = original.read_text(encoding="utf-8").splitlines()
        after = copy.read_text(encoding="utf-8").splitlines()
        assert len(before) == len(after)
        for old, new in zip(before, after, strict=True):
            if old != new:
                assert old.split()[0] in ("FROM", "COPY"), old
                assert new == re.sub(r"@sha256:[0-9a-f]{64}", "", old), old
        assert images.image_references(copy) == images.from_images(original)
        for tag in images.from_images(original):
            assert images.base_for(tag).tag == tag


@pytest.mark.slow
@pytest.mark.image
def test_an_https_source_needs_a_ca_bundle(engine, builder, pytestconfig, tmp_path):
    """The Node base purges ca-certificates: an https apt source fails there until one is installed.

    This is the fault that kept the first Node image with private backups
    from building: the same step on the same base, before and after.
    """
    if isinstance(engine, images.Docker):
        pytest.skip("the stand-in is for hosts this machine cannot reach; docker reaches them")
    node = f"node:{images.sources()['node']['version']}-{images.DEBIAN_SUITE}-slim"
    source = (
        "echo 'deb [trusted=yes] https://apt.postgresql.org/pub/repos/apt "
        f"{images.DEBIAN_SUITE}-pgdg main' > /etc/apt/sources.list.d/pgdg.list && apt-get update"
    )
    (tmp_path / "without.Dockerfile").write_text(f"FROM {node}\nRUN {source}\n")
    (tmp_path / "with.Dockerfile").write_text(
        f"FROM {node}\nRUN apt-get update && apt-get install -y --no-install-recommends "
        f"ca-certificates && {source}\n"
    )
    tag = f"localhost/crb-ca-{uuid.uuid4().hex[:8]}"
    with pytest.raises(images.BuildError, match="could not open a TLS connection"):
        build_with_bases(builder, pytestconfig, tmp_path, tmp_path / "without.Dockerfile", tag)
    try:
        build = build_with_bases(builder, pytestconfig, tmp_path, tmp_path / "with.Dockerfile", tag)
        assert [n.host for n in build.not_run] == ["apt.postgresql.org"]
        assert (
            f"/pub/repos/apt/dists/{images.DEBIAN_SUITE}-pgdg/InRelease" in build.not_run[0].reason
        )
    finally:
        engine.remove_image(tag)


@pytest.mark.slow
@pytest.mark.image
@pytest.mark.parametrize("wanted", IMAGE_COMBOS, ids=[image_id(w) for w in IMAGE_COMBOS])
def test_image_builds_and_boots(engine, builder, pytestconfig, tree_for, wanted, request, tmp_path):
    answers = answers_of(wanted)
    tree = tree_for(wanted)
    dockerfile = dockerfile_of(tree, answers)
    name = image_id(wanted)
    tag = f"localhost/crb-{name}-{uuid.uuid4().hex[:8]}"
    report: dict[str, Any] = {
        "image": name,
        "engine": engine.name,
        "built": False,
        "booted": False,
        "not_run": [],
    }
    try:
        build = build_with_bases(builder, pytestconfig, tree, dockerfile, tag)
        report.update(
            built=True,
            build_seconds=round(build.seconds, 1),
            not_run=[vars(n) for n in build.not_run],
        )
        if answers["database"] == "postgres" and matrix.private_backups(answers):
            # The client install from apt.postgresql.org is the only step this
            # machine cannot run; it must be reported, never skipped silently.
            if isinstance(engine, images.Buildah):
                assert [n.host for n in build.not_run] == ["apt.postgresql.org"], build.not_run
        else:
            assert build.not_run == []
        started = time.monotonic()
        boot_checks(engine, tag, tree, answers, request, tmp_path, report)
        report.update(booted=True, boot_seconds=round(time.monotonic() - started, 1))
    finally:
        record(pytestconfig, name, report)
        engine.remove_image(tag)


#: What /health answers for the instance handling Discord events.
ACTIVE = (200, "active")

#: Every module of the installed package imports, from site-packages, compiled.
PYTHON_IMPORTS = """
import importlib, pathlib, pkgutil, sys
import {pkg}
assert "/site-packages/" in {pkg}.__file__, {pkg}.__file__
assert list(pathlib.Path({pkg}.__file__).parent.glob("__pycache__/*.pyc")), "no bytecode"
for m in pkgutil.walk_packages({pkg}.__path__, "{pkg}."):
    if m.name.endswith(".__main__") or ".migrations" in m.name:
        continue
    importlib.import_module(m.name)
"""


def wait_for_role(port: int, bot, role: str, timeout: float) -> list:
    """Poll /health until it answers 200 with ``role``; every answer seen, in order."""
    seen, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline and bot.alive():
        answer = health(port)
        if answer is not None:
            seen.append((answer[0], (answer[1] or {}).get("role")))
            if seen[-1] == (200, role):
                break
        time.sleep(0.2)
    return seen


def check_node_app(app: Path, tree: Path, answers: dict[str, Any]) -> None:
    """/app holds the compiled bot and its production dependencies, nothing else."""
    assert {p.name for p in app.iterdir()} == {"dist", "node_modules", "package.json"}
    assert (app / "dist" / "main.js").is_file()
    assert not list((app / "dist").rglob("*.ts")), "TypeScript sources in the image"
    if answers["database"] != "none":
        assert list((app / "dist" / "migrations").glob("*.js")), "no compiled migrations"
    lock = json.loads((tree / "package-lock.json").read_text(encoding="utf-8"))
    packages = {k: v for k, v in lock["packages"].items() if k}
    dev_only = [k for k, v in packages.items() if v.get("dev")]
    assert "node_modules/typescript" in dev_only
    assert not [k for k in dev_only if (app / k).exists()], "dev dependencies in the image"
    missing = [
        k
        for k, v in packages.items()
        if not v.get("dev") and not v.get("optional") and not (app / k / "package.json").is_file()
    ]
    assert not missing, f"production packages missing from the image: {missing}"


def compose_healthcheck(tree: Path, port: int) -> list[str]:
    """compose.yaml's health check of the bot (exec form), aimed at ``port``."""
    compose = yaml.safe_load((tree / "compose.yaml").read_text(encoding="utf-8"))
    test = compose["services"]["bot"]["healthcheck"]["test"]
    assert test[0] == "CMD", test
    return [arg.replace(":8080/", f":{port}/") for arg in test[1:]]


def boot_checks(
    engine,
    tag: str,
    tree: Path,
    answers: dict[str, Any],
    request,
    tmp_path: Path,
    report: dict[str, Any],
) -> None:
    service = railway_service(answers)
    command = shlex.split(service["command"])
    start = shlex.split(service["deploy"]["startCommand"])
    variables = {v["name"]: v for v in service["variables"]}
    config = engine.config(tag)
    assert config.user and config.user.split(":")[0] not in ("root", "0"), config.user
    # Railway runs the container as root only where the runbook sets RAILWAY_RUN_UID=0.
    as_root = variables.get("RAILWAY_RUN_UID", {}).get("value") == "0"
    user = "0:0" if as_root else None
    volume_path = service["volume"]["mountPath"] if service.get("volume") else None
    shared_lock = answers["redis"] or answers["database"] == "postgres"

    settings: dict[str, str] = {
        "DISCORD_TOKEN": "not-a-real-token",
        # The redeploy lock's keys in a namespace no other bot of the run uses.
        "RAILWAY_ENVIRONMENT_NAME": f"image-{uuid.uuid4().hex[:12]}",
    }
    if answers["database"] == "postgres":
        settings["DATABASE_URL"] = request.getfixturevalue("database")
    if answers["redis"]:
        settings["REDIS_URL"] = REDIS_URL
    mounts: dict[str, Path] = {}
    if volume_path:
        volume = tmp_path / "volume"
        volume.mkdir()
        mounts[volume_path] = volume  # owned by root, as Railway mounts it
        settings["RAILWAY_VOLUME_MOUNT_PATH"] = volume_path

    with images.boot(engine, tag) as image:
        image.watch_writes(allowed=(volume_path,) if volume_path else ())

        # No settings at all: the bot exits 78 (EX_CONFIG: Railway's restarts
        # cannot help) and `check` 1, as documented; both name what is missing.
        required = ["DISCORD_TOKEN"] + [k for k in ("DATABASE_URL", "REDIS_URL") if k in settings]
        for argv, expected in ((start, 78), ([*command, "check"], 1)):
            bare = image.run(argv, {}, user=user, mounts=mounts, entrypoint=argv is not start)
            assert bare.status == expected, f"{shlex.join(argv)}: {bare.status}\n{bare.output}"
            for name in required:
                assert name in bare.output, f"{name} not named:\n{bare.output}"

        # Railway's pre-deploy command, in the same image.
        for pre in service["deploy"].get("preDeployCommand") or []:
            migrated = image.run(shlex.split(pre), settings, user=user, mounts=mounts)
            assert migrated.status == 0, migrated.output
            report.setdefault("ran", []).append(pre)
        if answers["database"] == "sqlite" and answers["runtime"] == "python":
            pass  # its start command migrates first, as Railway runs it below
        elif answers["database"] == "sqlite":
            migrated = image.run([*command, "migrate"], settings, user=user, mounts=mounts)
            assert migrated.status == 0, migrated.output  # compose's migrate service

        # What the image holds.
        if answers["runtime"] == "python":
            imports = image.run(
                ["python", "-c", PYTHON_IMPORTS.format(pkg=answers["package_name"])],
                settings,
                user=user,
                mounts=mounts,
            )
            assert imports.status == 0, imports.output
        else:
            check_node_app(image.copy_out("/app", tmp_path / "app"), tree, answers)

        if answers["database"] != "sqlite" or answers["runtime"] == "node":
            checked = image.run([*command, "check"], settings, user=user, mounts=mounts)
            assert checked.status == 0, checked.output
            # And `check` does fail when a service is down, so the pass means something.
            broken = {}
            if answers["redis"]:
                broken["REDIS_URL"] = "redis://127.0.0.1:1/0"
            if answers["database"] == "postgres":
                broken["DATABASE_URL"] = "postgresql://postgres@127.0.0.1:1/none"
            for key, value in broken.items():
                failed = image.run(
                    [*command, "check"], {**settings, key: value}, user=user, mounts=mounts
                )
                assert failed.status != 0, f"check passed with {key} down:\n{failed.output}"

        if volume_path:
            # An existing bot's volume: everything in it root's, as a bot that
            # ran as root (or `railway ssh` as root) left it, and a link a
            # compromised bot could have planted, aimed out of the volume.
            database = f"{answers['package_name']}.sqlite3"
            (volume / database).touch()
            (volume / f"{database}.restored").write_text("latest\nkey\n")
            (volume / f"{database}-planted").symlink_to("/etc/passwd")
            for path in (volume, *volume.iterdir()):
                os.lchown(path, 0, 0)
            passwd = (image.rootfs / "etc/passwd") if hasattr(image, "rootfs") else None

        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = free_port()
        env = {
            **settings,
            "PORT": str(port),
            "DISCORD_API_URL": f"http://127.0.0.1:{silent.getsockname()[1]}",
            "DISCORD_API_URL_ALLOW_LOCAL": "1",
        }
        # Railway's start command takes the place of the image's ENTRYPOINT.
        bot = image.start(start, env, user=user, mounts=mounts, entrypoint=False)
        standby = None
        try:
            # Active at once without a redeploy lock; with one, once it holds
            # it (a first start stands by for one lease, 10 s by default).
            roles = wait_for_role(port, bot, "active", 60)
            assert roles and roles[-1] == ACTIVE, f"{roles}\n{bot.output()}"
            if not shared_lock:
                assert set(roles) == {ACTIVE}, roles
            # Never root, even where Railway starts the container as root
            # (RAILWAY_RUN_UID=0): real, effective, saved and file-system ids
            # are the image's user's, with no capability left to regain root.
            image_uid, image_gid = (int(i) for i in config.user.split(":"))
            status = bot.status()
            assert status["Uid"].split() == [str(image_uid)] * 4, (status["Uid"], config.user)
            assert status["Gid"].split() == [str(image_gid)] * 4, (status["Gid"], config.user)
            for caps in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
                assert int(status[caps], 16) == 0, f"{caps} {status[caps]}"
            if as_root:
                # Started as root, it also gave up the bounding set and any
                # privilege a set-user-ID program would grant.
                assert int(status["CapBnd"], 16) == 0, f"CapBnd {status['CapBnd']}"
                assert status["NoNewPrivs"] == "1", status["NoNewPrivs"]
            report["user"] = (
                f"{image_uid} ({'started as root, RAILWAY_RUN_UID=0' if as_root else 'image user'})"
            )
            # The bot itself is PID 1: whatever started it exec'd it, no shell waits.
            cmdline = Path(f"/proc/{bot.pid1}/cmdline").read_bytes().split(b"\0")
            binary = "python" if answers["runtime"] == "python" else "node"
            assert Path(cmdline[0].decode()).name.startswith(binary), cmdline
            assert status["NSpid"].split()[-1] == "1", status["NSpid"]
            if volume_path:
                # The volume and the database's files are the user's now; the
                # planted link was not followed out of the volume.
                owned = {p.name: (p.lstat().st_uid, p.lstat().st_gid) for p in volume.iterdir()}
                assert (volume.stat().st_uid, volume.stat().st_gid) == (image_uid, image_gid)
                assert database in owned, owned
                planted = owned.pop(f"{database}-planted")
                assert set(owned.values()) == {(image_uid, image_gid)}, owned
                assert planted[0] in (0, image_uid), planted
                if passwd is not None:
                    assert passwd.stat().st_uid == 0, "chown followed a link out of the volume"

            # compose.yaml's health check passes inside the image.
            probe = image.exec(compose_healthcheck(tree, port), {}, user=user)
            assert probe.status == 0, probe.output

            if shared_lock:
                # A second instance, as during a deploy: a healthy standby that
                # stops at once on SIGTERM, without ever going active.
                other_port = free_port()
                standby = image.start(
                    start, {**env, "PORT": str(other_port)}, user=user, mounts=mounts
                )
                seen = wait_for_role(other_port, standby, "standby", 30)
                assert seen and seen[-1] == (200, "standby"), f"{seen}\n{standby.output()}"
                time.sleep(1)
                assert health(other_port)[1]["role"] == "standby"  # type: ignore[index]
                stopping = time.monotonic()
                standby.terminate()
                status = standby.wait(15)
                assert status == 0, f"standby: {status}\n{standby.output()}"
                assert time.monotonic() - stopping < SHUTDOWN_BOUND

            stopping = time.monotonic()
            bot.terminate()
            status = bot.wait(15)
            elapsed = time.monotonic() - stopping
        finally:
            bot.kill()
            if standby is not None:
                standby.kill()
            silent.close()
        output = bot.output()
        assert status is not None, f"still running 15 s after SIGTERM:\n{output}"
        assert elapsed < SHUTDOWN_BOUND, f"{elapsed:.1f} s from SIGTERM to exit:\n{output}"
        assert status == 0, f"exit status {status} after SIGTERM:\n{output}"
        report["stop_seconds"] = round(elapsed, 2)

        written = image.writes()
        assert not written, f"wrote outside its volume: {written[:20]}"


def summary_lines(folder: Path) -> list[str]:
    """The per-image report the run prints at its end (conftest.py)."""
    lines = []
    for path in sorted(folder.glob("*.json")):
        report = json.loads(path.read_text(encoding="utf-8"))
        state = "booted" if report["booted"] else ("built" if report["built"] else "FAILED")
        line = f"{report['image']:<34} {state:<7} ({report['engine']}"
        if "build_seconds" in report:
            line += f", build {report['build_seconds']} s"
        if "boot_seconds" in report:
            line += f", boot {report['boot_seconds']} s"
        lines.append(line + ")")
        for step in report["not_run"]:
            first = re.sub(r"\s+", " ", step["step"])[:90]
            lines.append(f"    not run here, stage {step['stage']}: RUN {first}...")
            lines.append(f"      why: {step['reason']}")
    return lines


def test_summary_names_every_step_not_run(tmp_path):
    (tmp_path / "a.json").write_text(
        json.dumps(
            {
                "image": "node-postgres-backups-railway",
                "engine": "buildah",
                "built": True,
                "booted": True,
                "build_seconds": 1,
                "boot_seconds": 2,
                "not_run": [
                    {"stage": "runtime", "step": "apt-get update", "host": "h", "reason": "r"}
                ],
            }
        )
    )
    lines = summary_lines(tmp_path)
    assert lines[0].startswith("node-postgres-backups-railway")
    assert "not run here, stage runtime: RUN apt-get update" in lines[1]
    assert lines[2].endswith("why: r")
