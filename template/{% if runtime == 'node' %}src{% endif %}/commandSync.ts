/**
 * Sync slash commands with Discord only when they changed.
 *
 * Syncing at every start is slow and rate limited (Discord allows a few
 * hundred command updates a day), and Railway restarts bots often. This bot
 * has nowhere to remember its last sync that outlives a deploy, so it asks
 * Discord instead: it fetches the commands Discord has (one GET, not rate
 * limited like an update) and syncs only when they differ from its own in
 * anything that matters. Discord answers with fields of its own (ids,
 * versions) and leaves out some that hold their default value; see
 * sameCommands. `sync-commands` syncs regardless.
 */
import { Routes, type REST } from "discord.js";
import { getLogger } from "./logging.ts";

const log = getLogger("command_sync");

type Json = Record<string, unknown>;

/** What Discord means by a field it leaves out of its answer. */
const DISCORD_DEFAULTS: Json = {
  type: 1,
  dm_permission: true,
  nsfw: false,
  required: false,
  autocomplete: false,
};
/**
 * Fields that, left unset by the bot, take a default Discord fills in for
 * itself: compared only when the bot sets them.
 */
const DISCORD_FILLS = new Set(["contexts", "integration_types"]);

function isEmpty(value: unknown): boolean {
  return (
    value === undefined ||
    value === null ||
    value === "" ||
    (Array.isArray(value) && value.length === 0) ||
    (typeof value === "object" && !Array.isArray(value) && Object.keys(value).length === 0)
  );
}

function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Whether Discord's `remote` value says what the bot's `local` one says.
 *
 * Fields only Discord has (id, application_id, version, guild_id...) are
 * ignored; a field Discord left out is read as its default; null, "", [] and
 * {} all mean "nothing" (Discord omits empty localizations and options).
 */
export function same(local: unknown, remote: unknown): boolean {
  if (isEmpty(local) && isEmpty(remote)) return true;
  if (isObject(local)) {
    return (
      isObject(remote) &&
      Object.entries(local).every(
        ([key, value]) =>
          ((value === undefined || value === null) && DISCORD_FILLS.has(key)) ||
          same(value, key in remote ? remote[key] : DISCORD_DEFAULTS[key]),
      )
    );
  }
  if (Array.isArray(local)) {
    return (
      Array.isArray(remote) &&
      local.length === remote.length &&
      local.every((item, index) => same(item, remote[index]))
    );
  }
  return local === remote;
}

function byKey(commands: readonly Json[]): Map<string, Json> {
  return new Map(
    commands.map((command) => [JSON.stringify([command.type ?? 1, command.name]), command]),
  );
}

/** Whether Discord's commands (`remote`) are the bot's (`local`). */
export function sameCommands(local: readonly Json[], remote: readonly Json[]): boolean {
  const mine = byKey(local);
  const theirs = byKey(remote);
  return (
    mine.size === theirs.size &&
    [...mine].every(([key, command]) => theirs.has(key) && same(command, theirs.get(key)))
  );
}

/** The API path of the commands of this application, globally or in one guild. */
export function commandsRoute(applicationId: string, guildId?: string): `/${string}` {
  return guildId === undefined
    ? Routes.applicationCommands(applicationId)
    : Routes.applicationGuildCommands(applicationId, guildId);
}

/** Whether Discord already has exactly these commands; false if it cannot tell. */
export async function discordHas(
  rest: REST,
  route: `/${string}`,
  local: readonly Json[],
): Promise<boolean> {
  let remote: unknown;
  try {
    // The localizations in full, as the bot sends them.
    remote = await rest.get(route, { query: new URLSearchParams({ with_localizations: "true" }) });
  } catch (error) {
    const status = (error as { status?: number }).status;
    log.warning(
      `Could not fetch the commands Discord has (HTTP ${String(status ?? "error")}); syncing to be sure`,
    );
    return false;
  }
  return Array.isArray(remote) && sameCommands(local, remote.filter(isObject));
}

/** Sync globally, or to one guild, if the commands changed (or `force`). True if synced. */
export async function syncCommands(
  rest: REST,
  applicationId: string,
  payloads: readonly Json[],
  options: { guildId?: string | undefined; force?: boolean } = {},
): Promise<boolean> {
  const { guildId, force = false } = options;
  const route = commandsRoute(applicationId, guildId);
  const target = guildId === undefined ? "global" : `guild ${guildId}`;
  if (!force && (await discordHas(rest, route, payloads))) {
    log.info(`Slash commands unchanged (${target}), not syncing`);
    return false;
  }
  const synced = (await rest.put(route, { body: payloads })) as unknown[];
  log.info(`Synced ${String(synced.length)} slash commands (${target})`);
  return true;
}
