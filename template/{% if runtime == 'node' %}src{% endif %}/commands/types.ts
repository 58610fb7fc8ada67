/** What a command module exports, and what its code gets to work with. */
import type {
  ChatInputCommandInteraction,
  RESTPostAPIChatInputApplicationCommandsJSONBody,
} from "discord.js";
import type { Settings } from "../config.ts";

/** The bot's shared state a command may use. */
export interface CommandContext {
  readonly settings: Settings;
  /** Round trip of the last gateway heartbeat in ms; -1 before the first one. */
  gatewayPing(): number;
  /** Every loaded command, for /help. */
  commands(): readonly SlashCommand[];
}

/**
 * One slash command. A file in src/commands/ whose default export is one of
 * these is loaded at start: adding a command is adding a file.
 */
export interface SlashCommand {
  /** The command as Discord registers it (SlashCommandBuilder#toJSON()). */
  readonly data: RESTPostAPIChatInputApplicationCommandsJSONBody;
  execute(interaction: ChatInputCommandInteraction, context: CommandContext): Promise<void>;
}
