/** What a user sees, and what the log records, when a slash command fails. */
import { MessageFlags, type ChatInputCommandInteraction } from "discord.js";
import { getLogger, type Context } from "./logging.ts";

const log = getLogger("errors");

/**
 * An expected refusal (wrong place, not allowed, too soon): the user reads
 * its message, and the log records it as information, not as a bug.
 */
export class CommandRefusal extends Error {
  override name = "CommandRefusal";
}

/** The context fields that tie a log line to one command invocation. */
export function interactionContext(interaction: ChatInputCommandInteraction): Context {
  return {
    command: interaction.commandName,
    guild_id: interaction.guildId,
    user_id: interaction.user.id,
    interaction_id: interaction.id,
  };
}

/** A short answer for the user; details stay in the log. */
export function userMessage(error: unknown): string {
  if (error instanceof CommandRefusal) return error.message;
  return "Something went wrong on our side. It has been logged; please try again later.";
}

/** Answer privately, then log: the command's error handler. */
export async function onCommandError(
  interaction: ChatInputCommandInteraction,
  error: unknown,
): Promise<void> {
  const context = interactionContext(interaction);
  if (error instanceof CommandRefusal) {
    log.info(`Command refused: ${error.message}`, context);
  } else {
    log.error("Command failed", { ...context, exception: error });
  }
  const content = userMessage(error);
  try {
    if (interaction.replied || interaction.deferred) {
      await interaction.followUp({ content, flags: MessageFlags.Ephemeral });
    } else {
      await interaction.reply({ content, flags: MessageFlags.Ephemeral });
    }
  } catch {
    // The interaction expired or Discord is down; the log has the story.
    log.warning("Could not tell the user about the error", context);
  }
}
