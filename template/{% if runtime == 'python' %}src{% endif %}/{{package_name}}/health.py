"""The HTTP health server on $PORT, run in the bot's own event loop.

Railway polls GET /health during a deploy and makes the new instance live
only once it answers 200, so /health answers from the first second, also
while the instance is a standby waiting for the redeploy lock: a standby is
healthy. GET /ready says whether this instance is connected to Discord right
now, read from the live gateway session. /health turns 503 when the active
instance has had no gateway session for longer than
GATEWAY_OUTAGE_LIMIT_SECONDS: a bot that cannot reach Discord is not healthy,
even if discord.py keeps trying.

Responses are built from live state only: no setting, URL or token ever
appears in them.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from .http_server import HttpServer

log = logging.getLogger(__name__)

#: A dependency check: True when the service answers.
Check = Callable[[], Awaitable[bool]]

#: A dependency that does not answer within this time counts as down.
CHECK_TIMEOUT_SECONDS = 2.0
#: How long one round of dependency checks answers for: every /health request
#: in the meantime shares it, so a flood of requests costs each dependency one
#: check a second, not one per request.
CHECK_CACHE_SECONDS = 1.0


class Gateway(Protocol):
    """What /health reads from the Discord client (bot.Bot is one)."""

    @property
    def latency(self) -> float: ...

    @property
    def guilds(self) -> Sequence[object]: ...

    #: Since when (time.monotonic()) no session has been ready; None while one is.
    disconnected_since: float | None

    def gateway_connected(self) -> bool: ...

    def is_closed(self) -> bool: ...


def rss_bytes() -> int:
    """Resident memory of this process, read without extra dependencies."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    # No /proc (macOS): the peak instead of the current value, in KiB on
    # Linux but bytes on macOS, which is the only place this branch runs.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


async def _run_check(check: Check) -> bool:
    try:
        return await asyncio.wait_for(check(), CHECK_TIMEOUT_SECONDS)
    except Exception:  # any failure means "down"; the reason is logged
        log.warning("Health check failed", exc_info=True)
        return False


class HealthServer:
    """Serves /health and /ready for one bot process.

    It starts before discord.py is even imported; ``gateway`` is set once the
    instance holds the redeploy lock and becomes the active bot.
    """

    def __init__(
        self,
        *,
        checks: Mapping[str, Check],
        version: str,
        gateway_outage_limit: float = 60.0,
    ) -> None:
        #: The Discord client, once this instance is active.
        self.gateway: Gateway | None = None
        self._gateway_outage_limit = gateway_outage_limit
        self._checks = dict(checks)
        #: The latest round of checks, and when it ended (None while it runs).
        self._round: asyncio.Task[dict[str, bool]] | None = None
        self._round_ended: float | None = None
        self._version = version
        self._started = time.monotonic()
        # No access log: Railway polls often, and the log is for the bot.
        self._http = HttpServer({"/health": self.report, "/ready": self.readiness})
        self.port: int | None = None

    def use_checks(self, checks: Mapping[str, Check]) -> None:
        """Check the dependencies this way from now on (the active bot's own clients)."""
        self._checks = dict(checks)
        self._round = None  # the next request checks with these at once

    async def start(self, host: str, port: int) -> None:
        await self._http.start(host, port)
        self.port = self._http.port
        log.info("Health server listening on port %d", self.port)

    async def stop(self) -> None:
        await self._http.stop()
        if self._round is not None:
            self._round.cancel()

    @staticmethod
    async def _check_round(checks: Mapping[str, Check]) -> dict[str, bool]:
        names = list(checks)
        results = await asyncio.gather(*(_run_check(checks[n]) for n in names))
        return dict(zip(names, results, strict=True))

    def _round_done(self, task: asyncio.Task[dict[str, bool]]) -> None:
        if task is self._round:
            self._round_ended = time.monotonic()

    async def check_dependencies(self) -> dict[str, bool]:
        """Each dependency's state, from a round of checks at most CHECK_CACHE_SECONDS old."""
        current = self._round
        fresh = current is not None and (
            not current.done()  # running: share it
            or (
                self._round_ended is not None
                and time.monotonic() - self._round_ended < CHECK_CACHE_SECONDS
            )
        )
        if current is None or not fresh:
            self._round_ended = None
            current = self._round = asyncio.create_task(self._check_round(self._checks))
            current.add_done_callback(self._round_done)
        # A request that goes away must not cancel the round the others wait on.
        return dict(await asyncio.shield(current))

    def gateway_state(self) -> str:
        gateway = self.gateway
        if gateway is None or gateway.is_closed():
            return "disconnected"
        return "connected" if gateway.gateway_connected() else "connecting"

    def gateway_outage_seconds(self) -> float:
        """How long the active instance has been without a ready gateway session."""
        gateway = self.gateway
        if gateway is None or gateway.gateway_connected():
            return 0.0
        since = gateway.disconnected_since
        return 0.0 if since is None else time.monotonic() - since

    async def report(self) -> tuple[int, dict[str, Any]]:
        """The /health status code and body."""
        results = await self.check_dependencies()
        services = {name: "ok" if ok else "down" for name, ok in results.items()}
        outage = self.gateway_outage_seconds()
        healthy = all(results.values()) and outage <= self._gateway_outage_limit
        state = self.gateway_state()
        latency = self.gateway.latency if self.gateway is not None else None
        body = {
            "status": "ok" if healthy else "unavailable",
            "role": "standby" if self.gateway is None else "active",
            "uptime_seconds": round(time.monotonic() - self._started, 3),
            "timestamp": datetime.now(UTC).isoformat(),
            "version": self._version,
            "gateway": {
                "state": state,
                # discord.py reports inf until the first heartbeat is answered.
                "latency_ms": round(latency * 1000, 1)
                if state == "connected" and latency is not None and latency != float("inf")
                else None,
                "guilds": len(self.gateway.guilds) if self.gateway is not None else 0,
                "outage_seconds": round(outage, 1),
            },
            **services,
            "rss_bytes": rss_bytes(),
        }
        # A standby is healthy: Railway must make it live so the old instance
        # is stopped and the lock handed over. Its gateway is "disconnected"
        # by design, and no outage.
        return (200 if healthy else 503), body

    async def readiness(self) -> tuple[int, dict[str, Any]]:
        """The /ready status code and body."""
        connected = self.gateway_state() == "connected"
        return (200 if connected else 503), {"ready": connected}
