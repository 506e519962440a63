//! Database restart mid-run: MariaDB is really stopped (`mysqladmin shutdown`) while a backfill
//! writes into it, and started again a few seconds later. The run must complete with nothing
//! lost or duplicated.
//!
//! Tests in a binary run in parallel: this one claims the server exclusively
//! (`common::db::mariadb_exclusive`), so no test that uses MariaDB sees it go away. A guard
//! restarts the server even when the test fails.
use crate::common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::process::*;

fn mariadb_answers() -> bool {
    Command::new("mysqladmin")
        .args(["--protocol=TCP", "-h127.0.0.1", "-P3306", "-uroot", "ping"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn start_mariadb() {
    // `--pidfile`: only the shared server's own pid counts as "already running". With
    // `--exec` alone, any other mariadbd on the machine (a bench's dedicated server,
    // `sluice::bench::mariadb`) made start-stop-daemon start nothing.
    let _ = Command::new("start-stop-daemon")
        .args([
            "--start",
            "--oknodo",
            "--background",
            "--pidfile",
            "/run/mysqld/mysqld.pid",
            "--exec",
            "/usr/sbin/mariadbd",
        ])
        .status();
    let t = Instant::now();
    while !mariadb_answers() && t.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn stop_mariadb() {
    let status = Command::new("mysqladmin")
        .args(["-uroot", "-h127.0.0.1", "shutdown"])
        .status()
        .expect("run mysqladmin shutdown");
    assert!(status.success(), "mysqladmin shutdown failed");
    let t = Instant::now();
    while mariadb_answers() && t.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Starts MariaDB again on drop, whatever happened in the test.
struct RestartGuard;

impl Drop for RestartGuard {
    fn drop(&mut self) {
        if !mariadb_answers() {
            start_mariadb();
        }
    }
}

#[test]
fn mariadb_restart_mid_run_loses_nothing() {
    // No other test may use the server while it is down.
    let _mariadb = common::db::mariadb_exclusive();
    assert!(mariadb_answers(), "MariaDB must answer on 127.0.0.1:3306");
    let long = long_tests();
    let (days, per_day, down_for) = if long {
        (30, 400, Duration::from_secs(20))
    } else {
        (12, 150, Duration::from_secs(4))
    };
    let dir = ScratchDir::new("sluice-dbrestart").expect("scratch dir");
    let org = Org::new(days, per_day, 20);
    let sim = start_sim(
        &dir,
        &org,
        11,
        &[
            "--rate-per-minute",
            "300",
            "--window-secs",
            "10",
            "--latency-ms",
            "20,120",
        ],
    );
    let db = ScratchDb::mysql("sluice_dbrestart").expect("MariaDB scratch database");
    let cmd = backfill_cmd(&dir, &sim, &db, &org)
        .args(["--mode", "query"])
        .env("SLUICE_RATE_PER_MINUTE", "300")
        .env("SLUICE_RATE_WINDOW_SECS", "10");
    let mut p = cmd.spawn("backfill").expect("spawn backfill");

    // Let it write some partitions first.
    let t = Instant::now();
    let mut ended_early = None;
    while partitions_done(&db) < 2 && t.elapsed() < Duration::from_secs(30) {
        if let Some(f) = p.wait_timeout(Duration::from_millis(100)).expect("wait") {
            ended_early = Some(f);
            break;
        }
    }
    if let Some(f) = ended_early {
        panic!(
            "the backfill ended (exit {:?}) before the database could be stopped\n{}",
            f.code(),
            tail(&f.log, 3000)
        );
    }
    let done_before = partitions_done(&db);

    {
        let _guard = RestartGuard;
        stop_mariadb();
        std::thread::sleep(down_for);
        start_mariadb();
        assert!(mariadb_answers(), "MariaDB did not come back");
    }

    let f = p
        .wait_timeout(Duration::from_secs(180))
        .expect("wait")
        .unwrap_or_else(|| panic!("the backfill did not finish after the database came back"));
    assert_eq!(
        f.code(),
        Some(0),
        "the backfill failed after the database restart (done before the stop: {done_before}):\n{}",
        tail(&f.log, 4000)
    );
    assert_exact(&sim, &db, &org, &f.log);
}
