"""scripts/alert.sh, run for real with bash, jq and curl against a local webhook.

The generated workflows call it when a deploy, a backup or a template update
fails (test_workflows.py checks that they do). Here it posts to an HTTP
server on 127.0.0.1 that stands in for Discord and records what arrived:
the JSON must be exactly the message, with mentions disabled, and nothing
secret may reach the message, the output or another process's command line.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
[SCRIPT] = (ROOT / "template" / "scripts").glob("*alert.sh*")
#: The webhook's token sits in its URL, as in Discord's.
WEBHOOK_TOKEN = "hook-token-3b9f0e7d"
#: Secrets that may be in a job's environment; none may reach Discord.
CANARY = "canary-secret-41aa"

GITHUB = {
    "GITHUB_REPOSITORY": "octocat/pingu-bot",
    "GITHUB_WORKFLOW": "Deploy",
    "GITHUB_SHA": "0123456789abcdef0123456789abcdef01234567",
    "GITHUB_SERVER_URL": "https://github.com",
    "GITHUB_RUN_ID": "987654321",
    "GITHUB_RUN_ATTEMPT": "2",
}


@dataclass
class Webhook:
    """What the fake Discord received, and what it answers."""

    status: int = 204
    requests: list[dict[str, Any]] = field(default_factory=list)
    #: Whether the webhook token was on any process's command line meanwhile.
    token_in_argv: list[bool] = field(default_factory=list)


def _token_in_any_argv() -> bool:
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if WEBHOOK_TOKEN.encode() in cmdline.read_bytes():
                return True
        except OSError:  # the process ended meanwhile
            continue
    return False


@pytest.fixture
def webhook() -> Iterator[tuple[Webhook, str]]:
    state = Webhook()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            # curl is still running: its command line is in /proc now.
            state.token_in_argv.append(_token_in_any_argv())
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.requests.append(
                {
                    "path": self.path,
                    "content_type": self.headers["Content-Type"],
                    "json": json.loads(body),
                }
            )
            self.send_response(state.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}/api/webhooks/1234567890/{WEBHOOK_TOKEN}"
    yield state, url
    server.shutdown()
    server.server_close()


def run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")}
    return subprocess.run(
        ["bash", str(SCRIPT)], env=base | env, capture_output=True, text=True, timeout=60
    )


def test_the_message_is_exactly_the_facts(webhook: tuple[Webhook, str]) -> None:
    state, url = webhook
    result = run(
        GITHUB
        | {
            "ALERT_DISCORD_WEBHOOK_URL": url,
            "ALERT_TITLE": "Deploy failed",
            "ALERT_ENVIRONMENT": "production",
            # Whatever else the job holds stays out of the message.
            "RAILWAY_TOKEN": CANARY,
            "DATABASE_PUBLIC_URL": f"postgresql://u:{CANARY}@host/db",
        }
    )
    assert result.returncode == 0, result.stderr
    [request] = state.requests
    assert request["path"] == f"/api/webhooks/1234567890/{WEBHOOK_TOKEN}"
    assert request["content_type"] == "application/json"
    assert request["json"] == {
        "content": "**Deploy failed**\n"
        "Repository: octocat/pingu-bot\n"
        "Workflow: Deploy\n"
        "Environment: production\n"
        "Commit: 0123456\n"
        "Run: https://github.com/octocat/pingu-bot/actions/runs/987654321/attempts/2",
        "allowed_mentions": {"parse": []},
    }
    assert CANARY not in json.dumps(request["json"])
    assert WEBHOOK_TOKEN not in result.stdout + result.stderr
    assert state.token_in_argv == [False]


def test_no_environment_line_without_an_environment(webhook: tuple[Webhook, str]) -> None:
    state, url = webhook
    env = GITHUB | {"ALERT_DISCORD_WEBHOOK_URL": url, "ALERT_TITLE": "Template update failed"}
    del env["GITHUB_RUN_ATTEMPT"]
    assert run(env).returncode == 0
    content = state.requests[0]["json"]["content"]
    assert "Environment" not in content
    assert content.endswith("Run: https://github.com/octocat/pingu-bot/actions/runs/987654321")


def test_a_hostile_title_stays_inside_its_string(webhook: tuple[Webhook, str]) -> None:
    state, url = webhook
    title = 'Deploy "failed"\\ @everyone <@&1> $(id) `x`'
    result = run(GITHUB | {"ALERT_DISCORD_WEBHOOK_URL": url, "ALERT_TITLE": title})
    assert result.returncode == 0, result.stderr
    message = state.requests[0]["json"]
    assert message["content"].startswith(f"**{title}**\n")
    assert message["allowed_mentions"] == {"parse": []}


def test_skips_quietly_without_the_secret(webhook: tuple[Webhook, str]) -> None:
    state, _ = webhook
    result = run(GITHUB | {"ALERT_DISCORD_WEBHOOK_URL": "", "ALERT_TITLE": "Backup failed"})
    assert result.returncode == 0
    assert "ALERT_DISCORD_WEBHOOK_URL is not set: no alert sent." in result.stdout
    assert state.requests == []


def test_a_refused_alert_fails_without_showing_the_token(webhook: tuple[Webhook, str]) -> None:
    state, url = webhook
    state.status = 404  # the webhook was deleted in Discord
    result = run(GITHUB | {"ALERT_DISCORD_WEBHOOK_URL": url, "ALERT_TITLE": "Deploy failed"})
    assert result.returncode == 1
    assert "::error::Discord did not accept the alert" in result.stdout
    assert WEBHOOK_TOKEN not in result.stdout + result.stderr
    assert len(state.requests) == 1  # a 404 is not retried


@pytest.mark.parametrize("value", ["discord.com/api/webhooks/1/x", "ftp://host/x", " https://x"])
def test_a_malformed_secret_is_named(webhook: tuple[Webhook, str], value: str) -> None:
    state, _ = webhook
    result = run(GITHUB | {"ALERT_DISCORD_WEBHOOK_URL": value, "ALERT_TITLE": "Deploy failed"})
    assert result.returncode == 2
    assert "ALERT_DISCORD_WEBHOOK_URL is not a URL" in result.stdout
    assert value.strip() not in result.stdout + result.stderr
    assert state.requests == []
