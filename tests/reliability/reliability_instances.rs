//! Several instances, one org (issue #15): real `sluice` processes on one MariaDB database
//! against `sluice sim`, all with the same OAuth client.
//!
//! - Two and three `sluice backfill` processes of the same range started together; the one
//!   holding the leader lease is killed with SIGKILL mid-run: another takes over within the
//!   lease, every survivor exits 0, and the tables equal the simulator's truth.
//! - Two `sluice run` services; the active one is killed with SIGKILL: the standby takes over
//!   within the lease, finishes the service's range and keeps serving.
//! - A `sluice run` service and a `sluice backfill` of an older range beside it: the backfill
//!   stands by (healthy, and saying so), hands its range over, and exits 0 once the service
//!   fetched it; both ranges equal the truth.
//!
//! Every test checks the budget on the simulator's own counters: for the client, no rate
//! window with more requests than the limit, at most 8 requests in flight at once, and no
//! collateral 429 for the background integration.
use crate::common;

use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveTime, TimeZone, Utc};
use common::process::*;
use serde_json::Value;
use sluice::storage::instances;
use sluice::storage::{connect, DatabaseUrl};

/// The simulated org's limits, scaled: 300 per 60 s becomes 50 per 10 s.
const RATE_PER_MINUTE: &str = "300";
const WINDOW_SECS: u64 = 10;
const PER_WINDOW: u64 = 50;
/// `org_concurrency − concurrency_buffer` with the defaults (10 − 2).
const CONCURRENCY_CAP: u64 = 8;
const LEASE_SECS: u64 = 3;

fn sim_for(dir: &ScratchDir, org: &Org, seed: u64) -> SimProcess {
    start_sim(
        dir,
        org,
        seed,
        &[
            "--rate-per-minute",
            RATE_PER_MINUTE,
            "--window-secs",
            &WINDOW_SECS.to_string(),
            "--latency-ms",
            "150,700",
            "--bg-rps",
            "2",
            "--bg-concurrency",
            "2",
        ],
    )
}

/// The engine settings every instance shares: the client's budget, a short lease, an admin
/// server on a free port, small pages (so a run lasts long enough to be killed mid-way).
fn instance(cmd: SluiceCommand) -> SluiceCommand {
    cmd.args(["--mode", "query"])
        .env("SLUICE_RATE_PER_MINUTE", RATE_PER_MINUTE)
        .env("SLUICE_RATE_WINDOW_SECS", WINDOW_SECS.to_string())
        .env("SLUICE_LEASE_SECS", LEASE_SECS.to_string())
        .env("SLUICE_ADMIN_ADDR", "127.0.0.1:0")
        .env("SLUICE_PAGE_SIZE", "10")
}

/// The pid of the process holding the client's leader lease now (a live lease only).
fn leader_pid(db: &ScratchDb) -> Option<u32> {
    let url = DatabaseUrl::parse(&db.url()).ok()?;
    let mut conn = connect(&url).ok()?;
    let (holder, until) = instances::leader(&mut conn, SIM_CLIENT_ID).ok()??;
    if until <= Utc::now() {
        return None;
    }
    holder.rsplit(':').next()?.parse().ok()
}

fn wait_for(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The budget checks on the simulator's counters (see the module docs).
fn assert_within_budget(stats: &Value) {
    let windows = stats["requestsPerWindow"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(!windows.is_empty(), "no rate windows in the stats: {stats}");
    for w in &windows {
        let n = json_u64(w, &["byClient", SIM_CLIENT_ID]);
        assert!(
            n <= PER_WINDOW,
            "window {} saw {n} requests of the client, limit {PER_WINDOW}: the instances \
             together spent more than one budget ({stats})",
            w["window"]
        );
    }
    let peak = json_u64(stats, &["peakConcurrencyByClient", SIM_CLIENT_ID]);
    let busiest = windows
        .iter()
        .map(|w| json_u64(w, &["byClient", SIM_CLIENT_ID]))
        .max()
        .unwrap_or(0);
    eprintln!(
        "budget: busiest window {busiest} of {PER_WINDOW} requests, peak {peak} of \
         {CONCURRENCY_CAP} in flight, {} collateral 429s, {} of the client's requests answered 429",
        json_u64(stats, &["collateral429s"]),
        json_u64(stats, &["rateLimited", "byClient", SIM_CLIENT_ID])
    );
    assert!(
        (1..=CONCURRENCY_CAP).contains(&peak),
        "the client had {peak} requests in flight at once (cap {CONCURRENCY_CAP})"
    );
    assert_eq!(
        json_u64(stats, &["collateral429s"]),
        0,
        "collateral 429s: {stats}"
    );
    assert!(
        json_u64(stats, &["background", "requests"]) > 0,
        "no background load ran: the collateral check proved nothing"
    );
}

/// `n` backfills of the org's range started together; the leader is killed with SIGKILL once
/// some partitions are done; the others must finish the work.
fn backfills_with_leader_killed(n: usize, seed: u64) {
    let dir = ScratchDir::new("sluice-instances").expect("scratch dir");
    let org = Org::new(3, 150, 10);
    let sim = sim_for(&dir, &org, seed);
    let _mariadb = common::db::mariadb_shared();
    let db = ScratchDb::mysql("sluice_instances").expect("MariaDB scratch database");
    let cmd = instance(backfill_cmd(&dir, &sim, &db, &org));
    // Each on a host of its own (HOSTNAME names the instance): the killed leader's lease must
    // expire, as when a host is lost (on one host a dead process is seen at once).
    let mut procs: Vec<SluiceProcess> = (0..n)
        .map(|i| {
            cmd.clone()
                .env("HOSTNAME", format!("host-{i}"))
                .spawn(&format!("instance-{i}"))
                .expect("spawn backfill")
        })
        .collect();
    let logs = |procs: &[SluiceProcess]| {
        procs
            .iter()
            .map(|p| format!("--- pid {}:\n{}", p.pid(), p.log_tail(2500)))
            .collect::<Vec<_>>()
            .join("\n")
    };

    // Mid-run: a leader is fetching and has finished some partitions, not all.
    let mut leader = None;
    wait_for(
        Duration::from_secs(60),
        "the leader's first partitions",
        || {
            leader = leader_pid(&db);
            partitions_done(&db) >= 2
        },
    );
    let leader = leader.expect("a leader");
    let total = db.probe().unwrap().partitions().unwrap().len();
    assert!(
        partitions_done(&db) < total,
        "the backfill finished before the kill: make the data larger"
    );
    let k = procs
        .iter()
        .position(|p| p.pid() == leader)
        .unwrap_or_else(|| panic!("the leader {leader} is none of ours:\n{}", logs(&procs)));
    let mut killed = procs.remove(k);
    let killed_at = Instant::now();
    killed.kill9().expect("kill -9");

    // Another takes over within the lease (plus one standby poll and scheduling slack).
    let mut new_leader = None;
    wait_for(Duration::from_secs(30), "a new leader", || {
        new_leader = leader_pid(&db).filter(|p| *p != leader);
        new_leader.is_some()
    });
    let takeover = killed_at.elapsed();
    eprintln!(
        "{n} instances: leader {leader} killed; {} took over after {:.2} s",
        new_leader.unwrap_or(0),
        takeover.as_secs_f64()
    );
    assert!(
        takeover <= Duration::from_secs(LEASE_SECS + 2),
        "takeover took {takeover:?}, lease is {LEASE_SECS} s"
    );

    for p in procs.iter_mut() {
        let pid = p.pid();
        let f = p
            .wait_timeout(Duration::from_secs(120))
            .expect("wait")
            .unwrap_or_else(|| panic!("instance {pid} did not finish:\n{}", p.log_tail(4000)));
        assert_eq!(
            f.code(),
            Some(0),
            "instance {pid} failed:\n{}",
            tail(&f.log, 4000)
        );
    }
    assert_exact(&sim, &db, &org, &logs(&procs));
    let stats = sim.stats().expect("stats");
    assert_within_budget(&stats);
}

#[test]
fn two_backfills_one_killed_the_other_finishes_exactly_within_one_budget() {
    backfills_with_leader_killed(2, 31);
}

#[test]
fn three_backfills_leader_killed_the_others_finish_exactly_within_one_budget() {
    backfills_with_leader_killed(3, 32);
}

/// The admin base URL a process logged (`admin server listening on http://…`).
fn admin_url(p: &SluiceProcess) -> Option<String> {
    let log = p.log();
    let at = log.find("admin server listening on http://")?;
    let rest = &log[at + "admin server listening on ".len()..];
    Some(rest.split_whitespace().next()?.to_string())
}

/// An org whose "now" is the real now: `sluice run` plans up to the real clock's watermark.
fn org_at_real_now(days: u32, per_day: u32) -> Org {
    let now = Utc::now();
    let today = Utc.from_utc_datetime(&now.date_naive().and_time(NaiveTime::MIN));
    Org {
        now,
        from: today - chrono::Duration::days(days as i64),
        to: today,
        days,
        per_day,
        users: 10,
    }
}

fn sub_org(org: &Org, from: DateTime<Utc>, to: DateTime<Utc>) -> Org {
    Org { from, to, ..*org }
}

/// Differences between the database and the truth: conversations over disjoint `ranges`
/// (the service's and the backfill's), user records over `users` only (none when `None`), and
/// partitions not done.
fn differences_over(
    sim: &SimProcess,
    db: &ScratchDb,
    ranges: &[Org],
    users: Option<&Org>,
) -> Vec<String> {
    let mut want = std::collections::BTreeMap::new();
    for r in ranges {
        let e = sim.expected(&r.interval()).expect("/__sim/expected");
        want.extend(expected_conversations(&e).expect("expected conversations"));
    }
    let (presence, routing) = match users {
        Some(u) => {
            let e = sim.expected(&u.interval()).expect("/__sim/expected");
            (
                json_u64(&e, &["users", "presence"]) as i64,
                json_u64(&e, &["users", "routingStatus"]) as i64,
            )
        }
        None => (0, 0),
    };
    let mut probe = db.probe().expect("probe");
    let mut diffs = compare_conversations(&want, &probe.conversations().expect("stored"));
    for (table, exp) in [
        ("user_presence", presence),
        ("user_routing_status", routing),
    ] {
        let got = probe.table_rows(table).expect("count");
        if got != exp {
            diffs.push(format!("{table}: {got} rows stored, {exp} expected"));
        }
    }
    for p in probe.partitions().expect("partitions") {
        let s = p.status.to_ascii_lowercase();
        if s != "done" && s != "split" {
            diffs.push(format!(
                "partition {} {} {}..{} is {}",
                p.id, p.dataset, p.range_start, p.range_end, p.status
            ));
        }
    }
    diffs
}

/// The end of the done partitions that start at or after `start` (a service's range).
fn service_end(db: &ScratchDb, start: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let parts = db.probe().ok()?.partitions().ok()?;
    let parse = |s: &str| {
        chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f")
            .ok()
            .map(|t| Utc.from_utc_datetime(&t))
    };
    let mut end = None;
    for p in &parts {
        if parse(&p.range_start)? >= start && p.status.eq_ignore_ascii_case("done") {
            end = end.max(parse(&p.range_end));
        }
    }
    end
}

/// No partition pending or running.
fn all_finished(db: &ScratchDb) -> bool {
    db.probe()
        .and_then(|mut p| p.partitions())
        .map(|ps| {
            !ps.iter().any(|p| {
                let s = p.status.to_ascii_lowercase();
                s != "done" && s != "split"
            })
        })
        .unwrap_or(false)
}

/// `sluice run` against the org (conversations from `start`, watermark 48 h back, no catch-up
/// round during a test).
fn service_cmd(
    dir: &ScratchDir,
    sim: &SimProcess,
    db: &ScratchDb,
    start: DateTime<Utc>,
) -> SluiceCommand {
    instance(
        SluiceCommand::new(bin(), dir.path())
            .args(["run", "--datasets", "conversations"])
            .against_sim(&sim.base_url(), SIM_CLIENT_ID, SIM_CLIENT_SECRET)
            .env("DATABASE_URL", db.url())
            .env("SLUICE_START", rfc(start))
            .env("SLUICE_WATERMARK_HOURS", "48")
            .env("SLUICE_POLL_MINUTES", "60"),
    )
}

#[test]
fn two_services_the_active_one_killed_the_standby_takes_over_and_keeps_serving() {
    let dir = ScratchDir::new("sluice-instances-run").expect("scratch dir");
    let org = org_at_real_now(6, 150);
    let sim = sim_for(&dir, &org, 34);
    let _mariadb = common::db::mariadb_shared();
    let db = ScratchDb::mysql("sluice_instances_run").expect("MariaDB scratch database");
    let start = org.to - chrono::Duration::days(4);
    let cmd = service_cmd(&dir, &sim, &db, start);
    // Two hosts (HOSTNAME names the instance): the killed one's lease must expire.
    let mut procs: Vec<SluiceProcess> = (0..2)
        .map(|i| {
            cmd.clone()
                .env("HOSTNAME", format!("host-{i}"))
                .spawn(&format!("service-{i}"))
                .expect("spawn service")
        })
        .collect();
    let mut leader = None;
    wait_for(
        Duration::from_secs(60),
        "the leader's first partitions",
        || {
            leader = leader_pid(&db);
            partitions_done(&db) >= 1
        },
    );
    let leader = leader.expect("a leader");
    assert!(
        !all_finished(&db),
        "the service finished before the kill: make the data larger"
    );
    let k = procs
        .iter()
        .position(|p| p.pid() == leader)
        .expect("our leader");
    let mut killed = procs.remove(k);
    killed.kill9().expect("kill -9");
    let mut survivor = procs.remove(0);
    wait_for(Duration::from_secs(30), "the standby to take over", || {
        leader_pid(&db) == Some(survivor.pid())
    });
    wait_for(Duration::from_secs(120), "the service's range", || {
        all_finished(&db) && service_end(&db, start).is_some()
    });
    assert!(
        survivor.is_running(),
        "the survivor stopped:\n{}",
        survivor.log_tail(4000)
    );
    let base = admin_url(&survivor).expect("the survivor's admin server");
    let status = get_json(&format!("{base}/status")).expect("/status");
    assert_eq!(status["run"]["role"], "active", "{status}");
    let range = sub_org(&org, start, service_end(&db, start).expect("service end"));
    let diffs = differences_over(&sim, &db, &[range], None);
    assert!(
        diffs.is_empty(),
        "stored data differs from the truth:\n  {}\nsurvivor log:\n{}",
        diffs.join("\n  "),
        survivor.log_tail(3000)
    );
    assert_within_budget(&sim.stats().expect("stats"));
    survivor.terminate();
    let f = survivor
        .wait_timeout(Duration::from_secs(30))
        .expect("wait")
        .expect("the service stops on SIGTERM");
    assert_eq!(f.code(), Some(0), "{}", tail(&f.log, 3000));
}

#[test]
fn a_backfill_beside_a_running_service_hands_its_range_over_and_completes() {
    let dir = ScratchDir::new("sluice-instances-svc").expect("scratch dir");
    let org = org_at_real_now(8, 120);
    let sim = sim_for(&dir, &org, 33);
    let _mariadb = common::db::mariadb_shared();
    let db = ScratchDb::mysql("sluice_instances_svc").expect("MariaDB scratch database");
    // The service ingests conversations from 4 days ago up to a watermark 48 h back; no
    // catch-up round during the test (a poll interval of an hour). The backfill beside it asks
    // for users too: the service fetches them for it.
    let start = org.to - chrono::Duration::days(4);
    let mut service = service_cmd(&dir, &sim, &db, start)
        .spawn("service")
        .expect("spawn service");
    wait_for(Duration::from_secs(30), "the service to lead", || {
        leader_pid(&db) == Some(service.pid())
    });

    // An older range, beside it.
    let older = sub_org(
        &org,
        org.to - chrono::Duration::days(7),
        org.to - chrono::Duration::days(5),
    );
    let backfill_cmd = instance(backfill_cmd(&dir, &sim, &db, &older));
    let mut backfill = backfill_cmd.spawn("backfill").expect("spawn backfill");

    // The backfill stands by, healthy, and says so everywhere.
    let mut base = None;
    wait_for(
        Duration::from_secs(30),
        "the backfill's admin server",
        || {
            base = admin_url(&backfill);
            base.is_some() || !backfill.is_running()
        },
    );
    let base = base.unwrap_or_else(|| panic!("no admin server:\n{}", backfill.log_tail(3000)));
    let (code, _) = http_request(
        "GET",
        &format!("{base}/healthz"),
        None,
        Duration::from_secs(10),
    )
    .expect("healthz");
    assert_eq!(code, 200);
    let (code, body) = http_request(
        "GET",
        &format!("{base}/readyz"),
        None,
        Duration::from_secs(10),
    )
    .expect("readyz");
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    let status = get_json(&format!("{base}/status")).expect("/status");
    assert_eq!(status["run"]["role"], "standby", "{status}");
    let (_, metrics) = http_request(
        "GET",
        &format!("{base}/metrics"),
        None,
        Duration::from_secs(10),
    )
    .expect("metrics");
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains("sluice_instance_role{role=\"standby\"} 1")
            && metrics.contains("sluice_instance_role{role=\"active\"} 0"),
        "{metrics}"
    );
    let cli = SluiceCommand::new(bin(), dir.path())
        .arg("status")
        .env("DATABASE_URL", db.url());
    let shown = run(&cli, "status", Duration::from_secs(30));
    assert!(
        shown.log.contains("standing by") && shown.log.contains("active (holds the leader lease"),
        "sluice status does not show both roles:\n{}",
        shown.log
    );

    let f = backfill
        .wait_timeout(Duration::from_secs(120))
        .expect("wait")
        .unwrap_or_else(|| panic!("the backfill did not finish:\n{}", backfill.log_tail(4000)));
    assert_eq!(
        f.code(),
        Some(0),
        "backfill failed:\n{}",
        tail(&f.log, 4000)
    );
    assert!(
        f.log.contains("every partition of the range is finished"),
        "the backfill did not follow the service:\n{}",
        tail(&f.log, 3000)
    );

    // The service finishes its own range too, and keeps serving.
    wait_for(Duration::from_secs(120), "the service's range", || {
        all_finished(&db) && service_end(&db, start).is_some()
    });
    let ranges = vec![
        older,
        sub_org(&org, start, service_end(&db, start).expect("service end")),
    ];
    let users_range = older;
    assert!(
        service.is_running(),
        "the service stopped:\n{}",
        service.log_tail(4000)
    );
    let diffs = differences_over(&sim, &db, &ranges, Some(&users_range));
    assert!(
        diffs.is_empty(),
        "stored data differs from the truth:\n  {}\nservice log:\n{}",
        diffs.join("\n  "),
        service.log_tail(3000)
    );
    let stats = sim.stats().expect("stats");
    assert_within_budget(&stats);
    service.terminate();
    let f = service
        .wait_timeout(Duration::from_secs(30))
        .expect("wait")
        .expect("the service stops on SIGTERM");
    assert_eq!(f.code(), Some(0), "{}", tail(&f.log, 3000));
}
