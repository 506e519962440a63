//! The database's own floor for rows already stored: the seconds it takes to copy them with
//! `INSERT … SELECT` into an empty schema, in one transaction and in primary-key order (the
//! friendliest order for the B-trees) — no client, no statements, no network, no JSON. A writer
//! that sends the same rows from outside cannot be faster, so the Writer's figures are printed
//! next to it (`benches/writer_throughput.rs`, `sluice bench overhead`).
use std::path::Path;
use std::time::Instant;

use crate::storage::{connect, run_migrations, Connection, DatabaseUrl, StorageError};

/// The tables of stored conversations the floor copies.
pub const FLOOR_TABLES: [&str; 5] = [
    "conversations",
    "participants",
    "sessions",
    "segments",
    "session_metrics",
];

/// A floor measurement that failed, with the step.
#[derive(Debug, thiserror::Error)]
#[error("floor copy, {step}: {source}")]
pub struct FloorError {
    pub step: String,
    #[source]
    pub source: StorageError,
}

fn at(step: impl Into<String>) -> impl FnOnce(StorageError) -> FloorError {
    let step = step.into();
    move |source| FloorError { step, source }
}

fn copy_sql(target: &str, source: &str) -> String {
    let copies = FLOOR_TABLES
        .iter()
        // The WHERE keeps SQLite from copying whole B-tree records (its transfer optimization
        // for `INSERT INTO empty SELECT * FROM same-shaped table`).
        .map(|t| format!("INSERT INTO {target}.{t} SELECT * FROM {source}.{t} WHERE 1 = 1;"))
        .collect::<String>();
    format!("BEGIN; {copies} COMMIT;")
}

/// The copy on `c` into the empty schema `target`; returns the seconds it took (only the copy
/// is timed), after checking that every table holds as many rows as its source.
fn timed_copy(c: &mut Connection, target: &str, source: &str) -> Result<f64, FloorError> {
    let t = Instant::now();
    c.batch_execute(&copy_sql(target, source))
        .map_err(at("copy"))?;
    let secs = t.elapsed().as_secs_f64();
    for t in FLOOR_TABLES {
        let (copied, stored) = (
            count(c, &format!("{target}.{t}"))?,
            count(c, &format!("{source}.{t}"))?,
        );
        if copied != stored {
            return Err(FloorError {
                step: format!("check {t}"),
                source: StorageError::Database {
                    transient: false,
                    message: format!("copied {copied} rows of {stored}"),
                },
            });
        }
    }
    Ok(secs)
}

fn count(c: &mut Connection, table: &str) -> Result<i64, FloorError> {
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let sql = format!("SELECT CAST(COUNT(*) AS SIGNED) AS n FROM {table}");
    let sql = if matches!(c, Connection::Sqlite(_)) {
        sql.replace("SIGNED", "INTEGER")
    } else {
        sql
    };
    crate::dispatch!(&mut *c, |x| diesel::sql_query(&sql).get_result::<N>(x))
        .map(|r| r.n)
        .map_err(|e| at(format!("count {table}"))(e.into()))
}

/// Seconds the database of `url` takes to copy the rows of [`FLOOR_TABLES`] into an empty,
/// freshly migrated schema beside it (MariaDB: database `<name>_floor` on the same server,
/// dropped afterwards; SQLite: the file `<name>.floor.db` next to it, removed afterwards).
/// Only the copy is timed.
pub fn floor_seconds(url: &DatabaseUrl) -> Result<f64, FloorError> {
    match url {
        DatabaseUrl::Mysql(u) => {
            let (base, source) = u.rsplit_once('/').ok_or_else(|| FloorError {
                step: "database name".into(),
                source: StorageError::InvalidUrl(url.redacted()),
            })?;
            let source = source.split('?').next().unwrap_or(source);
            let target = format!("{source}_floor");
            let mut admin = connect(url).map_err(at("connect"))?;
            admin
                .batch_execute(&format!(
                    "DROP DATABASE IF EXISTS `{target}`; CREATE DATABASE `{target}`"
                ))
                .map_err(at(format!("create {target}")))?;
            let turl = DatabaseUrl::Mysql(format!("{base}/{target}"));
            let timed = (|| {
                let mut c = connect(&turl).map_err(at("connect"))?;
                run_migrations(&mut c).map_err(at("migrations"))?;
                timed_copy(&mut c, &format!("`{target}`"), &format!("`{source}`"))
            })();
            let dropped = admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS `{target}`"))
                .map_err(at(format!("drop {target}")));
            let secs = timed?;
            dropped?;
            Ok(secs)
        }
        DatabaseUrl::Sqlite(path) => {
            let target = path.with_extension("floor.db");
            let timed = (|| {
                let mut c = connect(&DatabaseUrl::sqlite(&target)).map_err(at("open"))?;
                run_migrations(&mut c).map_err(at("migrations"))?;
                c.batch_execute(&format!(
                    "ATTACH '{}' AS src;",
                    path.display().to_string().replace('\'', "''")
                ))
                .map_err(at("attach"))?;
                timed_copy(&mut c, "main", "src")
            })();
            remove_sqlite(&target);
            timed
        }
    }
}

fn remove_sqlite(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::harness::ScratchDir;
    use crate::storage::models::{db_time, ConversationRecord, ConversationRows};

    fn conversation(k: usize) -> ConversationRecord {
        let json = format!(
            r#"{{"conversationId":"c{k}","conversationStart":"2024-03-01T08:00:00Z",
              "participants":[{{"participantId":"p{k}","purpose":"agent","sessions":[{{"sessionId":"s{k}",
                "segments":[{{"segmentStart":"2024-03-01T08:00:00Z","segmentType":"interact"}},
                            {{"segmentStart":"2024-03-01T08:01:00Z","segmentType":"wrapup"}}]}}]}}]}}"#
        );
        ConversationRecord {
            received: serde_json::from_str(&json).expect("conversation"),
            is_final: true,
        }
    }

    #[test]
    fn sqlite_floor_copies_every_stored_table_and_cleans_up() {
        let dir = ScratchDir::new("floor-test").expect("scratch");
        let path = dir.path().join("src.db");
        let url = DatabaseUrl::sqlite(&path);
        let mut c = connect(&url).expect("open");
        run_migrations(&mut c).expect("migrate");
        drop(c);
        let secs = floor_seconds(&url).expect("floor on an empty schema");
        assert!(secs >= 0.0);
        assert!(
            !path.with_extension("floor.db").exists(),
            "the copy is removed"
        );
        // With rows: the copy takes every row of every table (checked inside, an error
        // otherwise).
        let mut c = connect(&url).expect("open");
        let recs: Vec<ConversationRecord> = (0..5).map(conversation).collect();
        let mut rows = ConversationRows::default();
        let now = db_time(chrono::Utc::now());
        for r in &recs {
            rows.push(r, now, None);
        }
        use diesel::RunQueryDsl;
        crate::dispatch!(&mut c, |x| crate::multi_row_insert!(
            conversations,
            &rows.conversations[..]
        )
        .execute(x))
        .expect("conversations");
        crate::dispatch!(&mut c, |x| crate::multi_row_insert!(
            participants,
            &rows.participants[..]
        )
        .execute(x))
        .expect("participants");
        crate::dispatch!(&mut c, |x| crate::multi_row_insert!(
            sessions,
            &rows.sessions[..]
        )
        .execute(x))
        .expect("sessions");
        crate::dispatch!(&mut c, |x| crate::multi_row_insert!(
            segments,
            &rows.segments[..]
        )
        .execute(x))
        .expect("segments");
        drop(c);
        floor_seconds(&url).expect("every row copied");
        // A table the floor copies that the schema lacks is an error, not a silent 0.
        let mut c = connect(&url).expect("open");
        c.batch_execute("DROP TABLE session_metrics").expect("drop");
        drop(c);
        let e = floor_seconds(&url).expect_err("missing table");
        assert!(e.to_string().contains("copy"), "{e}");
    }
}
