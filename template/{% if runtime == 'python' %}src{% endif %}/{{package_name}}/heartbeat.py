"""A heartbeat for a push monitor: "the bot is up and connected to Discord".

Push monitors (Healthchecks.io, UptimeRobot heartbeats, Better Stack,
Cronitor) give each check a URL and alert when it stops being requested.
The active bot requests HEARTBEAT_URL every HEARTBEAT_INTERVAL_SECONDS, but
only while its gateway session is open and its redeploy lease valid: a
standby, a bot stuck reconnecting and a stopped bot all stay silent, and
silence is what raises the alert. Nothing depends on the monitor: a failed
ping is logged and the next one is tried on time.

The URL embeds the check's token (whoever knows it can fake pings, or
silence them), so no log line ever shows more than its scheme and host.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import aiohttp

log = logging.getLogger(__name__)


def redact(url: str) -> str:
    """The URL with its path, query and credentials removed, safe to log."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}"


async def ping(session: aiohttp.ClientSession, url: str) -> bool:
    """One GET of ``url``; True when the monitor answered 2xx. Never raises."""
    try:
        async with session.get(url) as response:
            await response.read()
            if response.status < 300:
                return True
            log.warning("Heartbeat to %s answered HTTP %d", redact(url), response.status)
    except (aiohttp.ClientError, TimeoutError, OSError) as error:
        # The exception's text may quote the URL: only its type is logged.
        log.warning("Heartbeat to %s failed: %s", redact(url), type(error).__name__)
    return False


async def run(url: str, *, interval: float, alive: Callable[[], bool]) -> None:
    """Ping ``url`` every ``interval`` seconds while ``alive()``; runs until cancelled."""
    log.info("Sending a heartbeat to %s every %g s while connected", redact(url), interval)
    # Never longer than one interval: a slow monitor must not delay the next ping.
    timeout = aiohttp.ClientTimeout(total=min(10.0, interval))
    async with aiohttp.ClientSession(timeout=timeout) as session:
        next_at = time.monotonic()
        while True:
            if alive():
                await ping(session, url)
                next_at += interval
            else:
                # Not connected: check often, so the first ping after a
                # reconnect is not a whole interval late.
                next_at = time.monotonic() + min(1.0, interval)
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            # After a long pause (a suspended host), do not send a burst.
            next_at = max(next_at, time.monotonic())
