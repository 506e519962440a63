//! [`StoredTime`]: an instant as the Writer binds it into a timestamp column.
//!
//! SQLite has no date type: diesel stores a `NaiveDateTime` as text (`%F %T%.f`), formatting it
//! with chrono's format parser for every value bound. A first ingest binds about forty
//! instants per conversation, and that formatting took 7 % of the Writer's thread (perf, SQLite
//! first ingest). `StoredTime` writes the very same text directly, and binds to MySQL exactly as
//! `NaiveDateTime` does. Guarantee: for every instant, the text is byte for byte what diesel
//! would have written (property-tested against chrono), so stored values, their order and every
//! query comparing them are unchanged.

use chrono::{Datelike, NaiveDateTime, Timelike};
use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::mysql::Mysql;
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sql_types::Timestamp;
use diesel::sqlite::Sqlite;

/// A UTC instant in a timestamp column (the Writer's rows; see [`super::models::db_time`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, AsExpression, FromSqlRow)]
#[diesel(sql_type = Timestamp)]
pub struct StoredTime(pub NaiveDateTime);

impl From<NaiveDateTime> for StoredTime {
    fn from(t: NaiveDateTime) -> Self {
        StoredTime(t)
    }
}

impl From<StoredTime> for NaiveDateTime {
    fn from(t: StoredTime) -> Self {
        t.0
    }
}

/// The format diesel's SQLite backend writes a `NaiveDateTime` in.
const DIESEL_SQLITE_FORMAT: &str = "%F %T%.f";

/// `t` as diesel's SQLite backend writes it: `YYYY-MM-DD HH:MM:SS`, then `.` and 3, 6 or 9
/// digits when the instant has milli-, micro- or nanoseconds. Years outside 0..=9999 and leap
/// seconds (rare, with their own spellings) go through chrono.
pub fn sqlite_text(t: NaiveDateTime) -> String {
    let (year, nanos) = (t.year(), t.nanosecond());
    let Ok(year) = u32::try_from(year) else {
        return t.format(DIESEL_SQLITE_FORMAT).to_string();
    };
    if year > 9999 || nanos >= 1_000_000_000 {
        return t.format(DIESEL_SQLITE_FORMAT).to_string();
    }
    let mut b = [0u8; 29];
    digits(&mut b[0..4], year);
    b[4] = b'-';
    digits(&mut b[5..7], t.month());
    b[7] = b'-';
    digits(&mut b[8..10], t.day());
    b[10] = b' ';
    digits(&mut b[11..13], t.hour());
    b[13] = b':';
    digits(&mut b[14..16], t.minute());
    b[16] = b':';
    digits(&mut b[17..19], t.second());
    let len = if nanos == 0 {
        19
    } else if nanos % 1_000_000 == 0 {
        digits(&mut b[20..23], nanos / 1_000_000);
        23
    } else if nanos % 1_000 == 0 {
        digits(&mut b[20..26], nanos / 1_000);
        26
    } else {
        digits(&mut b[20..29], nanos);
        29
    };
    b[19] = b'.';
    b[..len].iter().map(|&c| char::from(c)).collect()
}

/// Writes `v` into `out` as decimal digits, zero-padded to its length (`v` fits).
fn digits(out: &mut [u8], mut v: u32) {
    for d in out.iter_mut().rev() {
        *d = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

impl ToSql<Timestamp, Sqlite> for StoredTime {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        out.set_value(sqlite_text(self.0));
        Ok(IsNull::No)
    }
}

impl ToSql<Timestamp, Mysql> for StoredTime {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Mysql>) -> serialize::Result {
        <NaiveDateTime as ToSql<Timestamp, Mysql>>::to_sql(&self.0, out)
    }
}

impl<DB> FromSql<Timestamp, DB> for StoredTime
where
    DB: Backend,
    NaiveDateTime: FromSql<Timestamp, DB>,
{
    fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<Self> {
        NaiveDateTime::from_sql(bytes).map(StoredTime)
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, NaiveDate};
    use proptest::prelude::*;

    use super::*;

    fn chrono_text(t: NaiveDateTime) -> String {
        t.format(DIESEL_SQLITE_FORMAT).to_string()
    }

    #[test]
    fn writes_what_diesel_writes() {
        let day = NaiveDate::from_ymd_opt(2024, 3, 1).unwrap();
        for (nanos, text) in [
            (0, "2024-03-01 09:05:07"),
            (120_000_000, "2024-03-01 09:05:07.120"),
            (120_500_000, "2024-03-01 09:05:07.120500"),
            (120_500_001, "2024-03-01 09:05:07.120500001"),
        ] {
            let t = day.and_hms_nano_opt(9, 5, 7, nanos).unwrap();
            assert_eq!(sqlite_text(t), text);
            assert_eq!(sqlite_text(t), chrono_text(t));
        }
        let leap = day.and_hms_nano_opt(23, 59, 59, 1_500_000_000).unwrap();
        assert_eq!(sqlite_text(leap), "2024-03-01 23:59:60.500");
        assert_eq!(sqlite_text(leap), chrono_text(leap));
        let far = NaiveDate::from_ymd_opt(12345, 1, 2)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap();
        assert_eq!(sqlite_text(far), chrono_text(far));
        let bc = NaiveDate::from_ymd_opt(-44, 3, 15)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap();
        assert_eq!(sqlite_text(bc), chrono_text(bc));
    }

    proptest! {
        #[test]
        fn same_text_as_chrono_for_any_instant(secs in -100_000_000_000i64..300_000_000_000i64,
                                               nanos in prop_oneof![
                                                   Just(0u32),
                                                   (0u32..1000).prop_map(|ms| ms * 1_000_000),
                                                   (0u32..1_000_000).prop_map(|us| us * 1_000),
                                                   0u32..2_000_000_000,
                                               ]) {
            if let Some(t) = DateTime::from_timestamp(secs, nanos).map(|t| t.naive_utc()) {
                prop_assert_eq!(sqlite_text(t), chrono_text(t));
            }
        }
    }
}
