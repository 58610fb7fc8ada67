/**
 * withDeadline under a stalled event loop: a deadline measures the other
 * side, not this process. An answer that arrived while the loop was busy
 * (loading discord.js on a loaded machine, say) must win over the timer
 * that came due at the same time.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { createConnection, type Socket } from "node:net";
import { test } from "node:test";
import { Worker } from "node:worker_threads";
import { DeadlineError, withDeadline } from "../src/deadline.ts";
import { blockFor } from "./botProcess.ts";

/**
 * A TCP server in a thread of its own, so it answers while this thread is
 * blocked: each line gets `reply`, or nothing when `reply` is null.
 */
async function serve(reply: string | null): Promise<{ server: Worker; socket: Socket }> {
  const server = new Worker(
    `const { createServer } = require("node:net");
    const { parentPort, workerData } = require("node:worker_threads");
    const server = createServer((peer) => {
      peer.on("data", () => {
        if (workerData !== null) peer.write(workerData);
      });
    });
    server.listen(0, "127.0.0.1", () => parentPort.postMessage(server.address().port));`,
    { eval: true, workerData: reply },
  );
  const [port] = (await once(server, "message")) as [number];
  const socket = createConnection(port, "127.0.0.1");
  await once(socket, "connect");
  return { server, socket };
}

/** Send a line; resolves with the first chunk that comes back. */
function ask(socket: Socket): Promise<string> {
  const answer = once(socket, "data").then(([chunk]) => String(chunk));
  socket.write("ping\n");
  return answer;
}

test("an answer that arrived while the loop was blocked beats its deadline", async () => {
  const { server, socket } = await serve("pong");
  try {
    const answer = withDeadline(ask(socket), 100);
    // The server answers within a millisecond; this process reads it only
    // after the block, when the deadline's timer is long due.
    blockFor(400);
    assert.equal(await answer, "pong");
  } finally {
    socket.destroy();
    await server.terminate();
  }
});

test("no answer still misses the deadline, a blocked loop or not", async () => {
  const { server, socket } = await serve(null);
  try {
    const started = performance.now();
    const answer = withDeadline(ask(socket), 100);
    blockFor(200);
    await assert.rejects(answer, DeadlineError);
    // Rejected on the first turn after the block, not a deadline later.
    assert.ok(performance.now() - started < 300);
  } finally {
    socket.destroy();
    await server.terminate();
  }
});

test("work that settles in time settles the race", async () => {
  assert.equal(await withDeadline(Promise.resolve(7), 100), 7);
  await assert.rejects(withDeadline(Promise.reject(new Error("boom")), 100), /boom/);
});
