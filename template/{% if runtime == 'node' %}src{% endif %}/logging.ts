/**
 * Logging for the whole process, set up in one place.
 *
 * On Railway each line is one JSON object (timestamp, level, logger, message,
 * exception and any context passed with the call), which Railway's log search
 * can filter on; the fields are the same as the Python runtime's. In
 * development the same records read as plain text. pino writes them: it is
 * the fastest of the kept Node loggers and never buffers without bound
 * (docs/design/node-runtime.md has the figures).
 */
import { closeSync, openSync, renameSync, rmSync, statSync, writeSync } from "node:fs";
import { dirname } from "node:path";
import { pino, type DestinationStream, type Logger as Pino } from "pino";
import type { LogLevel } from "./config.ts";
import { makeDirectories } from "./paths.ts";

/** Context keys that say which request a line belongs to. */
export const CONTEXT_KEYS = [
  "command",
  "guild_id",
  "user_id",
  "interaction_id",
  "role",
  "error",
] as const;
export type Context = Partial<Record<(typeof CONTEXT_KEYS)[number], string | number | null>>;

const PINO_LEVELS = {
  DEBUG: "debug",
  INFO: "info",
  WARNING: "warn",
  ERROR: "error",
  CRITICAL: "fatal",
} as const;
const LABELS: Record<string, string> = {
  trace: "DEBUG",
  debug: "DEBUG",
  info: "INFO",
  warn: "WARNING",
  error: "ERROR",
  fatal: "CRITICAL",
};

/** A rotated log file keeps at most this much, times (BACKUPS + 1). */
const MAX_FILE_BYTES = 10 * 1024 * 1024;
const BACKUPS = 3;

/** A file destination that rotates at MAX_FILE_BYTES: file, file.1, ... file.3. */
export class RotatingFile implements DestinationStream {
  readonly path: string;
  #fd: number;
  #size: number;
  #failing = false;

  constructor(path: string) {
    this.path = path;
    makeDirectories(dirname(path));
    this.#fd = openSync(path, "a");
    this.#size = statSync(path).size;
  }

  write(line: string): void {
    const bytes = Buffer.byteLength(line);
    try {
      if (this.#size > 0 && this.#size + bytes > MAX_FILE_BYTES) this.#rotate();
      writeSync(this.#fd, line);
      this.#size += bytes;
      this.#failing = false;
    } catch (error) {
      // A full disk must not stop the bot: stdout still has every line.
      if (!this.#failing) {
        const code = (error as NodeJS.ErrnoException).code ?? "error";
        process.stderr.write(
          `Cannot write LOG_FILE (${code}); logging to stdout only until it works again\n`,
        );
      }
      this.#failing = true;
    }
  }

  close(): void {
    closeSync(this.#fd);
  }

  #rotate(): void {
    closeSync(this.#fd);
    rmSync(`${this.path}.${String(BACKUPS)}`, { force: true });
    for (let index = BACKUPS - 1; index >= 1; index--) {
      try {
        renameSync(`${this.path}.${String(index)}`, `${this.path}.${String(index + 1)}`);
      } catch {
        // that generation does not exist yet
      }
    }
    renameSync(this.path, `${this.path}.1`);
    this.#fd = openSync(this.path, "a");
    this.#size = 0;
  }
}

/** Readable lines for development, with the request context as key=value pairs. */
export function textLine(record: Record<string, unknown>): string {
  const { timestamp, level, logger, message, exception } = record;
  const context = CONTEXT_KEYS.filter((key) => record[key] !== undefined && record[key] !== null)
    .map((key) => `${key}=${String(record[key])}`)
    .join(" ");
  let line = `${String(timestamp)} ${String(level).padEnd(8)} ${String(logger)}: ${String(message)}`;
  if (context) line += ` [${context}]`;
  if (typeof exception === "string") line += `\n${exception}`;
  return `${line}\n`;
}

/** Turns pino's JSON lines into text lines on their way to `target`. */
class TextDestination implements DestinationStream {
  readonly #target: DestinationStream;
  constructor(target: DestinationStream) {
    this.#target = target;
  }
  write(line: string): void {
    this.#target.write(textLine(JSON.parse(line) as Record<string, unknown>));
  }
}

interface Options {
  json: boolean;
  file?: string | undefined;
  stdout?: DestinationStream;
}

function createRoot(level: LogLevel, options: Options): Pino {
  // Synchronous writes: a line written before a crash or an exit is never
  // lost in a buffer, and stdout on Railway is a pipe that keeps up.
  const stdout = options.stdout ?? pino.destination({ fd: 1, sync: true });
  const targets: DestinationStream[] = [stdout];
  if (options.file !== undefined) targets.push(new RotatingFile(options.file));
  const streams = targets.map((target) => (options.json ? target : new TextDestination(target)));
  const destination: DestinationStream =
    streams.length === 1 && streams[0] !== undefined
      ? streams[0]
      : {
          write: (line: string) => {
            for (const stream of streams) stream.write(line);
          },
        };
  return pino(
    {
      level: PINO_LEVELS[level],
      base: null,
      messageKey: "message",
      errorKey: "exception",
      timestamp: () => `,"timestamp":"${new Date().toISOString()}"`,
      formatters: { level: (label) => ({ level: LABELS[label] ?? label.toUpperCase() }) },
      serializers: {
        // The stack says where; the message alone rarely does.
        exception: (error: unknown) =>
          error instanceof Error
            ? (error.stack ?? `${error.name}: ${error.message}`)
            : String(error),
      },
    },
    destination,
  );
}

let root: Pino = createRoot("INFO", { json: false });
const named = new Map<string, Pino>();

/** Send every logger's records to stdout, and to a rotating file if asked. */
export function configureLogging(level: LogLevel, options: Options): void {
  root = createRoot(level, options);
  named.clear();
}

function current(name: string): Pino {
  let logger = named.get(name);
  if (logger === undefined) {
    logger = root.child({ logger: name });
    named.set(name, logger);
  }
  return logger;
}

/**
 * A module's logger. It follows configureLogging() even when it was created
 * before, so modules can take theirs at import time.
 */
export class Logger {
  readonly name: string;
  constructor(name: string) {
    this.name = name;
  }
  debug(message: string, context?: Context): void {
    current(this.name).debug(context ?? {}, message);
  }
  info(message: string, context?: Context): void {
    current(this.name).info(context ?? {}, message);
  }
  warning(message: string, context?: Context & { exception?: unknown }): void {
    current(this.name).warn(context ?? {}, message);
  }
  error(message: string, context?: Context & { exception?: unknown }): void {
    current(this.name).error(context ?? {}, message);
  }
  critical(message: string, context?: Context & { exception?: unknown }): void {
    current(this.name).fatal(context ?? {}, message);
  }
}

export function getLogger(name: string): Logger {
  return new Logger(name);
}
