/**
 * Every setting the bot reads, taken from environment variables and checked once.
 *
 * Nothing else in the bot reads process.env: a missing or wrong value is found
 * here, before the bot connects to anything, and reported in one message that
 * lists every problem and never echoes a value (tokens and URLs hold secrets).
 */
import { accessSync, constants, readFileSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { parseEnv } from "node:util";
import { z } from "zod";
import { makeDirectories } from "./paths.ts";
import { KEY_NAMESPACE } from "./project.ts";

/**
 * Exit status for a configuration error (EX_CONFIG from sysexits.h). Railway
 * restarts a crashed bot; this status tells a reader that a restart will not help.
 */
export const EXIT_CONFIG = 78;

export const DISCORD_API_URL = "https://discord.com";

const LOG_LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** What to do about each variable, shown next to any problem with it. */
const HINTS: Record<string, string> = {
  DISCORD_TOKEN: "the bot token from the Discord Developer Portal (Bot > Reset Token)",
  DEV_GUILD_ID: "a server (guild) ID: enable Developer Mode, right-click the server, Copy ID",
  PORT: "a TCP port between 1 and 65535 (Railway sets it for you)",
  LOG_LEVEL: "one of DEBUG, INFO, WARNING, ERROR, CRITICAL",
  LOG_FORMAT: "json or text",
  LOG_FILE: "a writable file path, or unset it",
  DISCORD_API_URL: "an http(s) URL; only tests change it",
  GATEWAY_OUTAGE_LIMIT_SECONDS: "a number of seconds between 1 and 3600",
  HEARTBEAT_URL:
    "the http(s) ping URL of a push monitor (Healthchecks.io, UptimeRobot...), or unset it",
  HEARTBEAT_INTERVAL_SECONDS: "a number of seconds between 1 and 3600",
};

/** The environment does not describe a bot that can start. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

/** A number read from text, with a message that says what was wrong. */
function numberBetween(min: number, max: number, what: string) {
  return z
    .string()
    .trim()
    .transform((text, ctx) => {
      const value = text === "" ? Number.NaN : Number(text);
      if (!Number.isFinite(value) || value < min || value > max) {
        ctx.addIssue({
          code: "custom",
          message: `must be ${what} between ${String(min)} and ${String(max)}`,
        });
        return z.NEVER;
      }
      return value;
    });
}

function integerBetween(min: number, max: number) {
  return z
    .string()
    .trim()
    .transform((text, ctx) => {
      if (!/^[0-9]+$/.test(text) || Number(text) < min || Number(text) > max) {
        ctx.addIssue({
          code: "custom",
          message: `must be a whole number between ${String(min)} and ${String(max)}`,
        });
        return z.NEVER;
      }
      return Number(text);
    });
}

/** Why a file cannot be created at `path`, or undefined if it can. */
export function whyNotWritable(path: string): string | undefined {
  try {
    if (statSync(path, { throwIfNoEntry: false })?.isDirectory()) {
      return "is a directory, not a file";
    }
    // The bot creates the directories on first use anyway; creating them now
    // turns an impossible path into a setting to fix, before anything starts.
    makeDirectories(dirname(resolve(path)));
    accessSync(dirname(resolve(path)), constants.W_OK | constants.X_OK);
    return undefined;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? "not a valid path";
    return `cannot be created (${code})`;
  }
}

function httpUrl(value: string): URL | undefined {
  try {
    const url = new URL(value);
    return url.protocol === "http:" || url.protocol === "https:" ? url : undefined;
  } catch {
    return undefined;
  }
}

const schema = z.object({
  DISCORD_TOKEN: z
    .string({ error: (issue) => (issue.input === undefined ? "is not set" : "must be text") })
    .trim()
    .min(1, "is not set")
    .max(1000, "is longer than any Discord token")
    // The token travels in an HTTP header: printable ASCII, no spaces.
    .regex(/^[!-~]+$/, "has spaces or characters a Discord token never has"),
  DEV_GUILD_ID: z
    .string()
    .trim()
    .refine(
      (text) => /^[1-9][0-9]{0,18}$/.test(text) && BigInt(text) < 2n ** 63n,
      "must be a server ID: digits only, as Discord's Copy ID gives it",
    )
    .optional(),
  PORT: integerBetween(1, 65535).default(8080),
  LOG_LEVEL: z
    .string()
    .trim()
    .transform((text) => text.toUpperCase())
    .pipe(z.enum(LOG_LEVELS, { error: "must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL" }))
    .default("INFO"),
  /** Unset: JSON lines on Railway, readable text elsewhere. */
  LOG_FORMAT: z
    .string()
    .trim()
    .transform((text) => text.toLowerCase())
    .pipe(z.enum(["json", "text"], { error: "must be json or text" }))
    .optional(),
  /**
   * An extra log file. Railway's disk is wiped on every deploy, so there
   * stdout (collected by Railway) is the log that lasts.
   */
  LOG_FILE: z
    .string()
    .superRefine((path, ctx) => {
      const problem = whyNotWritable(path);
      if (problem !== undefined) ctx.addIssue({ code: "custom", message: problem });
    })
    .optional(),
  RAILWAY_ENVIRONMENT_NAME: z.string().optional(),
  RAILWAY_GIT_COMMIT_SHA: z.string().optional(),
  /**
   * How long the active bot may be without a gateway connection before
   * /health answers 503. discord.js reconnects by itself, and Discord asks
   * bots to reconnect now and then (a few seconds each); a minute without a
   * connection is an outage worth an alert, not a routine reconnect.
   */
  GATEWAY_OUTAGE_LIMIT_SECONDS: numberBetween(1, 3600, "a number of seconds").default(60),
  /** A push monitor's ping URL (see heartbeat.ts). It embeds the monitor's token. */
  HEARTBEAT_URL: z
    .string()
    .trim()
    // Spaces, control characters and DEL: \s, \p{Cc}.
    .refine((text) => !/[\s\p{Cc}]/u.test(text), "has spaces or control characters")
    .refine(
      (text) => httpUrl(text)?.hostname,
      "must be an http:// or https:// URL with a host name",
    )
    .optional(),
  /** Seconds between two pings; keep it well under the monitor's period. */
  HEARTBEAT_INTERVAL_SECONDS: numberBetween(1, 3600, "a number of seconds").default(60),
  /** Where Discord's API lives. Only the tests change it, to a local fake. */
  DISCORD_API_URL: z
    .string()
    .trim()
    .regex(/^https?:\/\/[^/\s]+$/, "must be an http(s) URL without a path")
    .refine((text) => httpUrl(text) !== undefined, "has a malformed host or port")
    .default(DISCORD_API_URL),
});

type Parsed = z.infer<typeof schema>;

/** The bot's configuration, read once at start. */
export interface Settings {
  readonly discordToken: string;
  /** Commands sync to this server only, instantly, instead of globally. */
  readonly devGuildId: string | undefined;
  readonly port: number;
  readonly logLevel: LogLevel;
  /** JSON lines when asked, or by default on Railway where logs are parsed. */
  readonly logJson: boolean;
  readonly logFile: string | undefined;
  readonly environment: string;
  readonly version: string;
  readonly gatewayOutageLimitSeconds: number;
  readonly heartbeatUrl: string | undefined;
  readonly heartbeatIntervalSeconds: number;
  readonly discordApiUrl: string;
  /**
   * Namespace of the bot's shared keys and locks, per environment: staging
   * and production may share a server, and their locks must never meet.
   */
  readonly keyPrefix: string;
}

/** The variables of a `.env` file in the working directory, if there is one. */
export function readDotenv(path = ".env"): Record<string, string> {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return {};
  }
  // The same format Node's own --env-file reads (KEY=value, quotes, comments).
  return Object.fromEntries(
    Object.entries(parseEnv(text)).filter(
      (entry): entry is [string, string] => entry[1] !== undefined,
    ),
  );
}

function packageVersion(): string {
  try {
    const manifest = JSON.parse(
      readFileSync(new URL("../package.json", import.meta.url), "utf8"),
    ) as { version?: unknown };
    return typeof manifest.version === "string" ? manifest.version : "unknown";
  } catch {
    return "unknown";
  }
}

/** Read the environment, or throw ConfigError listing every problem at once. */
export function loadSettings(
  env: NodeJS.ProcessEnv = process.env,
  dotenv: Record<string, string> = readDotenv(),
): Settings {
  // The process environment wins over .env; Railway and shells often set a
  // variable to "" to clear it, which counts as unset.
  const source: Record<string, string> = {};
  for (const key of Object.keys(schema.shape)) {
    const value = [env[key], dotenv[key]].find((text) => text !== undefined && text !== "");
    if (value !== undefined) source[key] = value;
  }
  const result = schema.safeParse(source);
  if (!result.success) throw new ConfigError(describe(result.error));
  return toSettings(result.data);
}

function toSettings(data: Parsed): Settings {
  const environment = data.RAILWAY_ENVIRONMENT_NAME ?? "development";
  return {
    discordToken: data.DISCORD_TOKEN,
    devGuildId: data.DEV_GUILD_ID,
    port: data.PORT,
    logLevel: data.LOG_LEVEL,
    logJson:
      data.LOG_FORMAT !== undefined
        ? data.LOG_FORMAT === "json"
        : data.RAILWAY_ENVIRONMENT_NAME !== undefined,
    logFile: data.LOG_FILE,
    environment,
    // RAILWAY_GIT_COMMIT_SHA exists only for GitHub-triggered deploys.
    version: data.RAILWAY_GIT_COMMIT_SHA?.slice(0, 12) ?? packageVersion(),
    gatewayOutageLimitSeconds: data.GATEWAY_OUTAGE_LIMIT_SECONDS,
    heartbeatUrl: data.HEARTBEAT_URL,
    heartbeatIntervalSeconds: data.HEARTBEAT_INTERVAL_SECONDS,
    discordApiUrl: data.DISCORD_API_URL,
    keyPrefix: `${KEY_NAMESPACE}:${environment}`,
  };
}

/** One line per problem, naming the variable to set; input values are never shown. */
export function describe(error: z.ZodError): string {
  const lines: string[] = [];
  const seen = new Set<string>();
  for (const issue of error.issues) {
    const variable = String(issue.path[0] ?? "");
    if (seen.has(variable)) continue; // the first problem of each variable is enough
    seen.add(variable);
    const problem =
      issue.message === "is not set" ? issue.message : `is invalid (${issue.message})`;
    const hint = HINTS[variable];
    lines.push(`  - ${variable} ${problem}${hint === undefined ? "." : `: set it to ${hint}.`}`);
  }
  const plural = lines.length === 1 ? "" : "s";
  return [
    `Configuration error: ${String(lines.length)} problem${plural} to fix before the bot can start:`,
    ...lines,
  ].join("\n");
}
