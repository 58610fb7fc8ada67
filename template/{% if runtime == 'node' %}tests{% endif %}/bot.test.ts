/**
 * The bot as a process against a fake Discord: it logs in, answers each
 * interaction once, reports its state on /health and /ready, and stops on
 * SIGTERM within the promised bound, whatever state the gateway is in.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { SHUTDOWN_BUDGET_MS } from "../src/lifecycle.ts";
import { BotProcess, waitFor } from "./botProcess.ts";
import { FakeDiscord } from "./fakeDiscord.ts";

const TOKEN = "test-token";

function settings(
  discord: FakeDiscord,
  extra: Record<string, string> = {},
): Record<string, string> {
  return { DISCORD_TOKEN: `${TOKEN}.bot`, DISCORD_API_URL: discord.url, ...extra };
}

/** Send SIGTERM; the exit status and how long the exit took (ms). */
async function terminate(bot: BotProcess): Promise<[number | null, number]> {
  const started = performance.now();
  bot.child.kill("SIGTERM");
  const status = await bot.exit();
  return [status, performance.now() - started];
}

describe("the bot against a fake Discord", () => {
  test("logs in, answers one interaction once, and leaves on SIGTERM", async () => {
    await using discord = await FakeDiscord.started(TOKEN);
    await using bot = await BotProcess.start(settings(discord));
    await bot.waitUntilReady();
    const health = await bot.health();
    assert.equal(health?.status, 200);
    assert.equal(health.body.role, "active");
    assert.deepEqual(
      { ...(health.body.gateway as object), latency_ms: null },
      { state: "connected", latency_ms: null, guilds: 0, outage_seconds: 0 },
    );

    const id = await discord.sendInteraction("help");
    assert.ok(await discord.waitUntil((recorded) => recorded.answers.has(id)));
    await bot.waitForLog("Connected to Discord as");
    const [status, elapsed] = await terminate(bot);
    assert.equal(status, 0);
    assert.ok(elapsed < SHUTDOWN_BUDGET_MS, `stopped in ${String(elapsed)} ms`);
    assert.deepEqual(discord.recorded.answers.get(id), ["bot"]);
    assert.equal(discord.recorded.openSessions, 0);
    assert.ok(bot.logs.some((record) => record.message === "Received SIGTERM, shutting down"));
  });

  test("a second SIGTERM while stopping changes nothing", async () => {
    await using discord = await FakeDiscord.started(TOKEN);
    await using bot = await BotProcess.start(settings(discord));
    await bot.waitUntilReady();
    bot.child.kill("SIGTERM");
    bot.child.kill("SIGTERM");
    assert.equal(await bot.exit(SHUTDOWN_BUDGET_MS), 0);
  });

  test("stops within the bound while the gateway refuses every reconnect", async () => {
    // discord.js keeps retrying a refused gateway, and destroy() alone does
    // not end that loop: the process must still leave on time.
    await using discord = await FakeDiscord.started(TOKEN);
    await using bot = await BotProcess.start(settings(discord));
    await bot.waitUntilReady();
    discord.refuseGateway = true;
    await discord.closeSessions();
    assert.ok(await waitFor(async () => (await bot.get("/ready"))?.status === 503));
    const [status, elapsed] = await terminate(bot);
    assert.equal(status, 0);
    assert.ok(elapsed < SHUTDOWN_BUDGET_MS, `stopped in ${String(elapsed)} ms`);
  });

  test("a gateway outage longer than the limit turns /health 503, and it heals", async () => {
    await using discord = await FakeDiscord.started(TOKEN);
    await using bot = await BotProcess.start(
      settings(discord, { GATEWAY_OUTAGE_LIMIT_SECONDS: "1" }),
    );
    await bot.waitUntilReady();
    discord.refuseGateway = true;
    await discord.closeSessions();
    assert.ok(await waitFor(async () => (await bot.health())?.status === 503));
    const down = await bot.health();
    assert.equal(down?.body.status, "unavailable");
    assert.ok((down.body.gateway as { outage_seconds: number }).outage_seconds >= 1);
    discord.refuseGateway = false;
    await bot.waitUntilReady();
    assert.equal((await bot.health())?.status, 200);
    const id = await discord.sendInteraction("help");
    assert.ok(await discord.waitUntil((recorded) => recorded.answers.has(id)));
  });

  test("a token Discord rejects stops the bot with exit 78 and says what to do", async () => {
    await using discord = await FakeDiscord.started(TOKEN);
    await using bot = await BotProcess.start(settings(discord, { DISCORD_TOKEN: "wrong-token" }));
    assert.equal(await bot.exit(), 78);
    assert.match(bot.output, /Discord rejected DISCORD_TOKEN\. Reset the token/);
    assert.ok(!bot.output.includes("wrong-token"));
  });

  test("a privileged intent Discord refuses stops the bot with exit 78", async () => {
    await using discord = await FakeDiscord.started(TOKEN, { closeCode: 4014 });
    await using bot = await BotProcess.start(settings(discord));
    assert.equal(await bot.exit(), 78);
    assert.match(bot.output, /privileged intent/);
  });

  test("a configuration problem stops the bot before anything starts, exit 78", async () => {
    await using bot = await BotProcess.start({ PORT: "none" });
    assert.equal(await bot.exit(), 78);
    assert.match(bot.output, /^Configuration error: 2 problems/m);
    assert.match(bot.output, /DISCORD_TOKEN is not set/);
    assert.equal(bot.logs.length, 0);
  });
});
