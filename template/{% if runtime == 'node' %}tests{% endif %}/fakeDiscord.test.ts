// The fake Discord against the real discord.js: what the bot tests rely on.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { dirname } from "node:path";
import { test } from "node:test";
import {
  ApplicationCommandOptionType,
  Client,
  DiscordAPIError,
  Events,
  GatewayIntentBits,
} from "discord.js";
import type { Interaction } from "discord.js";
import { APPLICATION_ID, FakeDiscord } from "./fakeDiscord.ts";

const TOKEN = "fake-token";
const PATIENCE_MS = 5_000;

/** A client pointed at the fake that answers every slash command with "pong". */
async function connect(fake: FakeDiscord, token: string): Promise<Client> {
  const client = new Client({
    intents: [GatewayIntentBits.Guilds],
    rest: { api: `${fake.url}/api` },
  });
  client.on(Events.InteractionCreate, (interaction) => {
    if (interaction.isChatInputCommand()) void interaction.reply("pong");
  });
  const ready = once(client, Events.ClientReady);
  await client.login(token);
  await ready;
  return client;
}

/** Run `body` with connected clients, destroying them afterwards whatever happens. */
async function withClients(
  fake: FakeDiscord,
  tokens: string[],
  body: (clients: Client[]) => Promise<void>,
): Promise<void> {
  const clients: Client[] = [];
  try {
    for (const token of tokens) clients.push(await connect(fake, token));
    await body(clients);
  } finally {
    await Promise.all(clients.map((client) => client.destroy()));
  }
}

await test("lets a client log in and answer a slash command", async () => {
  await using fake = await FakeDiscord.started(TOKEN);
  await withClients(fake, [`${TOKEN}.a`], async ([client]) => {
    assert.ok(client?.isReady());
    assert.equal(client.user.id, APPLICATION_ID);
    assert.equal(client.application.id, APPLICATION_ID);
    assert.equal(fake.recorded.identifies.length, 1);
    assert.equal(fake.recorded.openSessions, 1);

    const received = once(client, Events.InteractionCreate) as Promise<[Interaction]>;
    const options = [{ name: "amount", type: 4, value: 5 }];
    const id = await fake.sendInteraction("daily", options);
    const [interaction] = await received;
    assert.ok(interaction.isChatInputCommand());
    assert.equal(interaction.id, id);
    assert.equal(interaction.commandName, "daily");
    assert.equal(interaction.options.getInteger("amount"), 5);
    assert.equal(interaction.user.id, "1000000000000000003");
    assert.equal(interaction.channelId, "4000000000000000001");

    assert.ok(await fake.waitUntil((r) => r.answers.has(id), PATIENCE_MS));
    assert.deepEqual(fake.recorded.answers.get(id), ["a"]);
    assert.deepEqual(fake.recorded.interactions.get(id)?.sentTo, ["a"]);
    const sentAt = fake.recorded.interactions.get(id)?.sentAt ?? Infinity;
    const answeredAt = fake.recorded.answeredAt.get("a") ?? [];
    assert.equal(answeredAt.length, 1);
    assert.ok((answeredAt[0] ?? -1) >= sentAt);
  });
  const callback = fake.recorded.restCalls.find((call) => call.includes("/callback"));
  assert.match(callback ?? "", /^POST \/api\/v10\/interactions\/\d+\/a\.session-1\.\d+\/callback$/);
});

await test("sends each interaction to every session, so double answers show", async () => {
  await using fake = await FakeDiscord.started(TOKEN);
  await withClients(fake, [`${TOKEN}.a`, `${TOKEN}.b`], async () => {
    assert.equal(fake.recorded.maxSessions, 2);
    const id = await fake.sendInteraction();
    assert.ok(await fake.waitUntil((r) => (r.answers.get(id)?.length ?? 0) === 2, PATIENCE_MS));
    assert.deepEqual(fake.recorded.answers.get(id)?.toSorted(), ["a", "b"]);
    assert.deepEqual(fake.recorded.interactions.get(id)?.sentTo.toSorted(), ["a", "b"]);
  });
  assert.ok(await fake.waitUntil((r) => r.openSessions === 0, PATIENCE_MS));
});

await test("refuses a wrong token", async () => {
  await using fake = await FakeDiscord.started(TOKEN);
  const client = new Client({
    intents: [GatewayIntentBits.Guilds],
    rest: { api: `${fake.url}/api` },
  });
  try {
    await assert.rejects(client.login("wrong-token"), { code: "TokenInvalid" });
  } finally {
    await client.destroy();
  }
  assert.equal(fake.recorded.openSessions, 0);
  assert.equal(fake.recorded.identifies.length, 0);

  const response = await fetch(`${fake.url}/api/v10/users/@me`);
  assert.equal(response.status, 401);
  assert.deepEqual(await response.json(), { message: "401: Unauthorized", code: 0 });
  const missing = await fetch(`${fake.url}/api/v10/nowhere`);
  assert.equal(missing.status, 404);
  assert.deepEqual(await missing.json(), { message: "404: Not Found", code: 0 });
});

await test("closes sessions after IDENTIFY with closeCode", async () => {
  await using fake = await FakeDiscord.started(TOKEN, { closeCode: 4014 });
  const client = new Client({
    intents: [GatewayIntentBits.Guilds],
    rest: { api: `${fake.url}/api` },
  });
  try {
    await assert.rejects(client.login(`${TOKEN}.a`), /disallowed intents/i);
  } finally {
    await client.destroy();
  }
  assert.equal(fake.recorded.maxSessions, 0);
});

await test("survives a gateway outage: discord.js reconnects on its own", async () => {
  await using fake = await FakeDiscord.started(TOKEN);
  await withClients(fake, [`${TOKEN}.a`], async ([client]) => {
    assert.ok(client);
    const refused = once(client, Events.ShardError);
    const resumed = once(client, Events.ShardResume);
    fake.refuseGateway = true;
    await fake.closeSessions();
    assert.equal(fake.recorded.openSessions, 0);
    await refused; // at least one attempt was turned away
    assert.equal(fake.recorded.openSessions, 0);

    fake.refuseGateway = false;
    await resumed;
    assert.equal(fake.recorded.openSessions, 1);
    assert.equal(fake.recorded.identifies.length, 1); // resumed, not identified again
    const id = await fake.sendInteraction();
    assert.ok(await fake.waitUntil((r) => r.answers.has(id), PATIENCE_MS));
    assert.deepEqual(fake.recorded.answers.get(id), ["a"]);
  });
});

await test("records command syncs and answers GETs with what Discord stores", async () => {
  await using fake = await FakeDiscord.started(TOKEN);
  await withClients(fake, [`${TOKEN}.a`], async ([client]) => {
    assert.ok(client?.isReady());
    const created = await client.application.commands.set([
      { name: "balance", description: "Your balance." },
      {
        name: "daily",
        description: "Collect your daily coins.",
        options: [
          {
            name: "amount",
            description: "How many.",
            type: ApplicationCommandOptionType.Integer,
            required: false,
          },
        ],
      },
    ]);
    assert.equal(created.size, 2);

    const path = `/api/v10/applications/${APPLICATION_ID}/commands`;
    assert.equal(fake.recorded.commandSyncs.length, 1);
    assert.equal(fake.recorded.commandSyncs[0]?.path, path);
    assert.deepEqual(
      fake.recorded.commandSyncs[0].payload.map((command) => command.name),
      ["balance", "daily"],
    );

    const stored = fake.commands.get(path);
    assert.deepEqual(stored?.[1], {
      name: "daily",
      description: "Collect your daily coins.",
      options: [{ name: "amount", description: "How many.", type: 4 }],
      type: 1,
      id: "2000000000000000001",
      application_id: APPLICATION_ID,
      version: "1",
      default_member_permissions: null,
      dm_permission: true,
      contexts: [0, 1, 2],
      integration_types: [0],
      nsfw: false,
    });
    const fetched = await client.application.commands.fetch();
    assert.deepEqual([...fetched.keys()], ["2000000000000000000", "2000000000000000001"]);
    const raw = await fetch(`${fake.url}${path}?with_localizations=true`, {
      headers: { Authorization: `Bot ${TOKEN}.a` },
    });
    assert.deepEqual(await raw.json(), stored);

    const received = once(client, Events.InteractionCreate) as Promise<[Interaction]>;
    await fake.sendInteraction("balance");
    const [interaction] = await received;
    assert.ok(interaction.isChatInputCommand());
    assert.equal(interaction.commandId, "2000000000000000000");

    fake.commandFetchStatus = 403;
    await assert.rejects(client.application.commands.fetch(), (error: unknown) => {
      return error instanceof DiscordAPIError && error.status === 403;
    });
  });
});

await test("stops promptly while a bot process is still connected", async () => {
  const fake = await FakeDiscord.started(TOKEN);
  // As the bot tests run it: a separate process, pointed at the fake through its REST URL.
  const script = [
    'import { Client, GatewayIntentBits } from "discord.js";',
    "const client = new Client({",
    "  intents: [GatewayIntentBits.Guilds],",
    "  rest: { api: process.env.FAKE_DISCORD_API },",
    "});",
    "await client.login(process.env.FAKE_DISCORD_TOKEN);",
  ].join("\n");
  const bot = spawn(process.execPath, ["--input-type=module", "--eval", script], {
    cwd: dirname(import.meta.dirname),
    env: { ...process.env, FAKE_DISCORD_API: `${fake.url}/api`, FAKE_DISCORD_TOKEN: `${TOKEN}.c` },
    stdio: "ignore",
  });
  const exited = once(bot, "exit");
  try {
    assert.ok(await fake.waitUntil((r) => r.openSessions === 1, PATIENCE_MS));
    assert.ok(fake.recorded.restCalls.includes("GET /api/v10/gateway/bot"));
    const started = performance.now();
    await fake.stop();
    const took = performance.now() - started;
    assert.ok(took < 1_000, `stop() took ${took.toFixed(0)} ms`);
    assert.equal(fake.recorded.openSessions, 0);
  } finally {
    bot.kill();
    await exited;
    await fake.stop();
  }
});
