//! Embedded migrations, one directory per dialect (`migrations/mysql`, `migrations/sqlite`),
//! run at start and by `sluice migrate`. The two directories describe the same tables and
//! columns; `tests/storage_schema.rs` checks it on real databases.

use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use super::connection::{Connection, StorageError};

pub const MYSQL_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/mysql");
pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

/// Applies every pending migration; returns the versions applied now (empty when up to date).
///
/// Several instances may start at once on one database: on MySQL they queue on a named lock;
/// on SQLite (and should the lock be unavailable) a run that lost the race to another
/// instance's identical migration ("already exists") reads the applied versions again.
pub fn run_migrations(conn: &mut Connection) -> Result<Vec<String>, StorageError> {
    use diesel::connection::SimpleConnection;
    let locked = match conn {
        Connection::Mysql(c) => c
            .batch_execute("DO GET_LOCK('sluice_migrations', 120)")
            .is_ok(),
        Connection::Sqlite(_) => false,
    };
    let mut attempt = 0;
    let r = loop {
        attempt += 1;
        match run_migrations_once(conn) {
            Err(StorageError::Migration(m)) if attempt < 4 && m.contains("already exists") => {
                std::thread::sleep(std::time::Duration::from_millis(200 * attempt));
            }
            r => break r,
        }
    };
    if locked {
        if let Connection::Mysql(c) = conn {
            let _ = c.batch_execute("DO RELEASE_LOCK('sluice_migrations')");
        }
    }
    r
}

fn run_migrations_once(conn: &mut Connection) -> Result<Vec<String>, StorageError> {
    let applied = match conn {
        Connection::Mysql(c) => c
            .run_pending_migrations(MYSQL_MIGRATIONS)
            .map(|v| v.iter().map(|m| m.to_string()).collect::<Vec<_>>()),
        Connection::Sqlite(c) => c
            .run_pending_migrations(SQLITE_MIGRATIONS)
            .map(|v| v.iter().map(|m| m.to_string()).collect::<Vec<_>>()),
    };
    applied.map_err(|e| {
        let message = e.to_string();
        if super::connection::is_transient_message(&message) {
            // The link dropped mid-way: migrations are re-run from the recorded versions.
            StorageError::Database {
                message,
                transient: true,
            }
        } else {
            StorageError::Migration(message)
        }
    })
}

/// Reverts the last `n` applied migrations, newest first (each one's `down.sql`); returns
/// their versions. Data in the columns and tables they dropped is lost; the rest stays.
pub fn revert_migrations(conn: &mut Connection, n: usize) -> Result<Vec<String>, StorageError> {
    let mut reverted = Vec::new();
    for _ in 0..n {
        let r = match conn {
            Connection::Mysql(c) => c
                .revert_last_migration(MYSQL_MIGRATIONS)
                .map(|v| v.to_string()),
            Connection::Sqlite(c) => c
                .revert_last_migration(SQLITE_MIGRATIONS)
                .map(|v| v.to_string()),
        };
        reverted.push(r.map_err(|e| StorageError::Migration(e.to_string()))?);
    }
    Ok(reverted)
}

/// Options of `sluice migrate`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct MigrateArgs {
    /// Revert the last N applied migrations (newest first) instead of applying pending ones,
    /// e.g. before going back to an older Sluice.
    #[arg(long, value_name = "N")]
    pub revert: Option<usize>,
}

/// `sluice migrate [--revert N]`: applies pending migrations, or reverts the last `N`.
pub fn migrate_cli(
    url: &super::DatabaseUrl,
    args: &MigrateArgs,
) -> Result<Vec<String>, StorageError> {
    match args.revert {
        None => migrate(url),
        Some(n) => {
            let mut conn = super::connect(url)?;
            let reverted = revert_migrations(&mut conn, n)?;
            log::info!("{url}: reverted migrations {}", reverted.join(", "));
            Ok(reverted)
        }
    }
}

/// `sluice migrate`: connects to `url` and applies pending migrations; logs what it did.
pub fn migrate(url: &super::DatabaseUrl) -> Result<Vec<String>, StorageError> {
    let mut conn = super::connect(url)?;
    let applied = run_migrations(&mut conn)?;
    if applied.is_empty() {
        log::info!("{url}: schema is up to date");
    } else {
        log::info!("{url}: applied migrations {}", applied.join(", "));
    }
    Ok(applied)
}
