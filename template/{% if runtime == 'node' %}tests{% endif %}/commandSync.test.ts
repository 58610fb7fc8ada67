/** Slash commands are pushed to Discord only when they changed, or when asked. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { same, sameCommands } from "../src/commandSync.ts";
import { loadCommands } from "../src/commands/index.ts";
import { BotProcess } from "./botProcess.ts";
import { APPLICATION_ID, FakeDiscord } from "./fakeDiscord.ts";

const TOKEN = "test-token";
const GLOBAL = `/api/v10/applications/${APPLICATION_ID}/commands`;

async function startOnce(discord: FakeDiscord, extra: Record<string, string> = {}): Promise<void> {
  await using bot = await BotProcess.start({
    DISCORD_TOKEN: `${TOKEN}.bot`,
    ...discord.apiSettings,
    ...extra,
  });
  await bot.waitUntilReady();
  bot.child.kill("SIGTERM");
  assert.equal(await bot.exit(), 0);
}

describe("sameCommands", () => {
  const local = {
    name: "ping",
    description: "Ping.",
    options: [{ name: "n", description: "N", type: 4 }],
  };
  test("Discord's own fields and its defaults do not count as a change", () => {
    const remote = {
      ...local,
      id: "1",
      application_id: "2",
      version: "3",
      type: 1,
      nsfw: false,
      contexts: [0, 1, 2],
      options: [{ name: "n", description: "N", type: 4, required: false }],
    };
    assert.ok(sameCommands([local], [remote]));
    assert.ok(same({ name_localizations: {} }, {}));
  });

  test("a changed description, option or a missing command is a change", () => {
    assert.ok(!sameCommands([local], [{ ...local, description: "Other." }]));
    assert.ok(!sameCommands([local], [{ ...local, options: [] }]));
    assert.ok(!sameCommands([local, { name: "help", description: "H" }], [local]));
    assert.ok(!sameCommands([{ ...local, contexts: [0] }], [{ ...local, contexts: [0, 1, 2] }]));
  });
});

describe("command sync at start", () => {
  test("the first start syncs, the next one does not, a changed list syncs again", async () => {
    await using discord = await FakeDiscord.started(TOKEN);
    await startOnce(discord);
    assert.deepEqual(
      discord.recorded.commandSyncs.map((sync) => sync.path),
      [GLOBAL],
    );
    assert.deepEqual(
      discord.recorded.commandSyncs[0]?.payload.map((c) => c.name),
      (await loadCommands()).map((command) => command.data.name),
    );
    await startOnce(discord);
    assert.equal(discord.recorded.commandSyncs.length, 1);
    // Someone changed the commands elsewhere (another version of the bot).
    discord.commands.set(GLOBAL, []);
    await startOnce(discord);
    assert.equal(discord.recorded.commandSyncs.length, 2);
  });

  test("when Discord cannot list its commands the bot syncs to be sure", async () => {
    await using discord = await FakeDiscord.started(TOKEN);
    await startOnce(discord);
    discord.commandFetchStatus = 500;
    await startOnce(discord);
    assert.equal(discord.recorded.commandSyncs.length, 2);
  });

  test("DEV_GUILD_ID syncs to that server only", async () => {
    await using discord = await FakeDiscord.started(TOKEN);
    await startOnce(discord, { DEV_GUILD_ID: "5000000000000000001" });
    assert.deepEqual(
      discord.recorded.commandSyncs.map((sync) => sync.path),
      [`/api/v10/applications/${APPLICATION_ID}/guilds/5000000000000000001/commands`],
    );
  });

  test("sync-commands pushes them regardless, without the gateway", async () => {
    await using discord = await FakeDiscord.started(TOKEN);
    await startOnce(discord);
    for (const args of [["sync-commands"], ["sync-commands", "--guild", "6000000000000000001"]]) {
      await using bot = await BotProcess.start(
        { DISCORD_TOKEN: `${TOKEN}.cli`, ...discord.apiSettings },
        args,
      );
      assert.equal(await bot.exit(), 0, bot.output);
    }
    assert.deepEqual(discord.recorded.commandSyncs.map((sync) => sync.path).slice(1), [
      GLOBAL,
      `/api/v10/applications/${APPLICATION_ID}/guilds/6000000000000000001/commands`,
    ]);
    assert.equal(discord.recorded.identifies.length, 1); // only the bot's own start
  });
});
