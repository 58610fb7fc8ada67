"""A real bot process, stopped the way Railway and a developer stop it."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

import pytest

from bot_process import BotProcess
from fake_discord import FakeDiscord

#: Railway's drainingSeconds for the bot is longer; the bot must beat this.
SHUTDOWN_BUDGET_SECONDS = 10


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_the_bot_cleanly(
    signum: signal.Signals,
    bot_env: dict[str, str],
    spawn: Callable[..., BotProcess],
    fake_discord: FakeDiscord,
) -> None:
    bot = spawn(bot_env)
    bot.wait_for("/ready")
    assert fake_discord.recorded.open_sessions == 1

    sent = time.monotonic()
    bot.signal(signum)
    status = bot.wait(timeout=SHUTDOWN_BUDGET_SECONDS)
    elapsed = time.monotonic() - sent

    assert status == 0, bot.output
    assert elapsed < SHUTDOWN_BUDGET_SECONDS
    # The gateway session was closed, not dropped by the process dying.
    assert fake_discord.wait_until(lambda seen: seen.open_sessions == 0, timeout=5)
    messages = [record["message"] for record in bot.log_records()]
    assert f"Received {signum.name}, shutting down" in messages
    assert "Traceback" not in bot.output


def test_signal_right_after_start_exits_cleanly(
    bot_env: dict[str, str], spawn: Callable[..., BotProcess], fake_discord: FakeDiscord
) -> None:
    bot = spawn(bot_env)
    bot.wait_for("/health")
    bot.signal(signal.SIGTERM)
    assert bot.wait(timeout=SHUTDOWN_BUDGET_SECONDS) == 0, bot.output
