"""The generated CI's dependency audit fails on a known vulnerability, and can accept one.

ci.yml runs `uv audit --locked`, which sends every locked package to the OSV
database. OSV cannot be reached from here, so a local server speaks its API
(`POST /v1/querybatch`, `GET /v1/vulns/<id>`) and reports one advisory for
aiohttp, a dependency of every bot; the real uv is pointed at it with
`--service-url`.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from test_generated_python import _environment, refresh_locks

import matrix

ADVISORY = "GHSA-crb0-test-0001"
VULNERABLE = "aiohttp"


class FakeOSV(BaseHTTPRequestHandler):
    """OSV's batch query and advisory endpoints; ``vulnerable`` is the package to flag."""

    vulnerable: str | None = VULNERABLE
    queried: list[str] = []  # noqa: RUF012 (shared by the server's handler instances)

    def _send(self, payload: object) -> None:
        body = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        queries = json.loads(self.rfile.read(int(self.headers["content-length"])))["queries"]
        names = [query["package"]["name"] for query in queries]
        type(self).queried.extend(names)
        hit = {"vulns": [{"id": ADVISORY, "modified": "2026-11-01T00:00:00Z"}]}
        self._send({"results": [hit if name == self.vulnerable else {} for name in names]})

    def do_GET(self) -> None:
        self._send(
            {
                "id": ADVISORY,
                "summary": "A test advisory",
                "modified": "2026-11-01T00:00:00Z",
                "affected": [
                    {
                        "package": {"name": VULNERABLE, "ecosystem": "PyPI"},
                        "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}],
                    }
                ],
            }
        )

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def osv() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeOSV)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def bot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return matrix.render({"redis": True}, tmp_path_factory.mktemp("audit") / "bot")


def audit(bot: Path, osv: str, *extra: str) -> subprocess.CompletedProcess[str]:
    env = _environment({"python_version": "3.13", "database": "postgres"})
    return subprocess.run(
        [refresh_locks.uv_binary(), "audit", "--locked", "--service-url", osv, *extra],
        cwd=bot,
        env={**env, "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_a_known_vulnerability_fails_the_audit(bot: Path, osv: str) -> None:
    FakeOSV.queried = []
    result = audit(bot, osv)
    assert result.returncode == 1, result.stdout + result.stderr
    assert ADVISORY in result.stdout and VULNERABLE in result.stdout
    # Runtime and dev dependencies alike, straight from the lock.
    assert {VULNERABLE, "redis", "ruff", "mypy"} <= set(FakeOSV.queried)


def test_an_accepted_vulnerability_passes(bot: Path, osv: str) -> None:
    result = audit(bot, osv, "--ignore", ADVISORY)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_clean_lock_passes(bot: Path, osv: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(FakeOSV, "vulnerable", None)
    result = audit(bot, osv)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no known vulnerabilities" in (result.stdout + result.stderr).lower()
