/**
 * The redeploy lease: only the instance holding it handles Discord events.
 *
 * During a deploy Railway starts the new instance while the old one still
 * runs, and stops the old one only once the new one is healthy. Two connected
 * bots would both answer every command, so a new instance starts as a standby
 * (its /health answers at once), waits for the lock, and only then logs in.
 *
 * This bot has nowhere to keep a lock (no database, no Redis), and so no
 * lease: from the new instance's start until Railway stops the old one, both
 * may answer. Railway keeps that window short (no overlap is configured);
 * only a lock closes it, and adding Redis brings one.
 */

/** This instance's right to handle Discord events, by its own monotonic clock. */
export class Lease {
  /** performance.now() from which the lease is valid, and until which. */
  validFrom: number;
  expiresAt: number;

  constructor(validFrom = Number.POSITIVE_INFINITY, expiresAt = Number.NEGATIVE_INFINITY) {
    this.validFrom = validFrom;
    this.expiresAt = expiresAt;
  }

  /** A lease that never ends, for a bot without a lock. */
  static forever(): Lease {
    return new Lease(Number.NEGATIVE_INFINITY, Number.POSITIVE_INFINITY);
  }

  valid(now = performance.now()): boolean {
    return this.validFrom <= now && now < this.expiresAt;
  }
}

/** Held by at most one running instance of the bot. */
export interface LeaderLock {
  /** Checked before every Discord event is handled. */
  readonly lease: Lease;
  /** Resolves the moment the lock is won (the active bot starts loading then). */
  readonly won: Promise<void>;
  /** Wait until this instance holds the lock and may go active. */
  acquire(signal: AbortSignal): Promise<void>;
  /** Keep the lock; rejects with LockLostError when it is lost. */
  hold(signal: AbortSignal): Promise<void>;
  release(): Promise<void>;
  /** Whether the lock's service answers (the standby's /health check). */
  ping(): Promise<boolean>;
}

/** The lease ran out or the lock was lost; this instance must stop answering. */
export class LockLostError extends Error {
  override name = "LockLostError";
}

/** Always held: see the module comment for why there is no lock. */
export class NoLock implements LeaderLock {
  readonly lease = Lease.forever();
  readonly won = Promise.resolve();

  acquire(): Promise<void> {
    return Promise.resolve();
  }

  hold(signal: AbortSignal): Promise<void> {
    // Held until the bot stops: resolves only when told to stop.
    return new Promise((resolve) => {
      signal.addEventListener(
        "abort",
        () => {
          resolve();
        },
        { once: true },
      );
    });
  }

  release(): Promise<void> {
    return Promise.resolve();
  }

  ping(): Promise<boolean> {
    return Promise.resolve(true); // no service behind it
  }
}

/** The lock this deployment uses. */
export function createLeaderLock(): LeaderLock {
  return new NoLock();
}
