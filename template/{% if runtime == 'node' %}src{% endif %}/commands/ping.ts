/** /ping: does the bot answer, and how fast. */
import { MessageFlags, SlashCommandBuilder } from "discord.js";
import type { SlashCommand } from "./types.ts";

/** Milliseconds for humans; discord.js reports -1 before the first heartbeat. */
export function formatMs(milliseconds: number): string {
  return Number.isFinite(milliseconds) && milliseconds >= 0
    ? `${milliseconds.toFixed(0)} ms`
    : "n/a";
}

const ping: SlashCommand = {
  data: new SlashCommandBuilder()
    .setName("ping")
    .setDescription("Check that the bot answers, and how fast.")
    .toJSON(),
  async execute(interaction, context) {
    const gateway = formatMs(context.gatewayPing());
    const started = performance.now();
    await interaction.reply({
      content: `Pong! Gateway ${gateway}.`,
      flags: MessageFlags.Ephemeral,
    });
    // The time Discord took to accept our reply, seen from the bot.
    const roundTrip = formatMs(performance.now() - started);
    await interaction.editReply(`Pong! Gateway ${gateway}, round trip ${roundTrip}.`);
  },
};

export default ping;
