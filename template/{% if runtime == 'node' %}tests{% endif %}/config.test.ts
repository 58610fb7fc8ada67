/** Settings: every problem named at once, no value ever echoed, .env and defaults. */
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { ConfigError, loadSettings, readDotenv } from "../src/config.ts";

const TOKEN = "a-secret-token.with.dots";

function problems(env: Record<string, string>): string {
  try {
    loadSettings(env, {});
  } catch (error) {
    assert.ok(error instanceof ConfigError);
    return error.message;
  }
  assert.fail("the settings were accepted");
}

describe("loadSettings", () => {
  test("defaults for everything but the token", () => {
    const settings = loadSettings({ DISCORD_TOKEN: TOKEN }, {});
    assert.equal(settings.port, 8080);
    assert.equal(settings.logLevel, "INFO");
    assert.equal(settings.logJson, false);
    assert.equal(settings.environment, "development");
    assert.equal(settings.gatewayOutageLimitSeconds, 60);
    assert.equal(settings.discordApiUrl, "https://discord.com");
    assert.equal(settings.devGuildId, undefined);
    assert.match(settings.version, /^\d+\.\d+\.\d+/);
  });

  test("JSON logs on Railway unless LOG_FORMAT says otherwise", () => {
    const railway = { DISCORD_TOKEN: TOKEN, RAILWAY_ENVIRONMENT_NAME: "production" };
    assert.equal(loadSettings(railway, {}).logJson, true);
    assert.equal(loadSettings({ ...railway, LOG_FORMAT: " Text " }, {}).logJson, false);
    assert.equal(loadSettings({ DISCORD_TOKEN: TOKEN, LOG_FORMAT: "json" }, {}).logJson, true);
  });

  test("the deployed commit is the version, and the environment names the keys", () => {
    const settings = loadSettings(
      {
        DISCORD_TOKEN: TOKEN,
        RAILWAY_GIT_COMMIT_SHA: "0123456789abcdef0123",
        RAILWAY_ENVIRONMENT_NAME: "staging",
      },
      {},
    );
    assert.equal(settings.version, "0123456789ab");
    assert.equal(settings.keyPrefix.split(":").at(-1), "staging");
  });

  test("a token pasted with a newline is still the token; case and spaces are forgiven", () => {
    const settings = loadSettings(
      { DISCORD_TOKEN: ` ${TOKEN}\n`, LOG_LEVEL: " debug", PORT: "9000 " },
      {},
    );
    assert.equal(settings.discordToken, TOKEN);
    assert.equal(settings.logLevel, "DEBUG");
    assert.equal(settings.port, 9000);
  });

  test("every problem is listed in one message, each with its fix", () => {
    const message = problems({
      PORT: "80a",
      LOG_LEVEL: "verbose",
      LOG_FORMAT: "xml",
      DEV_GUILD_ID: "-5",
      GATEWAY_OUTAGE_LIMIT_SECONDS: "0",
      HEARTBEAT_INTERVAL_SECONDS: "nan",
      HEARTBEAT_URL: "ftp://monitor.example/abc",
      DISCORD_API_URL: "http://127.0.0.1:1/api",
    });
    const lines = message.split("\n");
    assert.equal(lines[0], "Configuration error: 9 problems to fix before the bot can start:");
    for (const name of [
      "DISCORD_TOKEN is not set: set it to",
      "PORT is invalid",
      "LOG_LEVEL is invalid",
      "LOG_FORMAT is invalid",
      "DEV_GUILD_ID is invalid",
      "GATEWAY_OUTAGE_LIMIT_SECONDS is invalid",
      "HEARTBEAT_INTERVAL_SECONDS is invalid",
      "HEARTBEAT_URL is invalid",
      "DISCORD_API_URL is invalid",
    ]) {
      assert.ok(
        lines.some((line) => line.startsWith(`  - ${name}`)),
        `${name} in:\n${message}`,
      );
    }
  });

  test("no value is ever shown, however wrong", () => {
    const secret = "hunter2-secret-value";
    const message = problems({
      DISCORD_TOKEN: `has space ${secret}`,
      HEARTBEAT_URL: `https://${secret} x`,
      PORT: secret,
      LOG_FILE: `/proc/${secret}/file`,
    });
    assert.ok(!message.includes(secret), message);
    assert.match(message, /4 problems/);
  });

  test("out-of-range numbers and server IDs are refused", () => {
    for (const [name, value] of [
      ["PORT", "0"],
      ["PORT", "65536"],
      ["PORT", "1e3"],
      ["DEV_GUILD_ID", "9223372036854775808"],
      ["DEV_GUILD_ID", "0"],
      ["GATEWAY_OUTAGE_LIMIT_SECONDS", "3601"],
      ["HEARTBEAT_INTERVAL_SECONDS", "Infinity"],
    ] as const) {
      assert.match(
        problems({ DISCORD_TOKEN: TOKEN, [name]: value }),
        new RegExp(`${name} is invalid`),
      );
    }
    assert.equal(
      loadSettings({ DISCORD_TOKEN: TOKEN, DEV_GUILD_ID: "9223372036854775807" }, {}).devGuildId,
      "9223372036854775807",
    );
  });

  test("a log file in a place that cannot be written is refused before start", () => {
    const folder = mkdtempSync(join(tmpdir(), "bot-config-"));
    assert.match(
      problems({ DISCORD_TOKEN: TOKEN, LOG_FILE: folder }),
      /LOG_FILE is invalid \(is a directory/,
    );
    writeFileSync(join(folder, "file"), "");
    assert.match(
      problems({ DISCORD_TOKEN: TOKEN, LOG_FILE: join(folder, "file", "bot.log") }),
      /LOG_FILE is invalid \(cannot be created/,
    );
    const path = join(folder, "logs", "bot.log");
    assert.equal(loadSettings({ DISCORD_TOKEN: TOKEN, LOG_FILE: path }, {}).logFile, path);
  });

  test("the environment wins over .env, and an empty variable counts as unset", () => {
    const folder = mkdtempSync(join(tmpdir(), "bot-dotenv-"));
    const file = join(folder, ".env");
    writeFileSync(
      file,
      `# local settings\nDISCORD_TOKEN="from-dotenv"\nPORT=9001\nLOG_LEVEL=ERROR\n`,
    );
    const dotenv = readDotenv(file);
    const settings = loadSettings({ PORT: "9002", LOG_LEVEL: "" }, dotenv);
    assert.equal(settings.discordToken, "from-dotenv");
    assert.equal(settings.port, 9002);
    assert.equal(settings.logLevel, "ERROR");
    assert.deepEqual(readDotenv(join(folder, "missing.env")), {});
  });
});
