"""compose.yaml runs the same bot locally, with its services, for every combination.

No Docker engine (and no compose plugin) exists here, so the file is read as
YAML (merge keys resolved, as compose does) and checked for what `docker
compose up` relies on: the image definition compose builds exists where the
builder puts it, the bot waits for healthy services and for a one-shot
migration, URLs point at the compose services with matching credentials, the
SQLite volume is where the bot looks, and every variable set is one the bot
reads. The compose-spec schema itself is checked by tests/test_lint.py.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
import yaml
from test_dockerfile import answers_of, pinned_images
from test_env_example import settings_env_names, settings_module

import matrix
from linters import SafeLoader

COMBOS = matrix.combinations()


def load(tree) -> dict:
    return yaml.load((tree / "compose.yaml").read_text(encoding="utf-8"), Loader=SafeLoader)


@pytest.mark.parametrize("combo", COMBOS, ids=[c.id for c in COMBOS])
def test_compose_runs_the_bot_and_its_services(rendered_matrix, combo):
    check_compose(rendered_matrix.tree(combo), answers_of(combo))


def check_compose(tree, a) -> None:
    pkg = a["package_name"]
    node = a["runtime"] == "node"
    doc = load(tree)
    services = doc["services"]
    images = pinned_images(a["python_version"])

    expected = {"bot"}
    if a["database"] != "none":
        expected.add("migrate")
    if a["database"] == "postgres":
        expected.add("postgres")
    if a["redis"]:
        expected.add("redis")
    assert set(services) == expected

    bot = services["bot"]
    # The image compose builds is the one Railway builds (or would, for the
    # Dockerfile builder); with Railpack/Nixpacks it is kept out of the root.
    dockerfile = "Dockerfile" if a["builder"] == "dockerfile" else "docker/Dockerfile"
    assert bot["build"] == {"context": ".", "dockerfile": dockerfile}
    assert (tree / dockerfile).is_file()
    assert bot["env_file"] == ".env"
    assert bot["restart"] == "unless-stopped"
    grace = re.fullmatch(r"(\d+)s", bot["stop_grace_period"])
    assert grace and int(grace.group(1)) > 10  # the bot's shutdown takes up to 10 s
    assert "command" not in bot and "entrypoint" not in bot  # the image's CMD, as on Railway
    assert "127.0.0.1:8080:8080" in bot["ports"]
    assert any("/health" in part for part in bot["healthcheck"]["test"])
    # Exec form with the image's own runtime: the slim images have no curl.
    assert bot["healthcheck"]["test"][:3] == (
        ["CMD", "node", "-e"] if node else ["CMD", "python", "-c"]
    )

    depends = bot.get("depends_on", {})
    wanted = {}
    if a["database"] != "none":
        wanted["migrate"] = {"condition": "service_completed_successfully"}
    if a["database"] == "postgres":
        wanted["postgres"] = {"condition": "service_healthy"}
    if a["redis"]:
        wanted["redis"] = {"condition": "service_healthy"}
    assert depends == wanted

    environment = bot.get("environment", {})
    read = settings_env_names(settings_module(tree))
    assert set(environment) <= read, set(environment) - read

    if a["database"] != "none":
        migrate = services["migrate"]
        # The very same image and settings as the bot, then the bot's own command.
        for key in ("build", "image", "env_file", "environment", "volumes"):
            assert migrate.get(key) == bot.get(key), key
        # The image's CMD with the bot's migrate command.
        expected = ["node", "dist/main.js"] if node else ["python", "-m", pkg]
        assert migrate["command"] == [*expected, "migrate"]
        assert migrate["restart"] == "no"

    if a["database"] == "postgres":
        pg = services["postgres"]
        assert pg["image"] == images["postgres"]
        assert "pg_isready" in " ".join(pg["healthcheck"]["test"])
        url = urlsplit(environment["DATABASE_URL"])
        assert url.scheme == "postgresql" and url.hostname == "postgres"
        assert url.username == pg["environment"]["POSTGRES_USER"]
        assert url.password == pg["environment"]["POSTGRES_PASSWORD"]
        assert url.path == "/" + pg["environment"]["POSTGRES_DB"]
        assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
        volume, _, target = pg["volumes"][0].partition(":")
        assert volume in doc["volumes"] and target.startswith("/var/lib/postgresql")
        # The bot's own tests reach this server when TEST_DATABASE_URL is unset.
        test_url = urlsplit(default_test_url(tree, "TEST_DATABASE_URL", node))
        assert f"{test_url.hostname}:{test_url.port}:5432" in pg["ports"], pg["ports"]
        assert test_url.username == pg["environment"]["POSTGRES_USER"]
        assert test_url.password == pg["environment"]["POSTGRES_PASSWORD"]

    if a["redis"]:
        redis = services["redis"]
        assert redis["image"] == images["redis"]
        assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
        url = urlsplit(environment["REDIS_URL"])
        assert url.scheme == "redis" and url.hostname == "redis"
        test_url = urlsplit(default_test_url(tree, "TEST_REDIS_URL", node))
        assert f"{test_url.hostname}:{test_url.port}:6379" in redis["ports"], redis["ports"]

    if a["database"] == "sqlite":
        volume, _, target = bot["volumes"][0].partition(":")
        assert volume in doc["volumes"] and target == "/data"
        assert environment["DATABASE_URL"] == f"sqlite:////data/{pkg}.sqlite3"
        # A new named volume takes the owner of the image's directory: the
        # image must create /data for its unprivileged user.
        dockerfile_text = (tree / dockerfile).read_text(encoding="utf-8")
        owner = "node:node" if node else "bot:bot"
        assert f"mkdir /data && chown {owner} /data" in dockerfile_text
    else:
        assert "volumes" not in bot

    # Nothing published beyond loopback: local services stay local.
    for service in services.values():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), port


def default_test_url(tree, variable: str, node: bool) -> str:
    """The URL the bot's own tests use when ``variable`` is unset, read from their code."""
    if node:
        text = (tree / "tests" / "services.ts").read_text(encoding="utf-8")
        pattern = rf'process\.env\.{variable} \?\?\s+"([^"]+)"'
    else:
        text = (tree / "tests" / "conftest.py").read_text(encoding="utf-8")
        pattern = (
            r'^DEFAULT_TEST_DATABASE_URL = "([^"]+)"'
            if variable == "TEST_DATABASE_URL"
            else r'os\.environ\.get\("TEST_REDIS_URL", "([^"]+)"\)'
        )
    found = re.findall(pattern, text, re.M)
    assert len(found) == 1, f"{variable}'s default: {found}"
    return found[0]


def test_compose_matches_the_local_env_example(rendered_matrix):
    """What .env.example sets for host runs points at the ports compose publishes."""
    for combo in COMBOS:
        a = combo.answers
        if a["builder"] != "dockerfile" or a["railway_config"] != "iac":
            continue
        tree = rendered_matrix.tree(combo)
        services = load(tree)["services"]
        values = dict(
            line.split("=", 1)
            for line in (tree / ".env.example").read_text(encoding="utf-8").splitlines()
            if re.match(r"^[A-Z_]+=", line)
        )
        if a["database"] == "postgres":
            url = urlsplit(values["DATABASE_URL"])
            assert f"127.0.0.1:{url.port}:5432" in services["postgres"]["ports"]
            pg = services["postgres"]["environment"]
            assert (url.username, url.password, url.path) == (
                pg["POSTGRES_USER"],
                pg["POSTGRES_PASSWORD"],
                "/" + pg["POSTGRES_DB"],
            )
        if a["redis"]:
            url = urlsplit(values["REDIS_URL"])
            assert f"127.0.0.1:{url.port}:6379" in services["redis"]["ports"]
