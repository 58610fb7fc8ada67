/**
 * The bot as a real process (`node dist/main.js`, as the container runs it),
 * with helpers to read its JSON logs, ask its health server and signal it.
 * `npm test` builds dist/ first.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { createServer } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";

/** How long a test waits for something that should happen. Patience, not a bound. */
export const PATIENCE_MS = 30_000;

export const ROOT = fileURLToPath(new URL("..", import.meta.url));
export const MAIN = fileURLToPath(new URL("../dist/main.js", import.meta.url));

/** A free TCP port on this machine. */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const address = server.address();
  server.close();
  if (address === null || typeof address === "string") throw new Error("no port");
  return address.port;
}

/** Poll `predicate` until it holds; false on timeout. */
export async function waitFor(
  predicate: () => boolean | Promise<boolean>,
  timeoutMs = PATIENCE_MS,
): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    if (await predicate()) return true;
    await sleep(50);
  }
  return predicate();
}

export type LogRecord = Record<string, unknown> & {
  level: string;
  logger: string;
  message: string;
};

/** One bot process. */
export class BotProcess {
  readonly port: number;
  readonly child: ChildProcess;
  /** Every JSON log line, parsed; `output` holds stdout and stderr as they came. */
  readonly logs: LogRecord[] = [];
  output = "";
  exitCode: number | null = null;
  readonly exited: Promise<number | null>;

  private constructor(port: number, args: string[], env: Record<string, string>) {
    this.port = port;
    // Only what is given: the tests never inherit a developer's .env or settings.
    this.child = spawn(process.execPath, [MAIN, ...args], {
      cwd: env.BOT_CWD ?? ROOT,
      env: { PATH: process.env.PATH ?? "", PORT: String(port), LOG_FORMAT: "json", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let partial = "";
    this.child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
      this.output += chunk;
      partial += chunk;
      const lines = partial.split("\n");
      partial = lines.pop() ?? "";
      for (const line of lines) {
        try {
          this.logs.push(JSON.parse(line) as LogRecord);
        } catch {
          // not a log line (check's own output)
        }
      }
    });
    this.child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
      this.output += chunk;
    });
    this.exited = new Promise((resolve) => {
      this.child.once("exit", (code) => {
        this.exitCode = code;
        resolve(code);
      });
    });
  }

  /** Start `node dist/main.js args` with exactly these settings (plus PATH, PORT, LOG_FORMAT). */
  static async start(env: Record<string, string>, args: string[] = []): Promise<BotProcess> {
    return new BotProcess(await freePort(), args, env);
  }

  /** GET a path of the health server: status and parsed body, or null if nothing answers. */
  async get(path: string): Promise<{ status: number; body: Record<string, unknown> } | null> {
    try {
      const response = await fetch(`http://127.0.0.1:${String(this.port)}${path}`, {
        signal: AbortSignal.timeout(5000),
      });
      return { status: response.status, body: (await response.json()) as Record<string, unknown> };
    } catch {
      return null;
    }
  }

  async health(): Promise<{ status: number; body: Record<string, unknown> } | null> {
    return this.get("/health");
  }

  /** Wait for a log line whose message contains `text`. */
  async waitForLog(text: string, timeoutMs = PATIENCE_MS): Promise<LogRecord> {
    const found = () => this.logs.find((record) => record.message.includes(text));
    if (!(await waitFor(() => found() !== undefined || this.exitCode !== null, timeoutMs))) {
      throw new Error(`no log line with "${text}" within ${String(timeoutMs)} ms:\n${this.output}`);
    }
    const record = found();
    if (record === undefined) throw new Error(`exited before logging "${text}":\n${this.output}`);
    return record;
  }

  /** Wait until the bot's gateway session is ready (its /ready answers 200). */
  async waitUntilReady(): Promise<void> {
    if (
      !(await waitFor(
        async () => (await this.get("/ready"))?.status === 200 || this.exitCode !== null,
      ))
    ) {
      throw new Error(`not ready within ${String(PATIENCE_MS)} ms:\n${this.output}`);
    }
    if (this.exitCode !== null)
      throw new Error(`exited with ${String(this.exitCode)}:\n${this.output}`);
  }

  /** The exit status, or a thrown error if the process is still running after `timeoutMs`. */
  async exit(timeoutMs = PATIENCE_MS): Promise<number | null> {
    const cancel = new AbortController();
    const timer = sleep(timeoutMs, "timeout" as const, { signal: cancel.signal }).catch(() => null);
    try {
      const result = await Promise.race([this.exited, timer]);
      if (result === "timeout") {
        throw new Error(`still running after ${String(timeoutMs)} ms:\n${this.output}`);
      }
      return result;
    } finally {
      cancel.abort(); // no timer left to keep the test process alive
    }
  }

  /** Make sure the process is gone (test cleanup). */
  async kill(): Promise<void> {
    if (this.exitCode === null && this.child.signalCode === null) {
      this.child.kill("SIGKILL");
      await this.exited;
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.kill();
  }
}
