"""What a user sees, and what the log records, when a slash command fails."""

from __future__ import annotations

import logging
from typing import Any

import discord
from discord import app_commands

log = logging.getLogger(__name__)


def interaction_context(interaction: discord.Interaction[Any]) -> dict[str, Any]:
    """The ``extra=`` fields that tie a log line to one command invocation."""
    command = interaction.command
    return {
        "command": command.qualified_name if command is not None else None,
        "guild_id": interaction.guild_id,
        "user_id": interaction.user.id,
        "interaction_id": interaction.id,
    }


def user_message(error: app_commands.AppCommandError) -> str:
    """A short answer for the user; details stay in the log."""
    if isinstance(error, app_commands.CommandOnCooldown):
        return f"Slow down: try again in {error.retry_after:.0f} s."
    if isinstance(error, app_commands.MissingPermissions | app_commands.BotMissingPermissions):
        return "Missing permissions: " + ", ".join(error.missing_permissions) + "."
    if isinstance(error, app_commands.NoPrivateMessage):
        return "This command works only in a server."
    if isinstance(error, app_commands.CheckFailure):
        return "You cannot use this command here."
    return "Something went wrong on our side. It has been logged; please try again later."


async def on_app_command_error(
    interaction: discord.Interaction[Any], error: app_commands.AppCommandError
) -> None:
    """The command tree's error handler: answer privately, then log."""
    context = interaction_context(interaction)
    if isinstance(error, app_commands.CheckFailure):
        # Expected refusals (cooldowns, permissions): not a bug.
        log.info("Command refused: %s", type(error).__name__, extra=context)
    else:
        original = getattr(error, "original", error)
        log.error("Command failed", exc_info=original, extra=context)
    message = user_message(error)
    try:
        if interaction.response.is_done():
            await interaction.followup.send(message, ephemeral=True)
        else:
            await interaction.response.send_message(message, ephemeral=True)
    except discord.HTTPException:
        # The interaction expired or Discord is down; the log has the story.
        log.warning("Could not tell the user about the error", extra=context)
