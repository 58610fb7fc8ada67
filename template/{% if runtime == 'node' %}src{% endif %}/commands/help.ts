/** /help: what the bot can do, read from the loaded commands so it is never stale. */
import {
  ApplicationCommandOptionType,
  EmbedBuilder,
  MessageFlags,
  SlashCommandBuilder,
  type APIApplicationCommandOption,
} from "discord.js";
import { BOT_NAME } from "../project.ts";
import type { SlashCommand } from "./types.ts";

/** One line per slash command, sorted by name; each subcommand has its own ("/tag add"). */
export function commandLines(commands: readonly SlashCommand[]): string[] {
  return commands
    .flatMap((command) =>
      lines(`/${command.data.name}`, command.data.description, command.data.options),
    )
    .sort();
}

/** The line of a command, or of each subcommand beneath it. */
function lines(
  name: string,
  description: string,
  options: readonly APIApplicationCommandOption[] = [],
): string[] {
  const nested = options.filter(
    (option) =>
      option.type === ApplicationCommandOptionType.Subcommand ||
      option.type === ApplicationCommandOptionType.SubcommandGroup,
  );
  if (nested.length === 0) return [`\`${name}\`: ${description}`];
  return nested.flatMap((option) =>
    lines(`${name} ${option.name}`, option.description, "options" in option ? option.options : []),
  );
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
