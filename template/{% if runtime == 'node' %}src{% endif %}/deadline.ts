/** A deadline for a wait: no dependency, however stuck, holds the bot past it. */

/** The work did not finish before its deadline. */
export class DeadlineError extends Error {
  override name = "DeadlineError";
}

/**
 * Resolves as `work` does, or rejects with DeadlineError once `ms` have passed.
 *
 * A deadline measures the other side, not this process. When the event loop
 * was busy (a large module loading on a loaded machine), the timer and the
 * answer are both due on the next turn, and Node runs timers before it reads
 * sockets: the work would be declared late although its answer had arrived.
 * So a due timer yields once, with setImmediate, which runs after the loop
 * has read every socket; an answer already received settles the race first.
 */
export async function withDeadline<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  let pending: NodeJS.Immediate | undefined;
  const late = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => {
      pending = setImmediate(() => {
        reject(new DeadlineError(`no answer within ${String(ms)} ms`));
      });
    }, ms);
  });
  try {
    return await Promise.race([work, late]);
  } finally {
    clearTimeout(timer);
    clearImmediate(pending);
  }
}
