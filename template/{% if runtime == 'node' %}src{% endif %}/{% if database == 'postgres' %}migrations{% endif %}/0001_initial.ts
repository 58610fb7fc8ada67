/** Create the wallets and bot_state tables (the Python bot's schema). */
import type pg from "pg";

export async function up(db: pg.ClientBase): Promise<void> {
  await db.query(`
    CREATE TABLE wallets (
      guild_id BIGINT NOT NULL,
      user_id BIGINT NOT NULL,
      balance BIGINT NOT NULL,
      last_daily_at TIMESTAMPTZ,
      created_at TIMESTAMPTZ NOT NULL,
      CONSTRAINT pk_wallets PRIMARY KEY (guild_id, user_id),
      CONSTRAINT ck_wallets_balance_not_negative CHECK (balance >= 0)
    );
    CREATE TABLE bot_state (
      key VARCHAR(100) NOT NULL,
      value TEXT NOT NULL,
      updated_at TIMESTAMPTZ NOT NULL,
      CONSTRAINT pk_bot_state PRIMARY KEY (key)
    );
  `);
}
