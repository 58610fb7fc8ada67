/**
 * Run a slash command in a test and see what it answered: the real bot, as a
 * process, against the fake Discord of fakeDiscord.ts. For your own commands
 * as much as the template's:
 *
 *     import { runCommand } from "./commandTesting.ts";
 *
 *     test("/coin lands on a side", async () => {
 *       const reply = await runCommand("coin");
 *       assert.match(reply.content, /^(Heads|Tails)\.$/);
 *     });
 *
 * Each call starts a bot of its own (with the test services of services.ts,
 * if the bot has any) and stops it afterwards, so tests never meet.
 */
import { BotProcess } from "./botProcess.ts";
import { FakeDiscord, type InteractionOption, type JsonObject } from "./fakeDiscord.ts";

const TOKEN = "command-test-token";

/** The first answer to a command, as Discord received it. */
export interface Reply {
  /** The interaction callback's type: 4 a message, 5 a deferred one. */
  type: number;
  /** The message text ("" for none). */
  content: string;
  /** The message's embeds, as sent. */
  embeds: JsonObject[];
  /** Whether only the user who ran the command sees it. */
  ephemeral: boolean;
}

/**
 * Run `/name` with these options (`{ name, type, value }`, as in Discord's
 * interaction payload) and resolve to the bot's first answer. `settings` are
 * added to the bot's environment.
 */
export async function runCommand(
  name: string,
  options?: InteractionOption[],
  settings: Record<string, string> = {},
): Promise<Reply> {
  await using discord = await FakeDiscord.started(TOKEN);
  await using bot = await BotProcess.start({
    DISCORD_TOKEN: `${TOKEN}.bot`,
    ...discord.apiSettings,
    ...settings,
  });
  await bot.waitUntilReady();
  const id = await discord.sendInteraction(name, options);
  if (!(await discord.waitUntil((recorded) => recorded.callbacks.has(id)))) {
    throw new Error(`/${name} was not answered:\n${bot.output}`);
  }
  const [callback] = discord.recorded.callbacks.get(id) ?? [];
  const data = (callback?.data ?? {}) as JsonObject;
  return {
    type: typeof callback?.type === "number" ? callback.type : 0,
    content: typeof data.content === "string" ? data.content : "",
    embeds: Array.isArray(data.embeds) ? (data.embeds as JsonObject[]) : [],
    ephemeral: typeof data.flags === "number" && (data.flags & 64) !== 0,
  };
}
