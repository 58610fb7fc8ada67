/** The health server over real HTTP: answers, status codes, limits, slow checks. */
import assert from "node:assert/strict";
import { connect } from "node:net";
import { once } from "node:events";
import { describe, test } from "node:test";
import { HealthServer, type Gateway } from "../src/health.ts";

async function started(server: HealthServer): Promise<string> {
  await server.start("127.0.0.1", 0);
  return `http://127.0.0.1:${String(server.port)}`;
}

function serverWith(checks: Record<string, () => Promise<boolean>> = {}, limit = 60): HealthServer {
  return new HealthServer({ checks, version: "1.2.3", gatewayOutageLimitSeconds: limit });
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
});
