/**
 * The discord.js client: its commands, what it does at login, and its life
 * while active. Only an instance that holds the redeploy lock loads this
 * module (and so discord.js): a standby stays small.
 */
import {
  Client,
  DiscordjsErrorCodes,
  Events,
  GatewayIntentBits,
  REST,
  type ChatInputCommandInteraction,
} from "discord.js";
import { syncCommands } from "./commandSync.ts";
import { loadCommands } from "./commands/index.ts";
import type { CommandContext, SlashCommand } from "./commands/types.ts";
import { DISCORD_API_URL, EXIT_CONFIG, type Settings } from "./config.ts";
import { interactionContext, onCommandError } from "./errors.ts";
import type { Gateway } from "./health.ts";
import type { Lease } from "./leader.ts";
import { getLogger } from "./logging.ts";

const log = getLogger("bot");

/** Exit status when the bot stops for a reason a restart may fix. */
export const EXIT_FAILURE = 1;

/** What to do about slash commands at login: sync when they changed, always, or never. */
export type SyncMode = "auto" | "force" | "off";

/** REST options that send every call to DISCORD_API_URL (a local fake in the tests). */
function restOptions(settings: Settings): { api: string } | Record<string, never> {
  return settings.discordApiUrl === DISCORD_API_URL ? {} : { api: `${settings.discordApiUrl}/api` };
}

/** The bot: a discord.js client, its commands, and the state /health reads. */
export class Bot implements Gateway {
  readonly client: Client;
  readonly settings: Settings;
  commands: readonly SlashCommand[] = [];
  /** Since when (performance.now()) no gateway session has been ready; null while one is. */
  disconnectedSince: number | null = performance.now();
  readonly #lease: Lease;
  #dropped = 0;

  constructor(settings: Settings, lease: Lease) {
    this.settings = settings;
    this.#lease = lease;
    // Slash commands need no privileged intent; asking for one that the
    // Developer Portal has not enabled would stop the bot at login.
    this.client = new Client({ intents: [GatewayIntentBits.Guilds], rest: restOptions(settings) });
    // Follow the live connection: the client stays "ready" across a
    // disconnect, and /ready and /health must not.
    const connected = (): void => {
      this.disconnectedSince = null;
    };
    const disconnected = (): void => {
      this.disconnectedSince ??= performance.now();
    };
    this.client.on(Events.ShardReady, connected);
    this.client.on(Events.ShardResume, connected);
    this.client.on(Events.ShardDisconnect, disconnected);
    this.client.on(Events.ShardReconnecting, disconnected);
    this.client.on(Events.ShardError, (error) => {
      log.warning("Gateway connection error", { exception: error });
    });
    this.client.on(Events.Warn, (message) => {
      log.warning(message);
    });
    this.client.on(Events.Error, (error) => {
      log.error("Discord client error", { exception: error });
    });
    this.client.once(Events.ClientReady, (client) => {
      log.info(
        `Connected to Discord as ${client.user.tag} (${String(client.guilds.cache.size)} servers)`,
        { user_id: client.user.id },
      );
    });
    this.client.on(Events.InteractionCreate, (interaction) => {
      if (interaction.isChatInputCommand()) void this.#handle(interaction);
    });
  }

  get ping(): number {
    return this.client.ws.ping;
  }

  get guildCount(): number {
    return this.client.guilds.cache.size;
  }

  connected(): boolean {
    return this.disconnectedSince === null && this.client.isReady();
  }

  closed(): boolean {
    return this.#destroyed;
  }

  #destroyed = false;

  /** The state a command may use. */
  get context(): CommandContext {
    return {
      settings: this.settings,
      gatewayPing: () => this.client.ws.ping,
      commands: () => this.commands,
    };
  }

  /**
   * Handle one slash command, only while this instance's lease is valid.
   *
   * The check runs when the event is handled, not at the last lease
   * renewal: an instance that was paused past its lease drops whatever it
   * had queued, so no interaction is answered twice.
   */
  async #handle(interaction: ChatInputCommandInteraction): Promise<void> {
    if (!this.#lease.valid()) {
      this.#dropped += 1;
      // The first drop explains; the rest would only repeat it.
      if (this.#dropped === 1) log.warning("Lease not valid: dropping Discord events");
      return;
    }
    const command = this.commands.find((c) => c.data.name === interaction.commandName);
    if (command === undefined) {
      log.warning(
        "Unknown command: Discord has commands this bot does not",
        interactionContext(interaction),
      );
      return;
    }
    try {
      await command.execute(interaction, this.context);
    } catch (error) {
      await onCommandError(interaction, error);
    }
  }

  /**
   * The commands exactly as they go over the wire, in a stable order: the
   * builders leave unset fields as undefined, which JSON drops, and so does
   * the comparison with what Discord has.
   */
  payloads(): Record<string, unknown>[] {
    return JSON.parse(JSON.stringify(this.commands.map((command) => command.data))) as Record<
      string,
      unknown
    >[];
  }

  /** Load the commands, log in over REST and sync them as `mode` says (no gateway yet). */
  async prepare(mode: SyncMode, guildId?: string): Promise<void> {
    this.commands = await loadCommands();
    if (mode === "off") return;
    const rest = new REST(restOptions(this.settings)).setToken(this.settings.discordToken);
    const application = (await rest.get("/oauth2/applications/@me")) as { id: string };
    await syncCommands(rest, application.id, this.payloads(), {
      guildId: guildId ?? this.settings.devGuildId,
      force: mode === "force",
    });
  }

  /** Connect to the gateway; resolves once logged in. */
  async login(): Promise<void> {
    await this.client.login(this.settings.discordToken);
  }

  async destroy(): Promise<void> {
    this.#destroyed = true;
    await this.client.destroy();
  }
}

/** Explain why the client stopped, and pick the exit status. */
export function exitStatusFor(error: unknown): number {
  const code = (error as { code?: unknown }).code;
  if (code === DiscordjsErrorCodes.TokenInvalid || (error as { status?: unknown }).status === 401) {
    log.critical(
      "Discord rejected DISCORD_TOKEN. Reset the token in the Discord Developer Portal " +
        "(Bot > Reset Token) and set the new one in the DISCORD_TOKEN variable.",
    );
    return EXIT_CONFIG;
  }
  if (error instanceof Error && error.message.includes("disallowed intents")) {
    log.critical(
      "The bot asks for a privileged intent that is not enabled. Enable it in the Discord " +
        "Developer Portal (Bot > Privileged Gateway Intents), or stop requesting it in bot.ts.",
    );
    return EXIT_CONFIG;
  }
  log.error("The Discord client stopped with an error", { exception: error });
  return EXIT_FAILURE;
}
