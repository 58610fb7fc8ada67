/**
 * One run of the bot, from start to a clean exit.
 *
 * The order matters: the health server answers first (Railway waits for it),
 * then the instance waits as a standby for the redeploy lock, and only then
 * loads the rest of the bot and logs in to Discord. A standby holds only the
 * lock, the health server and its checks; discord.js is imported once the
 * lock is won, so a standby costs little memory and answers /health fast.
 *
 * SIGTERM (Railway stopping the old deployment) and SIGINT (Ctrl-C) undo it
 * all in reverse: leave the gateway, release the lock so the standby takes
 * over at once, stop the health server. Every step has a deadline, so the
 * process exits within SHUTDOWN_BUDGET_MS even when one of them hangs.
 */
import { HealthServer } from "./health.ts";
import { createLeaderLock, LockLostError } from "./leader.ts";
import { getLogger } from "./logging.ts";
import type { Settings } from "./config.ts";

const log = getLogger("lifecycle");

/**
 * What DEPLOYMENT.md promises: from SIGTERM to exit in at most this long,
 * well inside the drainingSeconds Railway waits before SIGKILL.
 */
export const SHUTDOWN_BUDGET_MS = 10_000;
/** Each cleanup step gets this long; all of them together stay inside the budget. */
export const STEP_TIMEOUT_MS = 1_500;

type Step = [name: string, run: () => Promise<unknown>];

/** Run one cleanup step; one stuck step must not keep the others from running. */
async function bounded([name, run]: Step): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<"late">((resolve) => {
    timer = setTimeout(() => {
      resolve("late");
    }, STEP_TIMEOUT_MS);
  });
  try {
    if ((await Promise.race([run(), late])) === "late") {
      log.warning(`Shutdown step "${name}" did not finish within ${String(STEP_TIMEOUT_MS)} ms`);
    }
  } catch (error) {
    log.warning(`Shutdown step "${name}" did not finish cleanly`, { exception: error });
  } finally {
    clearTimeout(timer);
  }
}

/** Turn SIGTERM and SIGINT into a graceful stop. */
export function stopOnSignals(): AbortController {
  const stop = new AbortController();
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    process.on(signal, () => {
      if (stop.signal.aborted) {
        log.info(`Received ${signal} again; already stopping`);
        return;
      }
      log.info(`Received ${signal}, shutting down`);
      stop.abort();
    });
  }
  return stop;
}

/** Resolves when `signal` aborts. */
function aborted(signal: AbortSignal): Promise<"stopped"> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve("stopped");
    signal.addEventListener(
      "abort",
      () => {
        resolve("stopped");
      },
      { once: true },
    );
  });
}

/** Run the bot until it is told to stop; resolves to the process exit status. */
export async function run(
  settings: Settings,
  stop: AbortController = stopOnSignals(),
): Promise<number> {
  // Cleanup steps, run last-registered first.
  const cleanup: Step[] = [];
  const stopped = aborted(stop.signal);
  try {
    const lock = createLeaderLock();
    cleanup.push(["release redeploy lock", () => lock.release()]);
    // While standing by, the lock's own connection answers for its service.
    const health = new HealthServer({
      checks: {},
      version: settings.version,
      gatewayOutageLimitSeconds: settings.gatewayOutageLimitSeconds,
    });
    await health.start("0.0.0.0", settings.port); // Railway routes to all interfaces
    cleanup.push(["stop health server", () => health.stop()]);

    // Import what only the active bot uses as soon as the lock is won, while
    // the previous holder's lease runs out.
    const loading = lock.won.then(() => import("./bot.ts"));
    loading.catch(() => undefined); // awaited below; an early stop must not leave it unhandled
    try {
      if ((await Promise.race([lock.acquire(stop.signal), stopped])) === "stopped") return 0;
    } catch (error) {
      if (!(error instanceof LockLostError)) throw error;
      // Lost while waiting out the previous lease: queue up again.
      log.error(`Lost the redeploy lock before going active: ${error.message}`);
      return 1;
    }
    // Active from here on: keep the lease while the bot loads.
    const holding = lock.hold(stop.signal).then(
      () => "stopped" as const,
      (error: unknown) => error,
    );
    const { Bot, exitStatusFor } = await loading;
    const bot = new Bot(settings, lock.lease);
    // Registered last so it runs first: leave Discord before the lock is
    // released, or old and new instance would both answer for a moment.
    cleanup.push(["close Discord connection", () => bot.destroy()]);
    health.gateway = bot;
    if (settings.heartbeatUrl !== undefined) {
      const { run: heartbeat } = await import("./heartbeat.ts");
      const pings = new AbortController();
      // Silent from the signal on, before the connection closes.
      const alive = () => !stop.signal.aborted && lock.lease.valid() && bot.connected();
      const beating = heartbeat(settings.heartbeatUrl, {
        intervalSeconds: settings.heartbeatIntervalSeconds,
        alive,
        signal: pings.signal,
      });
      cleanup.push([
        "stop heartbeat",
        () => {
          pings.abort();
          return beating;
        },
      ]);
    }
    let failure: unknown;
    const client = bot
      .prepare("auto")
      .then(() => bot.login())
      .then(
        () => new Promise<never>(() => undefined), // connected: runs until stopped
        (error: unknown) => {
          failure = error;
          return "failed" as const;
        },
      );
    const outcome = await Promise.race([client, holding, stopped]);
    if (outcome === "failed") return exitStatusFor(failure);
    if (outcome instanceof Error) {
      log.error(
        `Lost the redeploy lock, stopping so a restart can queue again: ${outcome.message}`,
      );
      return 1;
    }
    return 0;
  } finally {
    for (const step of cleanup.reverse()) await bounded(step);
  }
}
