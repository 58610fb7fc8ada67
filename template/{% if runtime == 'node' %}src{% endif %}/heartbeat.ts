/**
 * A heartbeat for a push monitor: "the bot is up and connected to Discord".
 *
 * Push monitors (Healthchecks.io, UptimeRobot heartbeats, Better Stack,
 * Cronitor) give each check a URL and alert when it stops being requested.
 * The active bot requests HEARTBEAT_URL every HEARTBEAT_INTERVAL_SECONDS, but
 * only while its gateway session is open and its redeploy lease valid: a
 * standby, a bot stuck reconnecting and a stopped bot all stay silent, and
 * silence is what raises the alert. Nothing depends on the monitor: a failed
 * ping is logged and the next one is tried on time.
 *
 * The URL embeds the check's token (whoever knows it can fake pings, or
 * silence them), so no log line ever shows more than its scheme and host.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { getLogger } from "./logging.ts";

const log = getLogger("heartbeat");

/** The URL with its path, query and credentials removed, safe to log. */
export function redact(url: string): string {
  const parsed = new URL(url);
  return `${parsed.protocol}//${parsed.hostname}`;
}

/** One GET of `url`; true when the monitor answered 2xx. Never throws. */
export async function ping(url: string, timeoutMs: number): Promise<boolean> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    await response.arrayBuffer();
    if (response.status < 300) return true;
    log.warning(`Heartbeat to ${redact(url)} answered HTTP ${String(response.status)}`);
  } catch (error) {
    // The error's text may quote the URL: only its name is logged.
    const name =
      error instanceof Error ? ((error.cause as Error | undefined)?.name ?? error.name) : "Error";
    log.warning(`Heartbeat to ${redact(url)} failed: ${name}`);
  }
  return false;
}

/** Ping `url` every `intervalSeconds` while `alive()`, until `signal` aborts. */
export async function run(
  url: string,
  options: { intervalSeconds: number; alive: () => boolean; signal: AbortSignal },
): Promise<void> {
  const { intervalSeconds, alive, signal } = options;
  const interval = intervalSeconds * 1000;
  log.info(
    `Sending a heartbeat to ${redact(url)} every ${String(intervalSeconds)} s while connected`,
  );
  // Never longer than one interval: a slow monitor must not delay the next ping.
  const timeout = Math.min(10_000, interval);
  let nextAt = performance.now();
  while (!signal.aborted) {
    if (alive()) {
      await ping(url, timeout);
      nextAt += interval;
    } else {
      // Not connected: check often, so the first ping after a reconnect is
      // not a whole interval late.
      nextAt = performance.now() + Math.min(1000, interval);
    }
    try {
      await sleep(Math.max(0, nextAt - performance.now()), undefined, { signal });
    } catch {
      return; // stopped
    }
    // After a long pause (a suspended host), do not send a burst.
    nextAt = Math.max(nextAt, performance.now());
  }
}
