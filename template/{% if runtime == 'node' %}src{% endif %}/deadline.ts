/** A deadline for a wait: no dependency, however stuck, holds the bot past it. */

/** The work did not finish before its deadline. */
export class DeadlineError extends Error {
  override name = "DeadlineError";
}

/** Resolves as `work` does, or rejects with DeadlineError once `ms` have passed. */
export async function withDeadline<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => {
      reject(new DeadlineError(`no answer within ${String(ms)} ms`));
    }, ms);
  });
  try {
    return await Promise.race([work, late]);
  } finally {
    clearTimeout(timer);
  }
}
