//! The checkpoint's settle and resync state changes, on MariaDB and SQLite: a completion
//! records `fetched_at` and whether it settled the block; reopening for a settle takes only
//! done, unsettled partitions; a resync reopens done, unverified and failed ones but never one
//! that is running under another lease.
use crate::common;

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use common::db::TestDb;
use sluice::storage::checkpoint::{self, PartitionCompletion};
use sluice::storage::{Connection, Dataset, NewPartition, PartitionStatus};

const LEASE: Duration = Duration::from_secs(30);

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 10, 12, 0, 0).unwrap()
}

fn plan(conn: &mut Connection, days: u32) -> Vec<i64> {
    let wanted: Vec<NewPartition> = (1..=days)
        .map(|d| NewPartition {
            dataset: Dataset::Conversations,
            range_start: Utc.with_ymd_and_hms(2026, 3, d, 0, 0, 0).unwrap(),
            range_end: Utc.with_ymd_and_hms(2026, 3, d + 1, 0, 0, 0).unwrap(),
        })
        .collect();
    checkpoint::plan_partitions(conn, &wanted, t0())
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect()
}

fn lease(conn: &mut Connection, id: i64) -> String {
    checkpoint::lease_partition(conn, id, "test", LEASE, t0())
        .unwrap()
        .expect("leased")
}

fn complete(conn: &mut Connection, id: i64, verified: bool, settled: bool) {
    let token = lease(conn, id);
    let done = PartitionCompletion {
        total_hits: 5,
        received: if verified { 5 } else { 4 },
        verified,
        is_final: true,
        settled,
    };
    assert!(checkpoint::complete_partition(conn, id, &token, &done, t0()).unwrap());
}

fn row(conn: &mut Connection, id: i64) -> checkpoint::PartitionRow {
    checkpoint::get_partition(conn, id).unwrap().unwrap()
}

#[test]
fn settle_and_resync_reopen_only_what_they_may() {
    for db in TestDb::both() {
        let mut conn = db.connect();
        let ids = plan(&mut conn, 5);
        complete(&mut conn, ids[0], true, false); // done, young
        complete(&mut conn, ids[1], true, true); // done, settled
        complete(&mut conn, ids[2], false, true); // unverified: never settled
        let running = lease(&mut conn, ids[3]);
        let failing = lease(&mut conn, ids[4]);
        assert!(checkpoint::fail_partition(&mut conn, ids[4], &failing, "boom", t0()).unwrap());

        let young = row(&mut conn, ids[0]);
        assert!(!young.is_settled && young.fetched_at.is_some(), "{young:?}");
        assert!(row(&mut conn, ids[1]).is_settled);
        assert!(
            !row(&mut conn, ids[2]).is_settled,
            "an unverified fetch settles nothing"
        );

        // Settle: only the done, unsettled one.
        assert_eq!(
            checkpoint::reopen_for_settle(&mut conn, &ids, t0()).unwrap(),
            1,
            "{:?}",
            db.backend()
        );
        assert_eq!(row(&mut conn, ids[0]).status, PartitionStatus::Pending);
        assert_eq!(row(&mut conn, ids[1]).status, PartitionStatus::Done);

        // Resync: done, unverified and failed; the running one keeps its lease.
        complete(&mut conn, ids[0], true, true);
        let from = Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap();
        let to = Utc.with_ymd_and_hms(2026, 3, 6, 0, 0, 0).unwrap();
        let n = checkpoint::reopen_for_resync(&mut conn, &[Dataset::Conversations], from, to, t0())
            .unwrap();
        assert_eq!(n, 4, "{:?}", db.backend());
        for &id in [ids[0], ids[1], ids[2], ids[4]].iter() {
            let r = row(&mut conn, id);
            assert_eq!(r.status, PartitionStatus::Pending, "{r:?}");
            assert_eq!(r.attempts, 0);
        }
        let r = row(&mut conn, ids[3]);
        assert_eq!(r.status, PartitionStatus::Running);
        assert_eq!(r.lease_token.as_deref(), Some(running.as_str()));
    }
}
