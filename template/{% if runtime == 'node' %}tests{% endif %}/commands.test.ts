/** Commands are found by file, checked at load, and answer through a fake Discord. */
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { describe, test } from "node:test";
import { loadCommands } from "../src/commands/index.ts";
import { commandLines } from "../src/commands/help.ts";
import { formatMs } from "../src/commands/ping.ts";
import { BotProcess } from "./botProcess.ts";
import { FakeDiscord } from "./fakeDiscord.ts";

const TOKEN = "test-token";

function folderWith(files: Record<string, string>): URL {
  const folder = mkdtempSync(join(tmpdir(), "bot-commands-"));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(folder, name), text);
  return pathToFileURL(`${folder}/`);
}

const COMMAND = (name: string) =>
  `export default { data: { name: "${name}", description: "d" }, execute: async () => {} };\n`;

describe("commands", () => {
  test("every file of src/commands is a command, in name order", async () => {
    const names = (await loadCommands()).map((command) => command.data.name);
    assert.deepEqual(names, ["help", "ping"]);
  });

  test("an owner's new file is a command; helpers named _* are skipped", async () => {
    const folder = folderWith({
      "zeta.js": COMMAND("zeta"),
      "alpha.js": COMMAND("alpha"),
      "_shared.js": "export const x = 1;\n",
    });
    assert.deepEqual(
      (await loadCommands(folder)).map((c) => c.data.name),
      ["alpha", "zeta"],
    );
  });

  test("a file that exports no command is named with the fix", async () => {
    const folder = folderWith({ "broken.js": "export const command = {};\n" });
    await assert.rejects(
      loadCommands(folder),
      /src\/commands\/broken\.js does not export a command: end it with "export default command;"/,
    );
  });

  test("two commands with one name are refused", async () => {
    const folder = folderWith({ "a.js": COMMAND("same"), "b.js": COMMAND("same") });
    await assert.rejects(loadCommands(folder), /a second command named "same"/);
  });

  test("/help lists each command with its description", async () => {
    const lines = commandLines(await loadCommands());
    assert.deepEqual(lines, [
      "`/help`: List the bot's commands.",
      "`/ping`: Check that the bot answers, and how fast.",
    ]);
  });

  test("milliseconds for humans, n/a before the first heartbeat", () => {
    assert.equal(formatMs(41.6), "42 ms");
    assert.equal(formatMs(-1), "n/a");
    assert.equal(formatMs(Number.NaN), "n/a");
  });

  test("/ping answers privately and then adds the round trip", async () => {
    await using discord = await FakeDiscord.started(TOKEN);
    await using bot = await BotProcess.start({
      DISCORD_TOKEN: `${TOKEN}.bot`,
      DISCORD_API_URL: discord.url,
    });
    await bot.waitUntilReady();
    const id = await discord.sendInteraction("ping");
    assert.ok(
      await discord.waitUntil((r) =>
        r.restCalls.some((call) => call.startsWith("PATCH /api/v10/webhooks/")),
      ),
    );
    assert.deepEqual(discord.recorded.answers.get(id), ["bot"]);
  });

  test("an unknown command is logged, not answered", async () => {
    await using discord = await FakeDiscord.started(TOKEN);
    await using bot = await BotProcess.start({
      DISCORD_TOKEN: `${TOKEN}.bot`,
      DISCORD_API_URL: discord.url,
    });
    await bot.waitUntilReady();
    const id = await discord.sendInteraction("retired");
    const record = await bot.waitForLog("Unknown command");
    assert.equal(record.command, "retired");
    assert.equal(discord.recorded.answers.get(id), undefined);
  });
});
