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
}
