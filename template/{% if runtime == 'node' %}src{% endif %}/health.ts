/**
 * The HTTP health server on $PORT.
 *
 * Railway polls GET /health during a deploy and makes the new instance live
 * only once it answers 200, so /health answers from the first moment, also
 * while the instance is a standby waiting for the redeploy lock: a standby is
 * healthy. GET /ready says whether this instance is connected to Discord right
 * now. /health turns 503 when the active instance has had no gateway session
 * for longer than GATEWAY_OUTAGE_LIMIT_SECONDS: a bot that cannot reach
 * Discord is not healthy, even if discord.js keeps trying.
 *
 * Answers are built from live state only: no setting, URL or token ever
 * appears in them. node:http does the protocol; the limits below keep a slow
 * or hostile client from holding the server or its memory.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { DeadlineError, withDeadline } from "./deadline.ts";
import { getLogger } from "./logging.ts";

const log = getLogger("health");

/** A dependency check: true when the service answers. */
export type Check = () => Promise<boolean>;

/** A dependency that does not answer within this time counts as down. */
export const CHECK_TIMEOUT_MS = 2000;
/**
 * How long one round of dependency checks answers for: every /health request
 * in the meantime shares it, so a flood of requests costs each dependency one
 * check a second, not one per request.
 */
export const CHECK_CACHE_MS = 1000;
/**
 * Most connections served at once; one more is closed on arrival, unanswered.
 * Railway's probe needs one, and each costs a socket and buffers: without a
 * cap, idle clients alone could hold the process's memory and descriptors.
 */
export const MAX_CONNECTIONS = 64;
/** Longest request line plus headers accepted; a health check sends a few hundred bytes. */
const MAX_HEADER_BYTES = 8 * 1024;
/** How long a keep-alive connection may sit idle before the server closes it. */
const IDLE_TIMEOUT_MS = 30_000;
/** How long a client may take to send one whole request once it has begun. */
const REQUEST_TIMEOUT_MS = 10_000;

/** What /health reads from the Discord client, once this instance is active. */
export interface Gateway {
  /** Round trip of the last heartbeat in ms; -1 before the first one. */
  readonly ping: number;
  readonly guildCount: number;
  /** Since when (performance.now()) no session has been ready; null while one is. */
  readonly disconnectedSince: number | null;
  connected(): boolean;
  closed(): boolean;
}

async function runCheck(name: string, check: Check): Promise<boolean> {
  try {
    return await withDeadline(check(), CHECK_TIMEOUT_MS);
  } catch (error) {
    // Any failure means "down"; the reason is logged.
    if (error instanceof DeadlineError) {
      log.warning(`Health check ${name} did not answer within ${String(CHECK_TIMEOUT_MS)} ms`);
    } else {
      log.warning(`Health check ${name} failed`, { exception: error });
    }
    return false;
  }
}

type Answer = [status: number, body: Record<string, unknown>];

/** Serves /health and /ready for one bot process. */
export class HealthServer {
  /** The Discord client, once this instance is active. */
  gateway: Gateway | null = null;
  #checks: Map<string, Check>;
  readonly #version: string;
  readonly #outageLimitSeconds: number;
  readonly #started = performance.now();
  readonly #server: Server;
  /** The latest round of checks, and when it ended (null while it runs). */
  #round: Promise<Map<string, boolean>> | null = null;
  #roundEnded: number | null = null;

  constructor(options: {
    checks: Record<string, Check>;
    version: string;
    gatewayOutageLimitSeconds: number;
    /** Shorter bounds for tests: idle between requests, and one whole request. */
    timeoutsMs?: { idle: number; request: number };
  }) {
    this.#checks = new Map(Object.entries(options.checks));
    this.#version = options.version;
    this.#outageLimitSeconds = options.gatewayOutageLimitSeconds;
    const idle = options.timeoutsMs?.idle ?? IDLE_TIMEOUT_MS;
    const request = options.timeoutsMs?.request ?? REQUEST_TIMEOUT_MS;
    this.#server = createServer(
      {
        maxHeaderSize: MAX_HEADER_BYTES,
        requestTimeout: request,
        headersTimeout: request,
        keepAliveTimeout: idle,
        // How often requestTimeout is enforced (30 s by default).
        connectionsCheckingInterval: Math.min(1000, request),
      },
      (request, response) => void this.#handle(request, response),
    );
    // A connection that sends nothing at all is closed after the request
    // timeout too (the default, 0, would keep a silent socket open).
    this.#server.timeout = request;
    this.#server.maxConnections = MAX_CONNECTIONS;
  }

  /** Check the dependencies this way from now on (the active bot's own clients). */
  useChecks(checks: Record<string, Check>): void {
    this.#checks = new Map(Object.entries(checks));
    this.#round = null; // the next request checks with these at once
  }

  /** Each dependency's state, from a round of checks at most CHECK_CACHE_MS old. */
  checkDependencies(): Promise<Map<string, boolean>> {
    const fresh =
      this.#round !== null &&
      (this.#roundEnded === null || performance.now() - this.#roundEnded < CHECK_CACHE_MS);
    if (this.#round === null || !fresh) {
      this.#roundEnded = null;
      const checks = this.#checks;
      const round = Promise.all(
        [...checks].map(async ([name, check]) => [name, await runCheck(name, check)] as const),
      ).then((results) => new Map(results));
      this.#round = round;
      void round.finally(() => {
        if (this.#round === round) this.#roundEnded = performance.now();
      });
    }
    return this.#round;
  }

  /** The port listened on (useful when asked for port 0). */
  get port(): number {
    return (this.#server.address() as AddressInfo).port;
  }

  async start(host: string, port: number): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once("error", reject);
      this.#server.listen(port, host, () => {
        this.#server.off("error", reject);
        resolve();
      });
    });
    log.info(`Health server listening on port ${String(this.port)}`);
  }

  async stop(): Promise<void> {
    const closed = new Promise<void>((resolve) =>
      this.#server.close(() => {
        resolve();
      }),
    );
    // Idle keep-alive connections would hold close() open until they time out.
    this.#server.closeAllConnections();
    await closed;
  }

  gatewayState(): "connected" | "connecting" | "disconnected" {
    const gateway = this.gateway;
    if (gateway === null || gateway.closed()) return "disconnected";
    return gateway.connected() ? "connected" : "connecting";
  }

  /** How long the active instance has been without a ready gateway session. */
  gatewayOutageSeconds(): number {
    const gateway = this.gateway;
    if (gateway === null || gateway.connected() || gateway.disconnectedSince === null) return 0;
    return (performance.now() - gateway.disconnectedSince) / 1000;
  }

  /** The /health status code and body. */
  async report(): Promise<Answer> {
    const results = await this.checkDependencies();
    const services = Object.fromEntries(
      [...results].map(([name, ok]) => [name, ok ? "ok" : "down"]),
    );
    const outage = this.gatewayOutageSeconds();
    const healthy = [...results.values()].every(Boolean) && outage <= this.#outageLimitSeconds;
    const state = this.gatewayState();
    const ping = this.gateway?.ping ?? -1;
    const body = {
      status: healthy ? "ok" : "unavailable",
      role: this.gateway === null ? "standby" : "active",
      uptime_seconds: Math.round(performance.now() - this.#started) / 1000,
      timestamp: new Date().toISOString(),
      version: this.#version,
      gateway: {
        state,
        // discord.js reports -1 until the first heartbeat is answered.
        latency_ms: state === "connected" && ping >= 0 ? Math.round(ping * 10) / 10 : null,
        guilds: this.gateway?.guildCount ?? 0,
        outage_seconds: Math.round(outage * 10) / 10,
      },
      ...services,
      rss_bytes: process.memoryUsage.rss(),
    };
    // A standby is healthy: Railway must make it live so the old instance is
    // stopped and the lock handed over. Its gateway is "disconnected" by
    // design, and no outage.
    return [healthy ? 200 : 503, body];
  }

  /** The /ready status code and body. */
  readiness(): Promise<Answer> {
    const connected = this.gatewayState() === "connected";
    return Promise.resolve([connected ? 200 : 503, { ready: connected }]);
  }

  async #answer(request: IncomingMessage): Promise<Answer> {
    const path = (request.url ?? "").split("?", 1)[0];
    const route =
      path === "/health" ? () => this.report() : path === "/ready" ? () => this.readiness() : null;
    if (route === null) return [404, { error: "not found" }];
    if (request.method !== "GET" && request.method !== "HEAD") {
      return [405, { error: "only GET and HEAD are allowed" }];
    }
    try {
      return await route();
    } catch (error) {
      log.error(`Health route ${String(path)} failed`, { exception: error });
      return [500, { error: "internal error" }];
    }
  }

  async #handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    // These routes take no body: read and drop whatever comes, up to a limit.
    let received = 0;
    request.on("data", (chunk: Buffer) => {
      received += chunk.length;
      if (received > 64 * 1024) request.destroy();
    });
    const [status, body] = await this.#answer(request);
    const payload = JSON.stringify(body);
    const headers: Record<string, string | number> = {
      "Content-Type": "application/json; charset=utf-8",
      "Content-Length": Buffer.byteLength(payload),
      "Cache-Control": "no-store",
    };
    if (status === 405) headers.Allow = "GET, HEAD";
    if (response.destroyed) return;
    response.writeHead(status, headers);
    response.end(request.method === "HEAD" ? undefined : payload);
  }
}
