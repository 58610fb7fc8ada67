/**
 * The bot's command line: the bot and its maintenance tasks.
 *
 * - `run` (the default) runs the bot;
 * - `check` checks the settings;
 * - `sync-commands [--guild ID]` pushes the slash commands to Discord now.
 *
 * Settings come from the environment (see config.ts). A configuration
 * problem stops every command before it connects anywhere, with exit status
 * 78 (`check` exits 1). The container runs `node dist/src/main.js` as its
 * process, never through npm, which does not pass SIGTERM on.
 */
import { parseArgs } from "node:util";
import { ConfigError, EXIT_CONFIG, loadSettings, type Settings } from "./config.ts";
import { configureLogging, getLogger } from "./logging.ts";
import { PROJECT_SLUG } from "./project.ts";

const log = getLogger("main");

const USAGE = `usage: ${PROJECT_SLUG} [run | check | sync-commands [--guild ID]]

Run the bot or one of its maintenance tasks.

commands:
  run             run the bot (the default)
  check           check the settings and every service the bot needs
  sync-commands   push slash commands to Discord now
                  --guild ID: to this server only (default: DEV_GUILD_ID, else global)`;

/** Exit status for a command line that cannot be understood (EX_USAGE). */
const EXIT_USAGE = 64;

function check(settings: Settings): number {
  console.log(`settings: ok (environment ${settings.environment}, version ${settings.version})`);
  return 0;
}

async function syncCommandsNow(settings: Settings, guildId: string | undefined): Promise<number> {
  // Only this command and an active bot need discord.js.
  const { Bot, exitStatusFor } = await import("./bot.ts");
  const { Lease } = await import("./leader.ts");
  const bot = new Bot(settings, Lease.forever());
  try {
    await bot.prepare("force", guildId);
    return 0;
  } catch (error) {
    return exitStatusFor(error);
  } finally {
    await bot.destroy();
  }
}

/** Parse the command line and run one command; resolves to the exit status. */
export async function main(argv: string[]): Promise<number> {
  let command: string;
  let guild: string | undefined;
  try {
    const { positionals, values } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: { guild: { type: "string" }, help: { type: "boolean", short: "h" } },
    });
    if (values.help === true) {
      console.log(USAGE);
      return 0;
    }
    command = positionals[0] ?? "run";
    guild = values.guild;
    if (positionals.length > 1 || !["run", "check", "sync-commands"].includes(command)) {
      throw new Error(`unknown command: ${positionals.join(" ")}`);
    }
    if (guild !== undefined && (command !== "sync-commands" || !/^[1-9][0-9]{0,19}$/.test(guild))) {
      throw new Error("--guild takes a server ID (digits), with sync-commands only");
    }
  } catch (error) {
    console.error(`${(error as Error).message}\n\n${USAGE}`);
    return EXIT_USAGE;
  }
  let settings: Settings;
  try {
    settings = loadSettings();
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    // Plain text on stderr, no stack: the message says what to set.
    console.error(error.message);
    return command === "check" ? 1 : EXIT_CONFIG;
  }
  try {
    configureLogging(settings.logLevel, { json: settings.logJson, file: settings.logFile });
  } catch (error) {
    // The settings check found the path usable; the file system said no
    // anyway (a race, a full disk, a read-only mount).
    const code = (error as NodeJS.ErrnoException).code ?? "error";
    console.error(
      `Configuration error: LOG_FILE cannot be opened (${code}): set it to a writable file path, or unset it.`,
    );
    return command === "check" ? 1 : EXIT_CONFIG;
  }
  if (command === "check") return check(settings);
  if (command === "sync-commands") return syncCommandsNow(settings, guild);
  const { run } = await import("./lifecycle.ts");
  return run(settings);
}

main(process.argv.slice(2)).then(
  (status) => {
    // Every line is written synchronously: nothing is left to flush.
    process.exit(status);
  },
  (error: unknown) => {
    log.critical("The bot stopped on an unexpected error", { exception: error });
    process.exit(1);
  },
);
