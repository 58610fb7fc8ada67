/**
 * A local stand-in for Discord's REST API and gateway, enough for an unmodified discord.js 14
 * `Client` to log in, receive slash commands and answer them.
 *
 * It speaks the real protocol, so the bot under test runs unmodified except for where REST
 * lives (`rest: { api: fake.url + "/api" }`; the gateway address comes from GET /gateway/bot):
 *
 * - REST under /api/v10: GET /users/@me, GET /applications/@me and /oauth2/applications/@me,
 *   GET /gateway and /gateway/bot, PUT of global and guild application commands (recorded), GET
 *   of them (what the last PUT stored, in the shape Discord answers with: its own fields added,
 *   empty and default ones left out), the interaction callback (recorded: which instance
 *   answered) and the interaction webhook routes behind `editReply`, `fetchReply`, `followUp`
 *   and `deleteReply`. Anything else is a 404.
 * - gateway at /gateway: HELLO (op 10), IDENTIFY (op 2), RESUME (op 6), the READY and RESUMED
 *   dispatches, HEARTBEAT (op 1) and HEARTBEAT_ACK (op 11), in plain-text JSON frames without
 *   compression, and INTERACTION_CREATE dispatches on demand. Other ops are ignored.
 *
 * Like Discord with one bot token, it sends each interaction to every open session, so two
 * instances handling events at once show up as an interaction answered twice. Each instance may
 * log in with its own token of the form `<token>.<name>`, which says whose session answered. It
 * counts gateway sessions open at the same time, and can close them all and refuse new ones for a
 * while (a gateway outage).
 *
 * Ids (interactions, commands, users, sessions) are strings throughout, as in Discord's JSON.
 * Times are `performance.now()` milliseconds.
 */
import { createServer } from "node:http";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { WebSocketServer } from "ws";
import type { RawData, WebSocket } from "ws";

export type Json = string | number | boolean | null | Json[] | JsonObject;
// An interface, not a Record: the type refers to itself through Json.

export interface JsonObject {
  [key: string]: Json;
}

export const APPLICATION_ID = "1000000000000000001";
export const BOT_USER = {
  id: APPLICATION_ID,
  username: "test-bot",
  discriminator: "0",
  global_name: null,
  avatar: null,
  bot: true,
  flags: 0,
  verified: true,
  mfa_enabled: false,
} satisfies JsonObject;
export const OWNER = {
  id: "1000000000000000002",
  username: "owner",
  discriminator: "0",
  avatar: null,
} satisfies JsonObject;
export const USER = {
  id: "1000000000000000003",
  username: "user",
  discriminator: "0",
  avatar: null,
} satisfies JsonObject;
/** The DM channel every interaction comes from. */
export const CHANNEL_ID = "4000000000000000001";
/** What the bot may do in that DM: view, send, embed, attach, read history, react, emojis. */
const DM_PERMISSIONS = "379968";
const HEARTBEAT_INTERVAL = 41_250;
const API = "/api/v10";
/** How long stop() and closeSessions() wait for a clean close before cutting connections. */
const CLOSE_GRACE_MS = 250;

/** One option of a slash command use, as in `data.options` of an interaction. */
export interface InteractionOption {
  name: string;
  type: number;
  /** A value option's value; a subcommand (1) or group (2) has `options` instead. */
  value?: string | number | boolean;
  options?: InteractionOption[];
}

/** Options as Discord sends them: only the fields it sets, subcommands nested. */
function optionPayload(options: InteractionOption[]): JsonObject[] {
  return options.map(({ name, type, value, options: nested }) => ({
    name,
    type,
    ...(value === undefined ? {} : { value }),
    ...(nested === undefined ? {} : { options: optionPayload(nested) }),
  }));
}

export interface SentInteraction {
  /** `performance.now()` just before the first session was sent it. */
  sentAt: number;
  /** The instance name of each session it was sent to. */
  sentTo: string[];
}

export interface CommandSync {
  /** The request path, such as `/api/v10/applications/<id>/commands`. */
  path: string;
  /** The commands as the bot sent them. */
  payload: JsonObject[];
}

/** What the fake has seen. */
export class Recorded {
  /** The `d` of every IDENTIFY, token included. */
  identifies: JsonObject[] = [];
  /** Every PUT of application commands. */
  commandSyncs: CommandSync[] = [];
  /** Gateway sessions identified or resumed and not closed yet. */
  openSessions = 0;
  /** The most sessions ever open at once. */
  maxSessions = 0;
  /** Gateway sessions ever identified or resumed. */
  sessionsOpened = 0;
  /** Every HTTP request as "METHOD /path" (no query string), unknown routes included. */
  restCalls: string[] = [];
  /** Interaction id -> when it was sent and to which instances. */
  interactions = new Map<string, SentInteraction>();
  /** Interaction id -> the instance name of each callback that answered it. */
  answers = new Map<string, string[]>();
  /** Interaction id -> the text of its reply (the first callback's content). */
  replies = new Map<string, string>();
  /** Interaction id -> the body of each callback that answered it. */
  callbacks = new Map<string, JsonObject[]>();
  /** Instance name -> when each of its answers arrived. */
  answeredAt = new Map<string, number[]>();
}

interface Session {
  name: string;
  instance: string;
  ws: WebSocket;
  sequence: number;
}

interface Reply {
  status: number;
  body?: Json;
}

interface RestRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  params: Partial<Record<string, string>>;
  authorised: boolean;
  body: Json | undefined;
}

interface Route {
  method: string;
  pattern: RegExp;
  /** Whether it needs `Authorization: Bot <token>` (the interaction routes do not). */
  auth: boolean;
  handle: (request: RestRequest) => Reply;
}

export interface FakeDiscordOptions {
  /**
   * Close every gateway session with this code after IDENTIFY or RESUME (4014: disallowed
   * intents), instead of sending READY.
   */
  closeCode?: number;
}

/** Start with `await using discord = await FakeDiscord.started(token)` or new + start(). */
export class FakeDiscord {
  readonly token: string;
  readonly closeCode: number | null;
  readonly recorded = new Recorded();
  /** While set, new gateway connections are refused with HTTP 503. */
  refuseGateway = false;
  /** While set, GETs of the application commands answer this HTTP status. */
  commandFetchStatus: number | null = null;
  /** Commands as Discord stores them, per API path (see `stored`). */
  readonly commands = new Map<string, JsonObject[]>();
  port = 0;

  #server: Server | null = null;
  readonly #gateway = new WebSocketServer({ noServer: true, perMessageDeflate: false });
  /** Sockets answered with an HTTP error instead of a gateway upgrade, not closed yet. */
  readonly #refused = new Set<Duplex>();
  readonly #sessions = new Map<string, Session>();
  readonly #commandIds = new Map<string, string>();
  /** Interaction token -> the id of its original response message. */
  readonly #originals = new Map<string, string>();
  /** Messages sent through interactions, by id, as last sent or edited. */
  readonly #messages = new Map<string, JsonObject>();
  #nextId = 3000000000000000000n;
  #nextSession = 1;
  readonly #routes: Route[];

  constructor(token: string, options: FakeDiscordOptions = {}) {
    this.token = token;
    this.closeCode = options.closeCode ?? null;
    const guild = "(?<guild>[^/]+)";
    const webhook = "^/webhooks/(?<app>[^/]+)/(?<token>[^/]+)";
    const route = (
      method: string,
      pattern: string,
      auth: boolean,
      handle: (request: RestRequest) => Reply,
    ): Route => ({ method, pattern: new RegExp(pattern), auth, handle });
    this.#routes = [
      route("GET", "^/users/@me$", true, () => json(BOT_USER)),
      route("GET", "^/applications/@me$", true, () => json(this.#application())),
      route("GET", "^/oauth2/applications/@me$", true, () => json(this.#application())),
      route("GET", "^/gateway$", false, () => json({ url: this.#gatewayUrl() })),
      route("GET", "^/gateway/bot$", true, () => json(this.#gatewayBot())),
      route("PUT", "^/applications/[^/]+/commands$", true, (r) => this.#sync(r)),
      route("PUT", `^/applications/[^/]+/guilds/${guild}/commands$`, true, (r) => this.#sync(r)),
      route("GET", "^/applications/[^/]+/commands$", true, (r) => this.#fetchCommands(r)),
      route("GET", `^/applications/[^/]+/guilds/${guild}/commands$`, true, (r) =>
        this.#fetchCommands(r),
      ),
      route("POST", "^/interactions/(?<id>[^/]+)/(?<token>[^/]+)/callback$", false, (r) =>
        this.#callback(r),
      ),
      route("POST", `${webhook}$`, false, (r) => json(this.#message(r, this.#newId()))),
      route("GET", `${webhook}/messages/(?<message>[^/]+)$`, false, (r) => this.#fetchMessage(r)),
      route("PATCH", `${webhook}/messages/(?<message>[^/]+)$`, false, (r) =>
        json(this.#message(r, this.#messageId(r))),
      ),
      route("DELETE", `${webhook}/messages/(?<message>[^/]+)$`, false, (r) => {
        this.#messages.delete(this.#messageId(r));
        return { status: 204 };
      }),
    ];
  }

  /** A fake that is already listening; for `await using fake = await FakeDiscord.started(t)`. */
  static async started(token: string, options: FakeDiscordOptions = {}): Promise<FakeDiscord> {
    const fake = new FakeDiscord(token, options);
    await fake.start();
    return fake;
  }

  /** Where to point the bot: REST is under `${url}/api/v10`, the gateway at `${url}/gateway`. */
  get url(): string {
    return `http://127.0.0.1:${String(this.port)}`;
  }

  /** The bot's settings that point it here: the URL, and the flag that allows a local fake. */
  get apiSettings(): { DISCORD_API_URL: string; DISCORD_API_URL_ALLOW_LOCAL: string } {
    return { DISCORD_API_URL: this.url, DISCORD_API_URL_ALLOW_LOCAL: "1" };
  }

  /** Listen on 127.0.0.1, on a free port. */
  async start(): Promise<void> {
    if (this.#server !== null) throw new Error("FakeDiscord is already started.");
    const server = createServer((request, response) => {
      this.#serve(request, response).catch((error: unknown) => {
        if (!response.headersSent)
          send(response, { status: 500, body: { message: String(error), code: 0 } });
        else response.destroy();
      });
    });
    server.on("upgrade", (request: IncomingMessage, socket: Duplex, head: Buffer) => {
      this.#upgrade(request, socket, head);
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => {
        server.off("error", reject);
        resolve();
      });
    });
    const address = server.address();
    if (address === null || typeof address === "string") throw new Error("No TCP address.");
    this.port = address.port;
    this.#server = server;
  }

  /** Close every connection, gateway sessions included, and the server. */
  async stop(): Promise<void> {
    const server = this.#server;
    if (server === null) return;
    this.#server = null;
    const closed = new Promise<void>((resolve) => {
      server.close(() => {
        resolve();
      });
    });
    server.closeAllConnections();
    for (const socket of this.#refused) socket.destroy();
    await closeAll([...this.#gateway.clients], 1001, "Server stopping.");
    this.#gateway.close();
    await closed;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  /** Poll the recorded state every 50 ms until `predicate` holds; false on timeout. */
  async waitUntil(
    predicate: (recorded: Recorded) => boolean,
    timeoutMs = 30_000,
  ): Promise<boolean> {
    const deadline = performance.now() + timeoutMs;
    while (performance.now() < deadline) {
      if (predicate(this.recorded)) return true;
      await sleep(50);
    }
    return predicate(this.recorded);
  }

  /**
   * Send a slash command use to every open session; its interaction id. By
   * default it comes from the bot's DM; with `guildId`, from a server channel.
   */
  async sendInteraction(
    command = "help",
    options?: InteractionOption[],
    where: { guildId?: string; userId?: string } = {},
  ): Promise<string> {
    const id = this.#newId();
    const sent: SentInteraction = { sentAt: performance.now(), sentTo: [] };
    this.recorded.interactions.set(id, sent);
    const data: JsonObject = { id: this.#commandIds.get(command) ?? "0", name: command, type: 1 };
    if (options !== undefined) {
      data.options = optionPayload(options);
    }
    for (const session of [...this.#sessions.values()]) {
      session.sequence += 1;
      const user = where.userId === undefined ? USER : { ...USER, id: where.userId };
      const payload: JsonObject = {
        id,
        application_id: APPLICATION_ID,
        type: 2,
        // The callback URL carries the token: it says who answered.
        token: `${session.instance}.${session.name}.${id}`,
        version: 1,
        data,
        user,
        channel: { id: CHANNEL_ID, type: 1, flags: 0, last_message_id: null, recipients: [user] },
        channel_id: CHANNEL_ID,
        locale: "en-US",
        app_permissions: DM_PERMISSIONS,
        attachment_size_limit: 8388608,
        entitlements: [],
        // Installed to guilds, used in the bot's DM: guild id "0".
        authorizing_integration_owners: { "0": "0" },
        context: 1,
      };
      if (where.guildId !== undefined) {
        // Used in a server's text channel: a member, not a user, and context 0.
        delete payload.user;
        payload.guild_id = where.guildId;
        payload.guild = { id: where.guildId, locale: "en-US", features: [] };
        payload.guild_locale = "en-US";
        payload.member = {
          user,
          roles: [],
          joined_at: "2026-01-01T00:00:00.000000+00:00",
          deaf: false,
          mute: false,
          flags: 0,
          permissions: DM_PERMISSIONS,
        };
        payload.channel = { id: CHANNEL_ID, type: 0, guild_id: where.guildId, name: "general" };
        payload.authorizing_integration_owners = { "0": where.guildId };
        payload.context = 0;
      }
      const frame = { op: 0, t: "INTERACTION_CREATE", s: session.sequence, d: payload };
      if (await sendFrame(session.ws, frame)) sent.sentTo.push(session.instance);
    }
    return id;
  }

  /**
   * Close every gateway session with `code`, as Discord does. 4000 (unknown error, the default)
   * is an outage the client recovers from; 4004 (token reset) and 4010 to 4014 are the codes
   * after which Discord will not take the session back.
   */
  async closeSessions(code = 4000): Promise<void> {
    const sockets = [...this.#sessions.values()].map((session) => session.ws);
    await closeAll(sockets, code, "Gateway outage.");
  }

  accepts(token: string): boolean {
    return token === this.token || token.startsWith(`${this.token}.`);
  }

  /** The `name` of a `<token>.<name>` token ("" for the plain one). */
  static instanceOf(token: string): string {
    return token.includes(".") ? token.slice(token.lastIndexOf(".") + 1) : "";
  }

  // REST

  async #serve(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? "/", "http://127.0.0.1");
    const method = request.method ?? "GET";
    this.recorded.restCalls.push(`${method} ${url.pathname}`);
    const text = await readBody(request);
    const path = url.pathname.startsWith(`${API}/`) ? url.pathname.slice(API.length) : null;
    for (const route of this.#routes) {
      const match = path === null ? null : route.pattern.exec(path);
      if (match === null || route.method !== method) continue;
      const authorised = this.#authorised(request);
      if (route.auth && !authorised) {
        send(response, { status: 401, body: { message: "401: Unauthorized", code: 0 } });
        return;
      }
      let body: Json | undefined;
      if (text !== "" && request.headers["content-type"]?.startsWith("application/json")) {
        try {
          body = JSON.parse(text) as Json;
        } catch {
          send(response, { status: 400, body: { message: "400: Bad Request", code: 50109 } });
          return;
        }
      }
      const params: Partial<Record<string, string>> = {};
      for (const [key, value] of Object.entries(match.groups ?? {})) {
        params[key] = decodeURIComponent(value);
      }
      send(
        response,
        route.handle({
          method,
          path: url.pathname,
          query: url.searchParams,
          params,
          authorised,
          body,
        }),
      );
      return;
    }
    send(response, { status: 404, body: { message: "404: Not Found", code: 0 } });
  }

  #authorised(request: IncomingMessage): boolean {
    const header = request.headers.authorization ?? "";
    const [scheme, token] = header.split(" ", 2);
    return scheme === "Bot" && token !== undefined && this.accepts(token);
  }

  #application(): JsonObject {
    return {
      id: APPLICATION_ID,
      name: "test-bot",
      description: "",
      icon: null,
      bot_public: false,
      bot_require_code_grant: false,
      owner: OWNER,
      verify_key: "0".repeat(64),
      flags: 0,
      bot: BOT_USER,
    };
  }

  #gatewayUrl(): string {
    return `ws://127.0.0.1:${String(this.port)}/gateway`;
  }

  #gatewayBot(): JsonObject {
    return {
      url: this.#gatewayUrl(),
      shards: 1,
      session_start_limit: { total: 1000, remaining: 999, reset_after: 0, max_concurrency: 1 },
    };
  }

  #sync(request: RestRequest): Reply {
    if (!Array.isArray(request.body) || !request.body.every(isObject)) {
      return { status: 400, body: { message: "400: Bad Request", code: 50035 } };
    }
    const payload = request.body;
    this.recorded.commandSyncs.push({ path: request.path, payload });
    const guild = request.params.guild ?? null;
    const created = payload.map((command, index): JsonObject => {
      const id = String(2000000000000000000n + BigInt(index));
      if (typeof command.name === "string") this.#commandIds.set(command.name, id);
      return {
        ...command,
        // Discord fills in the type: discord.js leaves it out unless the command sets one.
        type: command.type ?? 1,
        id,
        application_id: APPLICATION_ID,
        guild_id: guild,
        version: "1",
        default_member_permissions: command.default_member_permissions ?? null,
      };
    });
    this.commands.set(request.path, created.map(stored));
    return json(created);
  }

  #fetchCommands(request: RestRequest): Reply {
    if (this.commandFetchStatus !== null) {
      const message = { message: "Refused by the test.", code: 0 };
      return { status: this.commandFetchStatus, body: message };
    }
    return json(this.commands.get(request.path) ?? []);
  }

  #callback(request: RestRequest): Reply {
    const id = request.params.id ?? "";
    const token = request.params.token ?? "";
    const instance = token.split(".", 1)[0] ?? "";
    const now = performance.now();
    const answers = this.recorded.answers.get(id) ?? [];
    answers.push(instance);
    this.recorded.answers.set(id, answers);
    const times = this.recorded.answeredAt.get(instance) ?? [];
    times.push(now);
    this.recorded.answeredAt.set(instance, times);
    // A reply (4) or a deferred reply (5) creates the original message, as on Discord.
    const body = isObject(request.body) ? request.body : {};
    this.recorded.callbacks.set(id, [...(this.recorded.callbacks.get(id) ?? []), body]);
    const type = typeof body.type === "number" ? body.type : 4;
    const data = isObject(body.data) ? body.data : {};
    const flags = typeof data.flags === "number" ? data.flags : 0;
    const message =
      type === 4 || type === 5
        ? this.#message({ ...request, body: data }, this.#originalId(token))
        : null;
    if (message !== null && !this.recorded.replies.has(id)) {
      this.recorded.replies.set(id, typeof message.content === "string" ? message.content : "");
    }
    // Like Discord: no body unless asked for one (discord.js 14.28 sends ?with_response=false).
    if (request.query.get("with_response") !== "true") return { status: 204 };
    return json({
      interaction: {
        id,
        type: 2,
        response_message_id: message?.id ?? null,
        response_message_loading: type === 5,
        response_message_ephemeral: (flags & 64) !== 0,
      },
      resource: message === null ? { type } : { type, message },
    });
  }

  #newId(): string {
    const id = this.#nextId;
    this.#nextId += 1n;
    return String(id);
  }

  #originalId(token: string): string {
    let id = this.#originals.get(token);
    if (id === undefined) {
      id = this.#newId();
      this.#originals.set(token, id);
    }
    return id;
  }

  #messageId(request: RestRequest): string {
    const message = request.params.message ?? "@original";
    return message === "@original" ? this.#originalId(request.params.token ?? "") : message;
  }

  #fetchMessage(request: RestRequest): Reply {
    const message = this.#messages.get(this.#messageId(request));
    return message === undefined
      ? { status: 404, body: { message: "Unknown Message", code: 10008 } }
      : json(message);
  }

  /** A message the bot sent or edited through an interaction, as Discord answers with it. */
  #message(request: RestRequest, id: string): JsonObject {
    const data = isObject(request.body) ? request.body : {};
    const before = this.#messages.get(id);
    const field = (key: string, fallback: Json): Json => data[key] ?? before?.[key] ?? fallback;
    const message: JsonObject = {
      id,
      type: 20,
      channel_id: CHANNEL_ID,
      author: BOT_USER,
      content: field("content", ""),
      timestamp: before?.timestamp ?? new Date().toISOString(),
      edited_timestamp: before === undefined ? null : new Date().toISOString(),
      tts: false,
      mention_everyone: false,
      mentions: [],
      mention_roles: [],
      attachments: [],
      embeds: field("embeds", []),
      components: field("components", []),
      pinned: false,
      flags: field("flags", 0),
      application_id: APPLICATION_ID,
      webhook_id: APPLICATION_ID,
    };
    this.#messages.set(id, message);
    return message;
  }

  // Gateway

  #upgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on("error", () => {
      // The client went away; nothing to do.
    });
    const url = new URL(request.url ?? "/", "http://127.0.0.1");
    if (url.pathname !== "/gateway") {
      this.#refuse(socket, "404 Not Found", "Not a gateway.");
    } else if (this.refuseGateway || this.#server === null) {
      this.#refuse(socket, "503 Service Unavailable", "Gateway unavailable.");
    } else {
      this.#gateway.handleUpgrade(request, socket, head, (ws) => {
        this.#connected(ws);
      });
    }
  }

  #refuse(socket: Duplex, status: string, text: string): void {
    this.#refused.add(socket);
    socket.once("close", () => this.#refused.delete(socket));
    const headers = [
      `HTTP/1.1 ${status}`,
      "Connection: close",
      "Content-Type: text/plain",
      `Content-Length: ${String(Buffer.byteLength(text))}`,
    ];
    socket.end(`${headers.join("\r\n")}\r\n\r\n${text}`, () => socket.destroy());
  }

  #connected(ws: WebSocket): void {
    let session: Session | null = null;
    ws.on("error", () => {
      // A client that went away mid-frame; "close" follows.
    });
    ws.on("close", () => {
      if (session !== null) {
        this.#sessions.delete(session.name);
        this.recorded.openSessions -= 1;
      }
    });
    ws.on("message", (data: RawData, isBinary: boolean) => {
      if (isBinary || ws.readyState !== ws.OPEN) return;
      let frame: Json;
      try {
        frame = JSON.parse(rawText(data)) as Json;
      } catch {
        return;
      }
      if (!isObject(frame)) return;
      const { op, d } = frame;
      if (op === 1) {
        void sendFrame(ws, { op: 11, d: null, s: null, t: null });
      } else if ((op === 2 || op === 6) && session === null && isObject(d)) {
        const token = typeof d.token === "string" ? d.token : "";
        if (!this.accepts(token)) {
          ws.close(4004, "Authentication failed.");
        } else if (this.closeCode !== null) {
          ws.close(this.closeCode, "Disallowed intent(s).");
        } else {
          session = this.#open(token, ws);
          if (op === 2) {
            this.recorded.identifies.push(d);
            void sendFrame(ws, { op: 0, t: "READY", s: 1, d: this.#ready(session.name) });
          } else {
            // Nothing was missed that a test cares about: resume.
            const seq = d.seq;
            session.sequence = typeof seq === "number" && seq > 0 ? seq : 1;
            void sendFrame(ws, { op: 0, t: "RESUMED", s: session.sequence, d: {} });
          }
        }
      }
    });
    void sendFrame(ws, { op: 10, d: { heartbeat_interval: HEARTBEAT_INTERVAL }, s: null, t: null });
  }

  #open(token: string, ws: WebSocket): Session {
    const name = `session-${String(this.#nextSession)}`;
    this.#nextSession += 1;
    const session: Session = { name, instance: FakeDiscord.instanceOf(token), ws, sequence: 1 };
    this.#sessions.set(name, session);
    this.recorded.openSessions += 1;
    this.recorded.sessionsOpened += 1;
    this.recorded.maxSessions = Math.max(this.recorded.maxSessions, this.recorded.openSessions);
    return session;
  }

  #ready(session: string): JsonObject {
    return {
      v: 10,
      user: BOT_USER,
      guilds: [],
      session_id: session,
      resume_gateway_url: this.#gatewayUrl(),
      application: { id: APPLICATION_ID, flags: 0 },
    };
  }
}

/**
 * A command as Discord's GET returns it, not as it was sent.
 *
 * Discord adds fields of its own, fills contexts and integration_types with its defaults, and
 * leaves out empty options and localizations and fields that hold their default (an option's
 * `required: false`); a guild command has no `dm_permission`.
 */
export function stored(command: JsonObject): JsonObject {
  const trim = (data: JsonObject): JsonObject => {
    const kept: JsonObject = {};
    for (const [key, value] of Object.entries(data)) {
      if (key === "options" && Array.isArray(value) && value.length > 0) {
        kept[key] = value.map((option) => (isObject(option) ? trim(option) : option));
      } else if (key === "default_member_permissions" || !isUnset(value)) {
        kept[key] = value;
      }
    }
    return kept;
  };
  const result = trim(command);
  if (isTruthy(command.guild_id)) {
    delete result.dm_permission;
  } else {
    result.dm_permission = command.dm_permission ?? true;
  }
  const contexts = command.contexts;
  result.contexts = Array.isArray(contexts) && contexts.length > 0 ? contexts : [0, 1, 2];
  const types = command.integration_types;
  result.integration_types = Array.isArray(types) && types.length > 0 ? types : [0];
  result.nsfw = command.nsfw ?? false;
  return result;
}

function isUnset(value: Json | undefined): boolean {
  if (value === undefined || value === null || value === false) return true;
  if (Array.isArray(value)) return value.length === 0;
  return isObject(value) && Object.keys(value).length === 0;
}

function isTruthy(value: Json | undefined): boolean {
  return value !== undefined && value !== null && value !== false && value !== "" && value !== 0;
}

function isObject(value: Json | undefined): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function json(body: Json, status = 200): Reply {
  return { status, body };
}

function send(response: ServerResponse, reply: Reply): void {
  if (reply.body === undefined) {
    response.writeHead(reply.status).end();
    return;
  }
  // discord.js parses a body only when Content-Type starts with application/json.
  const text = JSON.stringify(reply.body);
  response
    .writeHead(reply.status, {
      "Content-Type": "application/json",
      "Content-Length": Buffer.byteLength(text),
    })
    .end(text);
}

async function readBody(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

function rawText(data: RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString("utf8");
  const buffer = data instanceof ArrayBuffer ? Buffer.from(data) : data;
  return buffer.toString("utf8");
}

/** Send one JSON text frame; whether it went out. */
function sendFrame(ws: WebSocket, frame: Json): Promise<boolean> {
  if (ws.readyState !== ws.OPEN) return Promise.resolve(false);
  return new Promise((resolve) => {
    ws.send(JSON.stringify(frame), (error) => {
      resolve(!(error instanceof Error));
    });
  });
}

/** Close sockets with `code`, cutting those that have not finished closing after a grace. */
async function closeAll(sockets: WebSocket[], code: number, reason: string): Promise<void> {
  await Promise.all(
    sockets.map(
      (ws) =>
        new Promise<void>((resolve) => {
          if (ws.readyState === ws.CLOSED) {
            resolve();
            return;
          }
          const timer = setTimeout(() => {
            ws.terminate();
          }, CLOSE_GRACE_MS);
          ws.once("close", () => {
            clearTimeout(timer);
            resolve();
          });
          if (ws.readyState === ws.OPEN) ws.close(code, reason);
        }),
    ),
  );
}
