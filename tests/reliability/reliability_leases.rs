//! Leases and fencing between instances, on MariaDB and SQLite, through the storage layer:
//! the lease answer (leased / held elsewhere until T / finished), every partition state change
//! fenced by its token and status, run ids from the insert under concurrent inserts, and the
//! leader lease (claim, renew, expiry, takeover, release, reclaim of the old leader's work).
use crate::common;

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use common::db::TestDb;
use sluice::storage::checkpoint::{self, LeaseAnswer, PartitionCompletion};
use sluice::storage::instances::{self, LeaderAnswer, Role};
use sluice::storage::{Connection, Dataset, NewPartition, PartitionStatus, StorageError};

const LEASE: Duration = Duration::from_secs(30);

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 10, 12, 0, 0).unwrap()
}

fn secs(n: i64) -> chrono::Duration {
    chrono::Duration::seconds(n)
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

fn leased(a: LeaseAnswer) -> String {
    match a {
        LeaseAnswer::Leased { token } => token,
        other => panic!("expected a lease, got {other:?}"),
    }
}

fn done() -> PartitionCompletion {
    PartitionCompletion {
        total_hits: 5,
        received: 5,
        verified: true,
        is_final: true,
        settled: true,
    }
}

fn status(conn: &mut Connection, id: i64) -> PartitionStatus {
    checkpoint::get_partition(conn, id).unwrap().unwrap().status
}

#[test]
fn the_lease_answer_says_leased_held_elsewhere_until_when_or_finished() {
    for db in TestDb::both() {
        let conn = &mut db.connect();
        let id = plan(conn, 1)[0];
        let now = t0();
        let a = leased(checkpoint::try_lease_partition(conn, id, "a", LEASE, now).unwrap());
        match checkpoint::try_lease_partition(conn, id, "b", LEASE, now + secs(1)).unwrap() {
            LeaseAnswer::HeldElsewhere { owner, until } => {
                assert_eq!(owner.as_deref(), Some("a"));
                assert_eq!(until, now + secs(30), "{:?}", db.backend());
            }
            other => panic!("{other:?}"),
        }
        // After the lease ends, b takes it over; a's completion is refused.
        let b =
            leased(checkpoint::try_lease_partition(conn, id, "b", LEASE, now + secs(31)).unwrap());
        assert!(!checkpoint::complete_partition(conn, id, &a, &done(), now + secs(32)).unwrap());
        assert!(checkpoint::complete_partition(conn, id, &b, &done(), now + secs(32)).unwrap());
        assert_eq!(
            checkpoint::try_lease_partition(conn, id, "c", LEASE, now + secs(33)).unwrap(),
            LeaseAnswer::Finished {
                status: PartitionStatus::Done
            }
        );
        // The Option form (kept for callers that only need the token) agrees.
        assert_eq!(
            checkpoint::lease_partition(conn, id, "c", LEASE, now + secs(33)).unwrap(),
            None
        );
    }
}

#[test]
fn every_state_change_is_fenced_by_the_lease_token_and_status() {
    for db in TestDb::both() {
        let conn = &mut db.connect();
        let id = plan(conn, 1)[0];
        let now = t0();
        let a = leased(checkpoint::try_lease_partition(conn, id, "a", LEASE, now).unwrap());
        // Given back (a new leader reclaimed it): a's token no longer changes anything.
        assert!(checkpoint::release_partition(conn, id, &a, now).unwrap());
        assert!(!checkpoint::release_partition(conn, id, &a, now).unwrap());
        assert!(!checkpoint::fail_partition(conn, id, &a, "late", now).unwrap());
        assert!(!checkpoint::complete_partition(conn, id, &a, &done(), now).unwrap());
        let (mid, end) = (
            Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(2026, 3, 2, 0, 0, 0).unwrap(),
        );
        let start = Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap();
        match checkpoint::split_partition(conn, id, &a, &[(start, mid), (mid, end)], now) {
            Err(StorageError::LeaseLost { partition_id }) => assert_eq!(partition_id, id),
            other => panic!("a stale split must be refused: {other:?}"),
        }
        assert_eq!(status(conn, id), PartitionStatus::Pending);
        assert_eq!(
            checkpoint::load_partitions(conn, &[Dataset::Conversations], start, end)
                .unwrap()
                .len(),
            1,
            "a refused split created children"
        );
        // The holder's split works; afterwards its token is spent.
        let b = leased(checkpoint::try_lease_partition(conn, id, "b", LEASE, now).unwrap());
        let children =
            checkpoint::split_partition(conn, id, &b, &[(start, mid), (mid, end)], now).unwrap();
        assert_eq!(children.len(), 2);
        assert!(!checkpoint::fail_partition(conn, id, &b, "late", now).unwrap());
        assert!(!checkpoint::complete_partition(conn, id, &b, &done(), now).unwrap());
        assert_eq!(status(conn, id), PartitionStatus::Split);
        // A completion retried under the same token (ambiguous commit) stays accepted.
        let c =
            leased(checkpoint::try_lease_partition(conn, children[0].id, "c", LEASE, now).unwrap());
        assert!(checkpoint::complete_partition(conn, children[0].id, &c, &done(), now).unwrap());
        assert!(checkpoint::complete_partition(conn, children[0].id, &c, &done(), now).unwrap());
        // A failure needs the partition running under the token.
        let d =
            leased(checkpoint::try_lease_partition(conn, children[1].id, "d", LEASE, now).unwrap());
        assert!(checkpoint::fail_partition(conn, children[1].id, &d, "400", now).unwrap());
        assert!(!checkpoint::fail_partition(conn, children[1].id, &d, "400", now).unwrap());
    }
}

#[test]
fn run_ids_come_from_the_insert_under_concurrent_instances() {
    for db in TestDb::both() {
        let threads: Vec<_> = (0..3)
            .map(|k| {
                let mut conn = db.connect();
                std::thread::spawn(move || {
                    (0..15)
                        .map(|i| {
                            let command = format!("i{k}-{i}");
                            let id =
                                checkpoint::start_run(&mut conn, &command, None, t0()).unwrap();
                            (id, command)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let got: Vec<(i64, String)> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        let mut conn = db.connect();
        let mut ids = std::collections::BTreeSet::new();
        for (id, command) in &got {
            assert!(ids.insert(*id), "run id {id} handed out twice");
            // The id names the row this call inserted.
            use diesel::{ExpressionMethods, QueryDsl, RunQueryDsl};
            use sluice::storage::schema::ingest_runs;
            let stored: String = sluice::dispatch!(&mut conn, |c| ingest_runs::table
                .filter(ingest_runs::id.eq(*id))
                .select(ingest_runs::command)
                .first(c))
            .unwrap();
            assert_eq!(&stored, command, "run id {id} names another run's row");
        }
        assert_eq!(ids.len(), 45, "{:?}", db.backend());
    }
}

#[test]
fn one_leader_per_client_takeover_after_expiry_and_release() {
    for db in TestDb::both() {
        let conn = &mut db.connect();
        let now = t0();
        let key = "client-1";
        let claim = |conn: &mut Connection, who: &str, token: &str, at| {
            instances::claim_leader(conn, key, who, token, LEASE, at).unwrap()
        };
        assert_eq!(claim(conn, "a", "ta", now), LeaderAnswer::Held);
        assert_eq!(
            claim(conn, "b", "tb", now + secs(1)),
            LeaderAnswer::HeldElsewhere {
                holder: "a".into(),
                until: now + secs(30)
            }
        );
        // Another client has its own leader.
        assert_eq!(
            instances::claim_leader(conn, "client-2", "b", "tb", LEASE, now).unwrap(),
            LeaderAnswer::Held
        );
        // Renewal extends; b still waits.
        assert_eq!(claim(conn, "a", "ta", now + secs(10)), LeaderAnswer::Held);
        assert!(matches!(
            claim(conn, "b", "tb", now + secs(35)),
            LeaderAnswer::HeldElsewhere { .. }
        ));
        // a stops renewing (killed): b takes over once the lease ran out, and a cannot renew.
        assert_eq!(claim(conn, "b", "tb", now + secs(40)), LeaderAnswer::Held);
        assert!(matches!(
            claim(conn, "a", "ta", now + secs(41)),
            LeaderAnswer::HeldElsewhere { .. }
        ));
        assert!(!instances::release_leader(conn, key, "ta", now + secs(42)).unwrap());
        // b gives it up (graceful stop): c takes it at once.
        assert!(instances::release_leader(conn, key, "tb", now + secs(42)).unwrap());
        assert_eq!(claim(conn, "c", "tc", now + secs(43)), LeaderAnswer::Held);
        // A restarted process of the same host takes over from its dead predecessor at once,
        // but only from the holder it saw.
        let take = |conn: &mut Connection, dead: &str| {
            instances::take_over_leader(conn, key, dead, "d", "td", LEASE, now + secs(44)).unwrap()
        };
        assert!(!take(conn, "a"));
        assert!(take(conn, "c"));
        assert!(matches!(
            claim(conn, "c", "tc", now + secs(45)),
            LeaderAnswer::HeldElsewhere { .. }
        ));
    }
}

#[test]
fn a_new_leader_reclaims_the_old_leaders_partitions_and_adopts_waiting_ones() {
    for db in TestDb::both() {
        let conn = &mut db.connect();
        let ids = plan(conn, 5);
        let now = t0();
        let old = leased(checkpoint::try_lease_partition(conn, ids[0], "old", LEASE, now).unwrap());
        let _mine =
            leased(checkpoint::try_lease_partition(conn, ids[1], "new", LEASE, now).unwrap());
        let t = leased(checkpoint::try_lease_partition(conn, ids[2], "x", LEASE, now).unwrap());
        assert!(checkpoint::complete_partition(conn, ids[2], &t, &done(), now).unwrap());
        let t = leased(checkpoint::try_lease_partition(conn, ids[3], "x", LEASE, now).unwrap());
        let short = PartitionCompletion {
            received: 4,
            verified: false,
            ..done()
        };
        assert!(checkpoint::complete_partition(conn, ids[3], &t, &short, now).unwrap());
        // Waiting: pending only (the running ones hold live leases).
        let waiting = |conn: &mut Connection, at| -> Vec<i64> {
            instances::waiting_partitions(conn, &[Dataset::Conversations, Dataset::Users], at)
                .unwrap()
                .into_iter()
                .map(|r| r.id)
                .collect()
        };
        assert_eq!(waiting(conn, now), vec![ids[4]]);
        // …and running ones whose lease expired.
        assert_eq!(waiting(conn, now + secs(31)), vec![ids[0], ids[1], ids[4]]);
        // The new leader gives back what the old one held, not its own.
        assert_eq!(
            instances::reclaim_foreign_leases(conn, "new", now + secs(1)).unwrap(),
            1
        );
        assert_eq!(status(conn, ids[0]), PartitionStatus::Pending);
        assert_eq!(status(conn, ids[1]), PartitionStatus::Running);
        assert!(!checkpoint::complete_partition(conn, ids[0], &old, &done(), now).unwrap());
        // A standby backfill hands its range over: the unverified one is pending again.
        let (from, to) = (
            Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(2026, 3, 6, 0, 0, 0).unwrap(),
        );
        assert_eq!(
            instances::hand_over_range(conn, &[Dataset::Conversations], from, to, now).unwrap(),
            1
        );
        assert_eq!(status(conn, ids[3]), PartitionStatus::Pending);
        assert_eq!(status(conn, ids[2]), PartitionStatus::Done);
        // Heartbeats: both roles listed, a stopped instance forgotten.
        instances::heartbeat(conn, "new", "k", "run", Role::Active, now, now).unwrap();
        instances::heartbeat(conn, "b", "k", "backfill", Role::Standby, now, now).unwrap();
        instances::heartbeat(
            conn,
            "b",
            "k",
            "backfill",
            Role::Standby,
            now,
            now + secs(1),
        )
        .unwrap();
        let live = instances::live_instances(conn, now).unwrap();
        let roles: Vec<(&str, &str)> = live
            .iter()
            .map(|i| (i.instance.as_str(), i.role.as_str()))
            .collect();
        assert_eq!(roles, vec![("b", "standby"), ("new", "active")]);
        instances::forget_instance(conn, "b").unwrap();
        assert_eq!(instances::live_instances(conn, now).unwrap().len(), 1);
    }
}
