//! Multi-row INSERTs that stay prepared.
//!
//! diesel prepares its own multi-row INSERT (`insert_into(t).values(&rows[..])`) anew for every
//! execution and closes it afterwards, because the statement's text depends on the number of
//! rows. On MySQL that preparation (the SQL parsed by server and driver, one parameter
//! definition sent back per bind) cost more than the insert itself. [`MultiRowInsert`]
//! renders the same statement from the rows' own diesel `Insertable` values, but lets the
//! connection's statement cache keep it under its SQL text and bind types — exact, since the
//! same text and types always mean the same statement. The Writer uses a few fixed row counts
//! (`write::STATEMENT_ROWS`), so each connection keeps a handful of statements per table.

use diesel::backend::Backend;
use diesel::insertable::InsertValues;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::{QueryResult, Table};

/// `INSERT INTO table (columns) VALUES (…), (…), …` for rows of one [`Insertable`] type, built
/// with [`multi_row_insert!`](crate::multi_row_insert).
///
/// [`Insertable`]: diesel::Insertable
#[derive(Debug)]
pub struct MultiRowInsert<Tab, V> {
    table_name: &'static str,
    rows: Vec<V>,
    /// Appended after the rows, e.g. an upsert's `ON DUPLICATE KEY UPDATE …` (see
    /// [`super::rewrite`]); empty for a plain INSERT.
    suffix: String,
    _table: std::marker::PhantomData<Tab>,
}

impl<Tab, V> MultiRowInsert<Tab, V> {
    /// `rows` are the values of each row's `Insertable` (its `ValuesClause`'s `values`).
    pub fn new(table_name: &'static str, rows: Vec<V>) -> Self {
        MultiRowInsert {
            table_name,
            rows,
            suffix: String::new(),
            _table: std::marker::PhantomData,
        }
    }

    /// The same INSERT followed by `suffix` (an upsert clause of the connection's dialect).
    pub fn with_suffix(mut self, suffix: String) -> Self {
        self.suffix = suffix;
        self
    }
}

impl<Tab, V, DB> QueryFragment<DB> for MultiRowInsert<Tab, V>
where
    DB: Backend,
    Tab: Table,
    V: InsertValues<DB, Tab>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        let Some(first) = self.rows.first() else {
            return Err(diesel::result::Error::QueryBuilderError(
                "an INSERT needs at least one row".into(),
            ));
        };
        out.push_sql("INSERT INTO ");
        out.push_identifier(self.table_name)?;
        out.push_sql(" (");
        first.column_names(out.reborrow())?;
        out.push_sql(") VALUES ");
        for (i, row) in self.rows.iter().enumerate() {
            if i > 0 {
                out.push_sql(", ");
            }
            out.push_sql("(");
            row.walk_ast(out.reborrow())?;
            out.push_sql(")");
        }
        if !self.suffix.is_empty() {
            out.push_sql(" ");
            out.push_sql(&self.suffix);
        }
        Ok(())
    }
}

/// No static id: the statement cache keys the statement by its SQL text and bind types.
impl<Tab, V> QueryId for MultiRowInsert<Tab, V> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Tab, V, Conn> diesel::RunQueryDsl<Conn> for MultiRowInsert<Tab, V> {}

/// A plain [`MultiRowInsert`] of exactly `N` rows of the `Insertable` struct `Row` (named with a
/// `'static` lifetime). Its text is a function of `Tab`, `Row`'s columns and `N` alone, so the
/// statement cache keys it by that type: a cached execution only binds, where a
/// `MultiRowInsert` renders its whole text (some 20 KB at 256 rows) and hashes and compares it
/// to find the statement.
pub struct FixedInsert<Tab, Row, V, const N: usize> {
    insert: MultiRowInsert<Tab, V>,
    _row: std::marker::PhantomData<Row>,
}

impl<Tab, Row, V, const N: usize> FixedInsert<Tab, Row, V, N> {
    /// `None` unless `insert` has exactly `N` rows and no suffix.
    pub fn new(insert: MultiRowInsert<Tab, V>) -> Option<Self> {
        (insert.rows.len() == N && insert.suffix.is_empty()).then_some(FixedInsert {
            insert,
            _row: std::marker::PhantomData,
        })
    }
}

impl<Tab, Row, V, DB, const N: usize> QueryFragment<DB> for FixedInsert<Tab, Row, V, N>
where
    DB: Backend,
    MultiRowInsert<Tab, V>: QueryFragment<DB>,
{
    fn walk_ast<'b>(&'b self, out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        self.insert.walk_ast(out)
    }
}

/// Row counts as types, for [`FixedInsert`]'s statement key.
pub struct RowCount<const N: usize>;

impl<Tab: 'static, Row: 'static, V, const N: usize> QueryId for FixedInsert<Tab, Row, V, N> {
    type QueryId = (Tab, Row, RowCount<N>);
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<Tab, Row, V, Conn, const N: usize> diesel::RunQueryDsl<Conn> for FixedInsert<Tab, Row, V, N> {}

/// `multi_row_insert!(conversations, &rows[..])`: a [`MultiRowInsert`] of `rows` (anything
/// iterable over `Insertable<table>` values) into the schema's `table`.
#[macro_export]
macro_rules! multi_row_insert {
    ($table:ident, $rows:expr) => {
        $crate::storage::prepared::MultiRowInsert::<$crate::storage::schema::$table::table, _>::new(
            stringify!($table),
            $rows
                .into_iter()
                .map(|r| {
                    diesel::Insertable::<$crate::storage::schema::$table::table>::values(r).values
                })
                .collect(),
        )
    };
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use diesel::debug_query;
    use diesel::mysql::Mysql;
    use diesel::sqlite::Sqlite;

    use crate::storage::models::{db_time, ConversationRecord, ConversationRows};
    use crate::storage::schema::{conversations, segments, sessions};

    fn rows_of(json: &str) -> ConversationRecord {
        ConversationRecord {
            received: serde_json::from_str(json).unwrap(),
            is_final: true,
        }
    }

    #[test]
    fn renders_the_statement_diesel_would() {
        let a = rows_of(
            r#"{"conversationId":"a","conversationStart":"2024-03-01T08:00:00Z",
              "participants":[{"participantId":"p","purpose":"agent","sessions":[{"sessionId":"s",
                "segments":[{"segmentStart":"2024-03-01T08:00:00Z","segmentType":"interact"},
                            {"segmentStart":"2024-03-01T08:01:00Z","segmentType":"wrapup"}]}]}]}"#,
        );
        let b = rows_of(
            r#"{"conversationId":"b","conversationStart":"2024-03-01T09:00:00Z","divisionIds":["d"],
              "participants":[{"participantId":"q","sessions":[{"sessionId":"t","mediaType":"voice",
                "segments":[{"segmentStart":"2024-03-01T09:00:00Z","queueId":"x"}]}]}]}"#,
        );
        let mut rows = ConversationRows::default();
        let now = db_time(Utc::now());
        rows.push(&a, now, None);
        rows.push(&b, now, None);
        let ours = crate::multi_row_insert!(segments, &rows.segments[..]);
        let theirs = diesel::insert_into(segments::table).values(&rows.segments[..]);
        assert_eq!(
            debug_query::<Mysql, _>(&ours).to_string(),
            debug_query::<Mysql, _>(&theirs).to_string()
        );
        assert_eq!(
            debug_query::<Sqlite, _>(&ours).to_string(),
            debug_query::<Sqlite, _>(&theirs).to_string()
        );
        let ours = crate::multi_row_insert!(sessions, &rows.sessions[..]);
        let theirs = diesel::insert_into(sessions::table).values(&rows.sessions[..]);
        assert_eq!(
            debug_query::<Mysql, _>(&ours).to_string(),
            debug_query::<Mysql, _>(&theirs).to_string()
        );
        let ours = crate::multi_row_insert!(conversations, &rows.conversations[..]);
        let theirs = diesel::insert_into(conversations::table).values(&rows.conversations[..]);
        let sql = debug_query::<Sqlite, _>(&ours).to_string();
        assert_eq!(sql, debug_query::<Sqlite, _>(&theirs).to_string());
        assert!(
            sql.starts_with("INSERT INTO `conversations` (`conversation_id`"),
            "{sql}"
        );
    }

    #[test]
    fn fixed_inserts_of_different_sizes_and_tables_keep_their_own_statements() {
        use diesel::{QueryDsl, RunQueryDsl};

        use super::{FixedInsert, MultiRowInsert};
        use crate::storage::connection::{connect, Connection, DatabaseUrl};
        use crate::storage::models::{NewSegment, NewSession};

        let dir = tempfile::tempdir().unwrap();
        let mut conn = connect(&DatabaseUrl::sqlite(dir.path().join("f.db"))).unwrap();
        crate::storage::run_migrations(&mut conn).unwrap();
        let Connection::Sqlite(c) = &mut conn else {
            unreachable!()
        };
        let recs: Vec<ConversationRecord> = (0..5)
            .map(|i| {
                rows_of(&format!(
                    r#"{{"conversationId":"c{i}","conversationStart":"2024-03-01T08:00:00Z",
                      "participants":[{{"participantId":"p","sessions":[{{"sessionId":"s",
                        "segments":[{{"segmentStart":"2024-03-01T08:00:00Z","segmentType":"interact"}}]}}]}}]}}"#
                ))
            })
            .collect();
        let mut rows = ConversationRows::default();
        let now = db_time(Utc::now());
        for r in &recs {
            rows.push(r, now, None);
        }
        // Each (table, row struct, size) is its own cached statement: a 1-row INSERT after a
        // 4-row one of the same table, and one of another table, bind their own statements.
        let four = crate::multi_row_insert!(segments, &rows.segments[..4]);
        let q = FixedInsert::<segments::table, NewSegment<'static>, _, 4>::new(four).unwrap();
        assert_eq!(q.execute(c).unwrap(), 4);
        let one = crate::multi_row_insert!(segments, &rows.segments[4..]);
        let q = FixedInsert::<segments::table, NewSegment<'static>, _, 1>::new(one).unwrap();
        assert_eq!(q.execute(c).unwrap(), 1);
        let one = crate::multi_row_insert!(sessions, &rows.sessions[..1]);
        let q = FixedInsert::<sessions::table, NewSession<'static>, _, 1>::new(one).unwrap();
        assert_eq!(q.execute(c).unwrap(), 1);
        let stored: i64 = segments::table.count().get_result(c).unwrap();
        assert_eq!(stored, 5);

        // A row count other than N, or a suffix, is refused rather than run with the wrong
        // statement.
        let two = crate::multi_row_insert!(segments, &rows.segments[..2]);
        assert!(FixedInsert::<segments::table, NewSegment<'static>, _, 4>::new(two).is_none());
        let upsert: MultiRowInsert<segments::table, _> =
            crate::multi_row_insert!(segments, &rows.segments[..1])
                .with_suffix("ON CONFLICT DO NOTHING".into());
        assert!(FixedInsert::<segments::table, NewSegment<'static>, _, 1>::new(upsert).is_none());
    }
}
