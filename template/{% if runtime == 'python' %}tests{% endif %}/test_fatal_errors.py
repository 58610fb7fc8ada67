"""Errors a restart cannot fix stop the bot with exit 78 and say what to change."""

from __future__ import annotations

from collections.abc import Callable

from bot_process import BotProcess
from fake_discord import FakeDiscord

EXIT_CONFIG = 78


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
