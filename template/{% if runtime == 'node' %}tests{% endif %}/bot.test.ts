/**
 * The bot as a process against a fake Discord: it logs in, answers each
 * interaction once, reports its state on /health and /ready, and stops on
 * SIGTERM within the promised bound, whatever state the gateway is in.
 *
 * Discord ends a gateway session with a close code. After some of them it
 * will not take the session back (its documentation marks them "Reconnect:
 * false"): the bot must then stop, not stay up unconnected, with the exit
 * status the runbook gives. After every other code it reconnects.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { GatewayCloseCodes } from "discord.js";
import { SHUTDOWN_BUDGET_MS } from "../src/lifecycle.ts";
import { BotProcess, waitFor } from "./botProcess.ts";
import { FakeDiscord } from "./fakeDiscord.ts";

const TOKEN = "test-token";
const EXIT_CONFIG = 78;

/**
 * Each close code after which Discord does not take the session back, and the exit status it
 * ends the bot with: 78 for what the owner must change in the Developer Portal (a reset token,
 * a privileged intent not enabled), 1 for the rest.
 */
const FATAL_CLOSES = new Map([
  [4004, EXIT_CONFIG],
  [4010, 1],
  [4011, 1],
  [4012, 1],
  [4013, 1],
  [4014, EXIT_CONFIG],
]);
/** What the single CRITICAL line says for each fatal close. */
const EXPLAINED = new Map([
  [4004, "Reset Token"],
  [4010, "4010"],
  [4011, "4011"],
  [4012, "4012"],
  [4013, "4013"],
  [4014, "Privileged Gateway Intents"],
]);
/**
 * Every other code Discord closes a session with, as discord.js knows them (1000 included,
 * which Discord sends too): the bot connects again.
 */
const RECOVERABLE_CLOSES = [
  1000,
  ...Object.values(GatewayCloseCodes).filter(
    (code): code is number => typeof code === "number" && !FATAL_CLOSES.has(code),
  ),
];

function settings(
  discord: FakeDiscord,
  extra: Record<string, string> = {},
): Record<string, string> {
  return { DISCORD_TOKEN: `${TOKEN}.bot`, ...discord.apiSettings, ...extra };
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

  for (const [code, status] of FATAL_CLOSES) {
    test(`a close with ${String(code)} after READY stops the bot, exit ${String(status)}`, async () => {
      // Discord closes a live session this way when the token is reset, when the bot outgrows
      // one connection (4011), when an intent is withdrawn...
      await using discord = await FakeDiscord.started(TOKEN);
      await using bot = await BotProcess.start(settings(discord));
      await bot.waitUntilReady();
      await discord.closeSessions(code);
      assert.equal(await bot.exit(), status);
      const critical = bot.logs.filter((record) => record.level === "CRITICAL");
      assert.equal(critical.length, 1, bot.output);
      assert.ok(critical[0]?.message.includes(EXPLAINED.get(code) ?? "?"), bot.output);
      // Nobody tried again: Discord would only refuse it.
      assert.equal(discord.recorded.sessionsOpened, 1);
    });
  }

  test("every other close code is followed by a reconnect", async () => {
    assert.ok(RECOVERABLE_CLOSES.length >= 9, String(RECOVERABLE_CLOSES));
    await using discord = await FakeDiscord.started(TOKEN);
    await using bot = await BotProcess.start(settings(discord));
    await bot.waitUntilReady();
    for (const code of RECOVERABLE_CLOSES) {
      const opened = discord.recorded.sessionsOpened;
      await discord.closeSessions(code);
      assert.ok(
        await discord.waitUntil(
          (recorded) => recorded.sessionsOpened > opened && recorded.openSessions === 1,
        ),
        `no new session after close code ${String(code)}:\n${bot.output}`,
      );
      await bot.waitUntilReady();
    }
    assert.equal(bot.exitCode, null);
    assert.deepEqual(
      bot.logs.filter((record) => record.level === "CRITICAL"),
      [],
    );
  });

  test("a fake Discord without DISCORD_API_URL_ALLOW_LOCAL gets no call; the bot exits 78", async () => {
    await using discord = await FakeDiscord.started(TOKEN);
    const { DISCORD_API_URL } = discord.apiSettings;
    await using bot = await BotProcess.start({ DISCORD_TOKEN: `${TOKEN}.bot`, DISCORD_API_URL });
    assert.equal(await bot.exit(), 78);
    assert.ok(bot.output.includes("without DISCORD_API_URL_ALLOW_LOCAL=1"), bot.output);
    assert.ok(!bot.output.includes(TOKEN), bot.output);
    assert.deepEqual(discord.recorded.restCalls, []);
  });

  test("a configuration problem stops the bot before anything starts, exit 78", async () => {
    await using bot = await BotProcess.start({ PORT: "none" });
    assert.equal(await bot.exit(), 78);
    assert.match(bot.output, /^Configuration error: 2 problems/m);
    assert.match(bot.output, /DISCORD_TOKEN is not set/);
    assert.equal(bot.logs.length, 0);
  });
});
