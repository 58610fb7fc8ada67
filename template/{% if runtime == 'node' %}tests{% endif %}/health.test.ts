/** The health server over real HTTP: answers, status codes, limits, slow checks. */
import assert from "node:assert/strict";
import { connect, type Socket } from "node:net";
import { once } from "node:events";
import { describe, test } from "node:test";
import { CHECK_CACHE_MS, HealthServer, MAX_CONNECTIONS, type Gateway } from "../src/health.ts";

async function started(server: HealthServer): Promise<string> {
  await server.start("127.0.0.1", 0);
  return `http://127.0.0.1:${String(server.port)}`;
}

function serverWith(checks: Record<string, () => Promise<boolean>> = {}, limit = 60): HealthServer {
  return new HealthServer({ checks, version: "1.2.3", gatewayOutageLimitSeconds: limit });
}

/** Send raw bytes; everything the server sends until it closes, or "" if it resets. */
async function exchange(port: number, raw: string): Promise<string> {
  const socket = connect(port, "127.0.0.1");
  const chunks: Buffer[] = [];
  socket.on("data", (chunk: Buffer) => chunks.push(chunk));
  socket.on("error", () => undefined); // a reset ends the exchange like a close
  await once(socket, "connect");
  socket.write(raw);
  await once(socket, "close");
  return Buffer.concat(chunks).toString();
}

class FakeGateway implements Gateway {
  ping = 42.26;
  guildCount = 3;
  disconnectedSince: number | null = null;
  isClosed = false;
  connected(): boolean {
    return this.disconnectedSince === null;
  }
  closed(): boolean {
    return this.isClosed;
  }
}

describe("the health server", () => {
  test("a standby is healthy and not ready", async () => {
    const server = serverWith({ database: () => Promise.resolve(true) });
    const url = await started(server);
    try {
      const health = await fetch(`${url}/health`);
      assert.equal(health.status, 200);
      assert.equal(health.headers.get("content-type"), "application/json; charset=utf-8");
      assert.equal(health.headers.get("cache-control"), "no-store");
      const body = (await health.json()) as Record<string, unknown>;
      assert.equal(body.status, "ok");
      assert.equal(body.role, "standby");
      assert.equal(body.version, "1.2.3");
      assert.equal(body.database, "ok");
      assert.deepEqual(body.gateway, {
        state: "disconnected",
        latency_ms: null,
        guilds: 0,
        outage_seconds: 0,
      });
      assert.ok(typeof body.rss_bytes === "number" && body.rss_bytes > 10_000_000);
      assert.ok(!Number.isNaN(Date.parse(String(body.timestamp))));
      const ready = await fetch(`${url}/ready`);
      assert.equal(ready.status, 503);
      assert.deepEqual(await ready.json(), { ready: false });
    } finally {
      await server.stop();
    }
  });

  test("the active bot reports its gateway; an outage past the limit is 503", async () => {
    const server = serverWith({}, 5);
    const url = await started(server);
    const gateway = new FakeGateway();
    server.gateway = gateway;
    try {
      let body = (await (await fetch(`${url}/health`)).json()) as { role: string; gateway: object };
      assert.equal(body.role, "active");
      assert.deepEqual(body.gateway, {
        state: "connected",
        latency_ms: 42.3,
        guilds: 3,
        outage_seconds: 0,
      });
      assert.equal((await fetch(`${url}/ready`)).status, 200);

      gateway.disconnectedSince = performance.now() - 4000; // within the limit
      assert.equal((await fetch(`${url}/health`)).status, 200);
      assert.equal((await fetch(`${url}/ready`)).status, 503);
      gateway.disconnectedSince = performance.now() - 6000;
      const response = await fetch(`${url}/health`);
      assert.equal(response.status, 503);
      body = (await response.json()) as { role: string; gateway: object };
      assert.deepEqual(body.gateway, {
        state: "connecting",
        latency_ms: null,
        guilds: 3,
        outage_seconds: 6,
      });
      gateway.isClosed = true;
      body = (await (await fetch(`${url}/health`)).json()) as { role: string; gateway: object };
      assert.equal((body.gateway as { state: string }).state, "disconnected");
    } finally {
      await server.stop();
    }
  });

  test("a failing or hanging dependency is down, within the check timeout", async () => {
    const server = serverWith({
      database: () => Promise.reject(new Error("connection refused")),
      redis: () => new Promise<boolean>(() => undefined), // never answers
      other: () => Promise.resolve(true),
    });
    const url = await started(server);
    try {
      const started_ = performance.now();
      const response = await fetch(`${url}/health`);
      const elapsed = performance.now() - started_;
      assert.equal(response.status, 503);
      const body = (await response.json()) as Record<string, unknown>;
      assert.deepEqual(
        [body.status, body.database, body.redis, body.other],
        ["unavailable", "down", "down", "ok"],
      );
      assert.ok(elapsed >= 1900 && elapsed < 5000, `answered in ${String(elapsed)} ms`);
    } finally {
      await server.stop();
    }
  });

  test("other paths are 404, other methods 405, HEAD has no body", async () => {
    const server = serverWith();
    const url = await started(server);
    try {
      const missing = await fetch(`${url}/admin`);
      assert.equal(missing.status, 404);
      assert.deepEqual(await missing.json(), { error: "not found" });
      const post = await fetch(`${url}/health`, { method: "POST", body: "x" });
      assert.equal(post.status, 405);
      assert.equal(post.headers.get("allow"), "GET, HEAD");
      const head = await fetch(`${url}/health?probe=1`, { method: "HEAD" });
      assert.equal(head.status, 200);
      assert.equal(await head.text(), "");
      assert.ok(Number(head.headers.get("content-length")) > 50);
    } finally {
      await server.stop();
    }
  });

  test("a header flood is refused and the server keeps answering", async () => {
    const server = serverWith();
    const url = await started(server);
    try {
      const socket = connect(server.port, "127.0.0.1");
      await once(socket, "connect");
      socket.write(`GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(20_000)}\r\n\r\n`);
      const [reply] = (await once(socket, "data")) as [Buffer];
      assert.match(reply.toString(), /^HTTP\/1\.1 431/);
      socket.destroy();
      assert.equal((await fetch(`${url}/health`)).status, 200);
    } finally {
      await server.stop();
    }
  });

  test("stop() returns at once with idle keep-alive connections open", async () => {
    const server = serverWith();
    const url = await started(server);
    await fetch(`${url}/health`); // leaves a keep-alive connection in fetch's pool
    const before = performance.now();
    await server.stop();
    assert.ok(performance.now() - before < 1000);
  });

  test("pipelined requests are each answered, in order", async () => {
    const server = serverWith();
    await started(server);
    try {
      const raw = await exchange(
        server.port,
        "GET /health HTTP/1.1\r\nHost: x\r\n\r\n" +
          "GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
      );
      const statuses = [...raw.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((match) => match[1]);
      assert.deepEqual(statuses, ["200", "404"]);
      assert.ok(raw.endsWith('{"error":"not found"}'), raw);
    } finally {
      await server.stop();
    }
  });

  test("a silent connection is closed after its timeout", async () => {
    const server = new HealthServer({
      checks: {},
      version: "1.2.3",
      gatewayOutageLimitSeconds: 60,
      timeoutsMs: { idle: 300, request: 300 },
    });
    await started(server);
    try {
      const before = performance.now();
      // Connected, then nothing: closed, with or without a 408 first.
      const answer = await exchange(server.port, "");
      const waited = performance.now() - before;
      assert.match(answer, /^(HTTP\/1\.1 408 [^]*)?$/);
      assert.ok(waited > 200 && waited < 3000, `closed after ${String(waited)} ms`);
    } finally {
      await server.stop();
    }
  });

  test("connections beyond the cap are closed and the others still served", async () => {
    const server = serverWith();
    const url = await started(server);
    const idle: Socket[] = [];
    try {
      for (let i = 0; i < MAX_CONNECTIONS; i++) {
        const socket = connect(server.port, "127.0.0.1");
        socket.on("error", () => undefined);
        await once(socket, "connect");
        idle.push(socket);
      }
      await new Promise((resolve) => setTimeout(resolve, 500)); // all accepted
      const request = "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
      assert.equal(await exchange(server.port, request), "");
      idle.pop()?.destroy();
      await new Promise((resolve) => setTimeout(resolve, 500));
      assert.equal((await fetch(`${url}/health`)).status, 200);
    } finally {
      for (const socket of idle) socket.destroy();
      await server.stop();
    }
  });

  test("a flood of /health requests checks the dependencies about once a second", async () => {
    let calls = 0;
    let up = true;
    const server = serverWith({
      database: async () => {
        calls += 1;
        await new Promise((resolve) => setTimeout(resolve, 50)); // a round trip
        return up;
      },
    });
    const url = await started(server);
    try {
      const before = performance.now();
      // 25 at once, then 25 one after the other: 50 rapid requests.
      const statuses = await Promise.all(
        Array.from({ length: 25 }, async () => (await fetch(`${url}/health`)).status),
      );
      for (let i = 0; i < 25; i++) statuses.push((await fetch(`${url}/health`)).status);
      const elapsed = performance.now() - before;
      assert.deepEqual(statuses, Array<number>(50).fill(200));
      // One check per CHECK_CACHE_MS at most, however many requests.
      assert.ok(
        calls <= elapsed / CHECK_CACHE_MS + 1,
        `${String(calls)} checks in ${String(elapsed)} ms`,
      );
      // The cache is short: a database that went down is reported soon.
      up = false;
      await new Promise((resolve) => setTimeout(resolve, CHECK_CACHE_MS + 100));
      const response = await fetch(`${url}/health`);
      assert.equal(response.status, 503);
      assert.equal(((await response.json()) as Record<string, unknown>).database, "down");
    } finally {
      await server.stop();
    }
  });
});
