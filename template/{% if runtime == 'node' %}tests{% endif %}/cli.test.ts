/** The command line: check, usage errors, and the heartbeat of a running bot. */
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { once } from "node:events";
import { describe, test } from "node:test";
import { BotProcess, waitFor } from "./botProcess.ts";
import { FakeDiscord } from "./fakeDiscord.ts";

describe("the command line", () => {
  test("check reports the settings and exits 0", async () => {
    await using bot = await BotProcess.start(
      { DISCORD_TOKEN: "x", RAILWAY_ENVIRONMENT_NAME: "staging" },
      ["check"],
    );
    assert.equal(await bot.exit(), 0);
    assert.match(bot.output, /^settings: ok \(environment staging, version \d+\.\d+\.\d+\)$/m);
  });

  test("check exits 1 on a configuration problem, the bot 78", async () => {
    await using checked = await BotProcess.start({}, ["check"]);
    assert.equal(await checked.exit(), 1);
    assert.match(checked.output, /DISCORD_TOKEN is not set/);
  });

  test("an unknown command or option is a usage error (64) with the usage", async () => {
    for (const args of [
      ["start"],
      ["run", "--guild", "1"],
      ["sync-commands", "--guild", "abc"],
      ["--verbose"],
    ]) {
      await using bot = await BotProcess.start({ DISCORD_TOKEN: "x" }, args);
      assert.equal(await bot.exit(), 64, args.join(" "));
      assert.match(bot.output, /^usage: /m);
    }
  });
});

describe("the heartbeat", () => {
  test("pings while connected, stays silent during an outage, and never logs the URL's secret", async () => {
    const pings: number[] = [];
    const monitor = createServer((request, response) => {
      pings.push(performance.now());
      response.end("OK");
    });
    monitor.listen(0, "127.0.0.1");
    await once(monitor, "listening");
    const port = (monitor.address() as { port: number }).port;
    try {
      await using discord = await FakeDiscord.started("token");
      await using bot = await BotProcess.start({
        DISCORD_TOKEN: "token.bot",
        DISCORD_API_URL: discord.url,
        HEARTBEAT_URL: `http://127.0.0.1:${String(port)}/ping/secret-check-uuid`,
        HEARTBEAT_INTERVAL_SECONDS: "1",
      });
      await bot.waitUntilReady();
      assert.ok(await waitFor(() => pings.length >= 2));
      discord.refuseGateway = true;
      await discord.closeSessions();
      assert.ok(await waitFor(async () => (await bot.get("/ready"))?.status === 503));
      const during = pings.length;
      await new Promise((resolve) => setTimeout(resolve, 2500));
      assert.ok(
        pings.length <= during + 1,
        `${String(pings.length - during)} pings during the outage`,
      );
      discord.refuseGateway = false;
      await bot.waitUntilReady();
      const after = pings.length;
      assert.ok(await waitFor(() => pings.length > after));
      assert.ok(!bot.output.includes("secret-check-uuid"));
      assert.match(bot.output, /Sending a heartbeat to http:\/\/127\.0\.0\.1 every 1 s/);
    } finally {
      monitor.close();
      monitor.closeAllConnections();
    }
  });
});
