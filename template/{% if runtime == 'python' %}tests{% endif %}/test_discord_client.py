"""The client's defaults, seen by the fake Discord: intents, mentions, cooldowns."""

from __future__ import annotations

from collections.abc import Callable

from bot_process import BotProcess
from fake_discord import FakeDiscord

#: Discord's GUILDS intent (1 << 0): the guild list /health counts. Slash
#: commands arrive without any intent.
GUILDS = 1


def _started(
    bot_env: dict[str, str], spawn: Callable[..., BotProcess], fake_discord: FakeDiscord
) -> BotProcess:
    bot = spawn(bot_env)
    bot.wait_for("/ready")
    assert fake_discord.wait_until(lambda r: bool(r.identifies))
    return bot


def test_the_client_asks_only_for_the_guilds_intent(
    bot_env: dict[str, str], spawn: Callable[..., BotProcess], fake_discord: FakeDiscord
) -> None:
    _started(bot_env, spawn, fake_discord)
    assert [identify["intents"] for identify in fake_discord.recorded.identifies] == [GUILDS]


def test_replies_can_mention_no_one(
    bot_env: dict[str, str], spawn: Callable[..., BotProcess], fake_discord: FakeDiscord
) -> None:
    _started(bot_env, spawn, fake_discord)
    sent = fake_discord.send_interaction("help")
    assert fake_discord.wait_until(lambda r: sent in r.callbacks)
    [callback] = fake_discord.recorded.callbacks[sent]
    # An empty parse list: no @everyone, role or user ping, whatever the text says.
    assert callback["data"]["allowed_mentions"] == {"parse": []}


def test_every_command_has_a_per_user_cooldown(
    bot_env: dict[str, str], spawn: Callable[..., BotProcess], fake_discord: FakeDiscord
) -> None:
    _started(bot_env, spawn, fake_discord)
    first = fake_discord.send_interaction("help")
    assert fake_discord.wait_until(lambda r: first in r.callbacks)
    second = fake_discord.send_interaction("help")
    assert fake_discord.wait_until(lambda r: second in r.callbacks)
    assert "embeds" in fake_discord.recorded.callbacks[first][0]["data"]
    refused = fake_discord.recorded.callbacks[second][0]["data"]
    assert refused["content"].startswith("Slow down"), refused
    assert refused["flags"] == 64  # ephemeral: only the user sees it


def test_an_unknown_command_is_answered_privately_and_logged_once(
    bot_env: dict[str, str], spawn: Callable[..., BotProcess], fake_discord: FakeDiscord
) -> None:
    # Discord still offers a command this bot no longer has (its copy is stale).
    bot = _started(bot_env, spawn, fake_discord)
    sent = fake_discord.send_interaction("retired")
    assert fake_discord.wait_until(lambda r: sent in r.callbacks)
    [callback] = fake_discord.recorded.callbacks[sent]
    assert callback["data"]["content"].startswith("This command is not available any more.")
    assert callback["data"]["flags"] == 64  # ephemeral: only the user sees it
    assert len(fake_discord.recorded.answers[sent]) == 1  # answered once
    unknown = [r for r in bot.log_records() if r["message"].startswith("Unknown command")]
    assert [(r["level"], r["command"]) for r in unknown] == [("WARNING", "retired")]
    assert not [r for r in bot.log_records() if r["level"] == "ERROR"]
