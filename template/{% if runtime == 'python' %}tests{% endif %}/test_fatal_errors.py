"""Errors a restart cannot fix stop the bot with exit 78 and say what to change.

Discord ends a gateway session with a close code. After some of them it will
not take the session back (its documentation marks them "Reconnect: false"):
the bot must then stop, not stay up unconnected, with the exit status the
runbook gives. After every other code the bot reconnects.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import pytest

from bot_process import BotProcess
from fake_discord import FakeDiscord, Recorded

EXIT_CONFIG = 78

#: Each close code after which Discord does not take the session back, and
#: the exit status it ends the bot with: 78 for what the owner must change in
#: the Developer Portal (a reset token, a privileged intent not enabled), 1
#: for the rest.
FATAL_CLOSES = {4004: EXIT_CONFIG, 4010: 1, 4011: 1, 4012: 1, 4013: 1, 4014: EXIT_CONFIG}
#: Every other code Discord closes a session with (1000 included, which it
#: sends too): the bot connects again.
RECOVERABLE_CLOSES = [1000, 4000, 4001, 4002, 4003, 4005, 4007, 4008, 4009]
#: What the single CRITICAL line says for each fatal close.
EXPLAINED = {
    4004: "Reset Token",
    4010: "4010",
    4011: "4011",
    4012: "4012",
    4013: "4013",
    4014: "Privileged Gateway Intents",
}


def test_rejected_token(
    bot_env: dict[str, str], spawn: Callable[..., BotProcess], fake_discord: FakeDiscord
) -> None:
    # The fake answers 401, as Discord does for a reset or mistyped token.
    bot = spawn(bot_env | {"DISCORD_TOKEN": "a-token-discord-does-not-know"})
    assert bot.wait(timeout=30) == EXIT_CONFIG, bot.output
    critical = [r["message"] for r in bot.log_records() if r["level"] == "CRITICAL"]
    assert len(critical) == 1
    assert "Discord rejected DISCORD_TOKEN" in critical[0]
    assert "Reset Token" in critical[0]
    assert "a-token-discord-does-not-know" not in bot.output
    assert not fake_discord.recorded.identifies


def test_missing_privileged_intent(
    bot_env: dict[str, str], spawn: Callable[..., BotProcess], fake_discord: FakeDiscord
) -> None:
    # 4014: the bot asked for an intent the Developer Portal has not enabled.
    fake_discord.close_code = 4014
    bot = spawn(bot_env)
    assert bot.wait(timeout=30) == EXIT_CONFIG, bot.output
    critical = [r["message"] for r in bot.log_records() if r["level"] == "CRITICAL"]
    assert len(critical) == 1
    assert "Privileged Gateway Intents" in critical[0]


@pytest.mark.parametrize(("code", "status"), FATAL_CLOSES.items())
def test_a_fatal_close_after_ready_stops_the_bot(
    code: int,
    status: int,
    bot_env: dict[str, str],
    spawn: Callable[..., BotProcess],
    fake_discord: FakeDiscord,
) -> None:
    # Discord closes a live session this way when the token is reset, when
    # the bot outgrows one connection (4011), when an intent is withdrawn...
    bot = spawn(bot_env)
    bot.wait_for("/ready")
    fake_discord.close_sessions(code)
    try:
        exit_status = bot.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running 30 s after close code {code}:\n{bot.output[-3000:]}")
    assert exit_status == status, bot.output
    critical = [r["message"] for r in bot.log_records() if r["level"] == "CRITICAL"]
    assert len(critical) == 1, critical
    assert EXPLAINED[code] in critical[0]
    # Nobody tried again: Discord would only refuse it.
    assert fake_discord.recorded.sessions_opened == 1


def test_every_other_close_is_followed_by_a_reconnect(
    bot_env: dict[str, str], spawn: Callable[..., BotProcess], fake_discord: FakeDiscord
) -> None:
    bot = spawn(bot_env)
    bot.wait_for("/ready")
    for code in RECOVERABLE_CLOSES:
        opened = fake_discord.recorded.sessions_opened

        def reconnected(recorded: Recorded, opened: int = opened) -> bool:
            return recorded.sessions_opened > opened and recorded.open_sessions == 1

        fake_discord.close_sessions(code)
        assert fake_discord.wait_until(reconnected), (
            f"no new session after close code {code}:\n{bot.output[-3000:]}"
        )
        bot.wait_for("/ready")
    assert bot.process.poll() is None
    assert not [r for r in bot.log_records() if r["level"] == "CRITICAL"]
