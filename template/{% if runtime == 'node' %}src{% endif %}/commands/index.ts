/**
 * Finds the slash commands: every module of this folder whose default export
 * is a command. Adding a command is adding a file here, so no template file
 * ever needs the owner's edit. Names starting with "_" are skipped.
 */
import { readdir } from "node:fs/promises";
import type { SlashCommand } from "./types.ts";

/** This folder's own files, which are not commands. */
const NOT_COMMANDS = new Set(["index", "types"]);
const COMMAND_NAME = /^[-_\p{L}\p{N}]{1,32}$/u;

function isCommand(value: unknown): value is SlashCommand {
  if (typeof value !== "object" || value === null) return false;
  const candidate = value as Partial<SlashCommand>;
  return typeof candidate.execute === "function" && typeof candidate.data?.name === "string";
}

/** Every command, in name order; throws naming the file when one is broken. */
export async function loadCommands(
  folder: URL = new URL(".", import.meta.url),
): Promise<SlashCommand[]> {
  const files = (await readdir(folder)).filter((file) => {
    const match = /^([^.]+)\.(?:js|ts)$/.exec(file);
    return match?.[1] !== undefined && !match[1].startsWith("_") && !NOT_COMMANDS.has(match[1]);
  });
  const commands = new Map<string, SlashCommand>();
  for (const file of files.sort()) {
    const module = (await import(new URL(file, folder).href)) as { default?: unknown };
    if (!isCommand(module.default)) {
      throw new Error(
        `src/commands/${file} does not export a command: end it with "export default command;" ` +
          `where command has data and execute (see ping.ts), or rename it to start with "_".`,
      );
    }
    const name = module.default.data.name;
    if (!COMMAND_NAME.test(name)) {
      throw new Error(`src/commands/${file}: "${name}" is not a valid slash command name.`);
    }
    if (commands.has(name)) {
      throw new Error(`src/commands/${file}: a second command named "${name}".`);
    }
    commands.set(name, module.default);
  }
  return [...commands.values()].sort((a, b) => a.data.name.localeCompare(b.data.name));
}
