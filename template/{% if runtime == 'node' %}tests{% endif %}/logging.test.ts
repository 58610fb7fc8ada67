/** Log lines: the JSON fields Railway's search reads, readable text, a rotating file. */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, test } from "node:test";
import { configureLogging, getLogger, RotatingFile, textLine } from "../src/logging.ts";

const lines: string[] = [];
const capture = {
  write: (line: string) => {
    lines.push(line);
  },
};

afterEach(() => {
  lines.length = 0;
  configureLogging("INFO", { json: false });
});

describe("logging", () => {
  test("JSON lines carry timestamp, level, logger, message and the request context", () => {
    configureLogging("INFO", { json: true, stdout: capture });
    getLogger("commands").info("Command used", { command: "ping", guild_id: "42", user_id: "7" });
    getLogger("commands").debug("not at INFO");
    assert.equal(lines.length, 1);
    const record = JSON.parse(lines[0] ?? "") as Record<string, unknown>;
    assert.deepEqual(Object.keys(record).sort(), [
      "command",
      "guild_id",
      "level",
      "logger",
      "message",
      "timestamp",
      "user_id",
    ]);
    assert.equal(record.level, "INFO");
    assert.equal(record.logger, "commands");
    assert.equal(record.message, "Command used");
    assert.ok(Math.abs(Date.parse(String(record.timestamp)) - Date.now()) < 5000);
  });

  test("levels are named as in the Python runtime, and an exception is its stack", () => {
    configureLogging("DEBUG", { json: true, stdout: capture });
    const log = getLogger("bot");
    log.debug("d");
    log.warning("w");
    log.error("failed", { exception: new TypeError("boom") });
    log.critical("c");
    const records = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    assert.deepEqual(
      records.map((r) => r.level),
      ["DEBUG", "WARNING", "ERROR", "CRITICAL"],
    );
    assert.match(String(records[2]?.exception), /^TypeError: boom\n\s+at /);
  });

  test("a logger taken before configureLogging follows it", () => {
    const early = getLogger("early");
    configureLogging("ERROR", { json: true, stdout: capture });
    early.warning("dropped at ERROR");
    early.error("kept");
    assert.equal(lines.length, 1);
  });

  test("text lines for development, with context and stack", () => {
    configureLogging("INFO", { json: false, stdout: capture });
    getLogger("errors").error("Command failed", {
      command: "daily",
      user_id: 5,
      exception: new Error("x"),
    });
    const [line] = lines;
    assert.match(
      line ?? "",
      /^\S+Z ERROR {4}errors: Command failed \[command=daily user_id=5\]\nError: x\n\s+at /,
    );
    assert.equal(
      textLine({ timestamp: "T", level: "INFO", logger: "a", message: "m" }),
      "T INFO     a: m\n",
    );
  });

  test("the log file rotates at 10 MB and keeps three old files", () => {
    const folder = mkdtempSync(join(tmpdir(), "bot-logs-"));
    const file = new RotatingFile(join(folder, "logs", "bot.log"));
    const line = `${"x".repeat(1023)}\n`;
    for (let index = 0; index < 10 * 1024 * 5; index++) file.write(line); // 50 MB
    file.close();
    assert.deepEqual(readdirSync(join(folder, "logs")).sort(), [
      "bot.log",
      "bot.log.1",
      "bot.log.2",
      "bot.log.3",
    ]);
    const size = readFileSync(join(folder, "logs", "bot.log.1")).length;
    assert.ok(size <= 10 * 1024 * 1024 && size > 10 * 1024 * 1024 - 2048, String(size));
  });

  test("a log file gets the same lines as stdout", () => {
    const folder = mkdtempSync(join(tmpdir(), "bot-logs-"));
    const path = join(folder, "bot.log");
    configureLogging("INFO", { json: true, stdout: capture, file: path });
    getLogger("main").info("both");
    assert.equal(readFileSync(path, "utf8"), lines[0]);
  });

  test("a log file that cannot be written does not stop the logging", () => {
    configureLogging("INFO", { json: true, stdout: capture, file: "/dev/full" });
    getLogger("main").info("first");
    getLogger("main").info("second");
    assert.equal(lines.length, 2);
  });
});
