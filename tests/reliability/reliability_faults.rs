//! Faults from the simulator — 5 % 5xx, 2 % malformed bodies, latency spikes, tokens that expire
//! every few seconds or are revoked, jobs that end FAILED or EXPIRED, totalHits that drifts
//! between pages — and the backfill still completes with exactly the simulator's data.
use crate::common;

use std::time::Duration;

use common::process::*;

const FAULTS: &[&str] = &[
    "--fault-5xx",
    "0.05",
    "--fault-malformed",
    "0.02",
    "--total-hits-drift",
    "0.05",
    "--token-ttl-secs",
    "3",
];

#[test]
fn query_path_with_faults_is_complete_and_exact() {
    let (days, per_day) = if long_tests() { (20, 600) } else { (6, 150) };
    let dir = ScratchDir::new("sluice-faults-q").expect("scratch dir");
    let org = Org::new(days, per_day, 20);
    let mut extra = FAULTS.to_vec();
    // Latency spikes: most answers fast, some close to a second.
    extra.extend(["--latency-ms", "1,900"]);
    extra.extend(["--rate-per-minute", "1200", "--window-secs", "10"]);
    let sim = start_sim(&dir, &org, 21, &extra);
    let _mariadb = common::db::mariadb_shared();
    let db = ScratchDb::mysql("sluice_faults_q").expect("MariaDB scratch database");
    // Small pages: a few hundred requests, so 5 % and 2 % faults are all but sure to occur.
    let cmd = backfill_cmd(&dir, &sim, &db, &org)
        .args(["--mode", "query"])
        .env("SLUICE_PAGE_SIZE", "4")
        // The engine's budget is the simulator's (faults are the subject here, not pacing).
        .env("SLUICE_RATE_PER_MINUTE", "1200")
        .env("SLUICE_RATE_WINDOW_SECS", "10");
    // Tokens revoked under the engine's feet every 2 s (besides expiring every 3 s).
    let url = format!("{}/__sim/tokens/expire", sim.base_url());
    let revoker = Every::start(Duration::from_secs(2), move || {
        let _ = http_request("POST", &url, None, Duration::from_secs(5));
    });
    let f = run(&cmd, "backfill", Duration::from_secs(240));
    revoker.stop();
    let stats = sim.stats().expect("stats");
    eprintln!("faults: {}", stats["faults"]);
    assert_eq!(
        f.code(),
        Some(0),
        "backfill under faults failed:\n{}",
        tail(&f.log, 4000)
    );
    assert_exact(&sim, &db, &org, &f.log);
    for (what, n) in [
        ("5xx", json_u64(&stats, &["faults", "5xx"])),
        ("malformed body", json_u64(&stats, &["faults", "malformed"])),
        ("expired token (401)", json_u64(&stats, &["unauthorized"])),
    ] {
        assert!(
            n > 0,
            "no {what} was injected: the test proved little ({stats})"
        );
    }
}

#[test]
fn jobs_path_with_failed_and_expired_jobs_is_complete_and_exact() {
    let (days, per_day) = if long_tests() { (20, 600) } else { (6, 150) };
    let dir = ScratchDir::new("sluice-faults-j").expect("scratch dir");
    let org = Org::new(days, per_day, 20);
    let mut extra = FAULTS.to_vec();
    extra.extend([
        "--latency-ms",
        "1,400",
        "--fault-job-failed",
        "0.3",
        "--job-delay-ms",
        "300",
        // A third of the jobs that do not fail lose their results early: half of those say
        // EXPIRED at their first poll after completion, half say FULFILLED once and then answer
        // 404 on their results. Drawn per job, so the test does not depend on the machine's pace.
        "--fault-job-expired",
        "0.3",
    ]);
    let sim = start_sim(&dir, &org, 22, &extra);
    let db = ScratchDb::sqlite(dir.path(), "faults.db");
    let cmd = backfill_cmd(&dir, &sim, &db, &org)
        .args(["--mode", "jobs"])
        .env("SLUICE_JOB_POLL_SECS", "0.5")
        .env("SLUICE_JOB_POLL_MAX_SECS", "2");
    let f = run(&cmd, "backfill", Duration::from_secs(240));
    let stats = sim.stats().expect("stats");
    eprintln!("faults: {}", stats["faults"]);
    assert_eq!(
        f.code(),
        Some(0),
        "backfill through jobs under faults failed:\n{}",
        tail(&f.log, 4000)
    );
    assert_exact(&sim, &db, &org, &f.log);
    assert!(
        json_u64(&stats, &["faults", "jobsFailed"]) > 0,
        "no job FAILED: the test proved nothing ({stats})"
    );
    assert!(
        json_u64(&stats, &["faults", "jobsExpired"]) > 0,
        "no job was seen EXPIRED: the test proved nothing ({stats})"
    );
}
