/** /help: what the bot can do, read from the loaded commands so it is never stale. */
import { EmbedBuilder, MessageFlags, SlashCommandBuilder } from "discord.js";
import { BOT_NAME } from "../project.ts";
import type { SlashCommand } from "./types.ts";

/** One line per slash command, sorted by name. */
export function commandLines(commands: readonly SlashCommand[]): string[] {
  return commands.map((command) => `\`/${command.data.name}\`: ${command.data.description}`).sort();
}

const help: SlashCommand = {
  data: new SlashCommandBuilder()
    .setName("help")
    .setDescription("List the bot's commands.")
    .toJSON(),
  async execute(interaction, context) {
    const embed = new EmbedBuilder()
      .setTitle(`${BOT_NAME} commands`)
      .setDescription(commandLines(context.commands()).join("\n") || "No commands yet.");
    await interaction.reply({ embeds: [embed], flags: MessageFlags.Ephemeral });
  },
};

export default help;
