package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// migrations is the ordered schema history: migrations[i] brings the database to schema version i+1.
// Append only; never edit a migration that has shipped.
var migrations = []string{
	// 1: objects and the store-wide resourceVersion counter.
	`CREATE TABLE meta (
		key   TEXT PRIMARY KEY,
		value INTEGER NOT NULL
	);
	INSERT INTO meta (key, value) VALUES ('resource_version', 0);
	CREATE TABLE objects (
		kind             TEXT NOT NULL,
		namespace        TEXT NOT NULL, -- '' for cluster-scoped kinds
		name             TEXT NOT NULL,
		uid              TEXT NOT NULL UNIQUE,
		generation       INTEGER NOT NULL,
		resource_version INTEGER NOT NULL,
		created          INTEGER NOT NULL, -- Unix nanoseconds
		labels           TEXT,             -- JSON object, NULL when empty
		annotations      TEXT,             -- JSON object, NULL when empty
		spec             TEXT,             -- compact JSON, NULL when absent
		status           TEXT,             -- compact JSON, NULL when absent
		PRIMARY KEY (kind, namespace, name)
	);`,

	// 2: events about objects. They outlive their object, bounded per object by Options.EventsPerObject.
	`CREATE TABLE events (
		id         INTEGER PRIMARY KEY AUTOINCREMENT,
		kind       TEXT NOT NULL,
		namespace  TEXT NOT NULL,
		name       TEXT NOT NULL,
		uid        TEXT NOT NULL,
		type       TEXT NOT NULL,
		reason     TEXT NOT NULL,
		message    TEXT NOT NULL,
		count      INTEGER NOT NULL,
		first_time INTEGER NOT NULL, -- Unix nanoseconds
		last_time  INTEGER NOT NULL  -- Unix nanoseconds
	);
	CREATE INDEX events_object ON events (kind, namespace, name, id);
	CREATE INDEX events_last_time ON events (last_time, id);`,
}

// migrate brings db up to len(migs), applying each missing migration once in its own transaction. It
// refuses a database written by a newer binary rather than risk misreading it.
func migrate(ctx context.Context, db *sql.DB, migs []string, now time.Time) error {
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		applied_at TEXT NOT NULL
	)`); err != nil {
		return fmt.Errorf("creating schema_migrations: %w", err)
	}
	var have int
	if err := db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&have); err != nil {
		return fmt.Errorf("reading schema version: %w", err)
	}
	if have > len(migs) {
		return fmt.Errorf("data directory was written by a newer citadel (schema %d, this binary knows %d): "+
			"upgrade citadel", have, len(migs))
	}
	for v := have + 1; v <= len(migs); v++ {
		if err := applyMigration(ctx, db, v, migs[v-1], now); err != nil {
			return fmt.Errorf("applying schema migration %d: %w", v, err)
		}
	}
	return nil
}

func applyMigration(ctx context.Context, db *sql.DB, version int, stmts string, now time.Time) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	if _, err := tx.ExecContext(ctx, stmts); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`,
		version, now.UTC().Format(time.RFC3339)); err != nil {
		return err
	}
	return tx.Commit()
}
