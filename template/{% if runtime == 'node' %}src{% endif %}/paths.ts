/** Directories the bot creates for its files (a log file, a database file). */
import { mkdirSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";

/**
 * Create `path` and its missing parents, one level at a time.
 *
 * Node's own `mkdirSync(path, { recursive: true })` never returns when a
 * parent is in a file system that refuses new directories with ENOENT, such
 * as /proc; one level at a time, such a path fails with that error at once.
 */
export function makeDirectories(path: string): void {
  const missing: string[] = [];
  let current = resolve(path);
  while (statSync(current, { throwIfNoEntry: false }) === undefined) {
    missing.push(current);
    const parent = dirname(current);
    if (parent === current) break;
    current = parent;
  }
  for (const directory of missing.reverse()) mkdirSync(directory);
}
