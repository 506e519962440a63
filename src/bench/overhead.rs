//! `sluice bench overhead`: the real `sluice backfill` process against `sluice sim --no-limits`
//! — conversations/s, CPU seconds per 100,000 conversations and peak RSS from the kernel, the
//! stored count against the simulator's ground truth — into MariaDB (the shared server, a
//! dedicated production-like one the bench starts itself, or both) and SQLite. After each run
//! the database's own floor for the rows the engine stored is measured on the same server
//! ([`floor_seconds`]), so the engine's pace is read against what the server can do at all.
use std::path::Path;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};

use super::floor::floor_seconds;
use super::harness::{ScratchDir, SimProcess};
use super::mariadb::{schema_bytes, server_settings, DedicatedMariadb, MariadbSettings};
use super::stored::{ScratchDb, MYSQL_ADMIN_URL};
use super::{
    backfill_command, expected_count, range_for, rfc, stored_count, tail_str, BenchError,
    BenchRange, ClientCounts, DbChoice, OrgArgs, SIM_CLIENT_ID,
};
use crate::storage::DatabaseUrl;

/// Which MariaDB server(s) the MariaDB case runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ServerChoice {
    /// The shared server of the tests (`SLUICE_TEST_MYSQL_ADMIN_URL`, default 127.0.0.1:3306).
    Shared,
    /// A MariaDB the bench starts itself, configured as production would be.
    Dedicated,
    /// Both, shared first.
    Both,
}

#[derive(Debug, Clone, Args)]
pub struct OverheadArgs {
    #[command(flatten)]
    pub org: OrgArgs,
    /// Conversations to ingest (rounded up to whole days of --per-day).
    #[arg(long, default_value_t = 100_000)]
    pub conversations: u64,
    /// Path mode given to the engine.
    #[arg(long, default_value = "auto")]
    pub mode: String,
    /// Simulated job run time, in milliseconds.
    #[arg(long)]
    pub job_delay_ms: Option<u64>,
    #[arg(long, value_enum, default_value_t = DbChoice::Both)]
    pub db: DbChoice,
    /// MariaDB server(s): the shared test server, a dedicated production-like one started
    /// for the run (own datadir and port, removed afterwards), or both.
    #[arg(long, value_enum, default_value_t = ServerChoice::Both)]
    pub server: ServerChoice,
    /// The dedicated server's `innodb_buffer_pool_size` (size it to the working set).
    #[arg(long, default_value = "4G")]
    pub mariadb_buffer_pool: String,
    /// The dedicated server's `innodb_log_file_size`.
    #[arg(long, default_value = "2G")]
    pub mariadb_log_file_size: String,
    /// Where the dedicated server's datadir goes (default: the temp dir).
    #[arg(long)]
    pub mariadb_dir: Option<std::path::PathBuf>,
    /// Measure each database's floor (INSERT … SELECT of the stored rows) after the run.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub floor: bool,
    /// Compare the stored conversation count with the simulator's ground truth afterwards.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub verify: bool,
}

/// One overhead run's figures.
#[derive(Clone, Debug)]
pub struct OverheadRun {
    /// `MariaDB(shared)`, `MariaDB(dedicated)` or `SQLite`.
    pub database: &'static str,
    pub conversations: u64,
    pub expected: Option<u64>,
    pub wall_secs: f64,
    pub cpu_secs: f64,
    pub max_rss_bytes: u64,
    pub rss_timeline: Vec<(f64, u64)>,
    pub requests: u64,
    pub exit_code: Option<i32>,
    /// Seconds the database took to copy the stored rows by INSERT … SELECT (its floor).
    pub floor_secs: Option<f64>,
}

impl OverheadRun {
    pub fn per_second(&self) -> f64 {
        self.conversations as f64 / self.wall_secs.max(1e-9)
    }
    pub fn cpu_per_100k(&self) -> f64 {
        self.cpu_secs * 100_000.0 / (self.conversations.max(1) as f64)
    }
    pub fn floor_per_second(&self) -> Option<f64> {
        self.floor_secs
            .map(|s| self.conversations as f64 / s.max(1e-9))
    }
}

/// A database of the run with its label (`MariaDB(shared)`, `MariaDB(dedicated)`, `SQLite`).
type Target = (&'static str, ScratchDb);

/// The MariaDB databases of the run, each labelled with its server (the dedicated server, if
/// any, is returned too: it must outlive its database).
fn mariadb_targets(
    a: &OverheadArgs,
) -> Result<(Option<DedicatedMariadb>, Vec<Target>), BenchError> {
    let mut dbs = Vec::new();
    if !matches!(a.db, DbChoice::Mariadb | DbChoice::Both) {
        return Ok((None, dbs));
    }
    if matches!(a.server, ServerChoice::Shared | ServerChoice::Both) {
        let admin = std::env::var("SLUICE_TEST_MYSQL_ADMIN_URL")
            .unwrap_or_else(|_| MYSQL_ADMIN_URL.to_owned());
        match DatabaseUrl::parse(&admin).map(|u| server_settings(&u)) {
            Ok(Ok(s)) => println!("server MariaDB(shared): {s}"),
            Ok(Err(e)) => println!("server MariaDB(shared): settings unknown ({e})"),
            Err(e) => println!("server MariaDB(shared): settings unknown ({e})"),
        }
        dbs.push(("MariaDB(shared)", ScratchDb::mysql("sluice_bench")?));
    }
    let mut dedicated = None;
    if matches!(a.server, ServerChoice::Dedicated | ServerChoice::Both) {
        let settings = MariadbSettings {
            buffer_pool: a.mariadb_buffer_pool.clone(),
            log_file_size: a.mariadb_log_file_size.clone(),
            parent_dir: a.mariadb_dir.clone(),
            ..MariadbSettings::from_env()
        };
        let t = Instant::now();
        match DedicatedMariadb::start(&settings) {
            Ok(server) => {
                match server.settings_in_effect() {
                    Ok(s) => println!(
                        "server MariaDB(dedicated): {s}; port {}, datadir in {}, started in {:.1} s",
                        server.port(),
                        server.dir().display(),
                        t.elapsed().as_secs_f64()
                    ),
                    Err(e) => println!("server MariaDB(dedicated): settings unknown ({e})"),
                }
                let admin = server.admin_url();
                let DatabaseUrl::Mysql(admin) = admin else {
                    return Err(BenchError::Failed("dedicated server URL".into()));
                };
                dbs.push((
                    "MariaDB(dedicated)",
                    ScratchDb::mysql_on(&admin, "sluice_bench")?,
                ));
                dedicated = Some(server);
            }
            Err(e) => println!("server MariaDB(dedicated): skipped, it did not start: {e}"),
        }
    }
    Ok((dedicated, dbs))
}

pub fn overhead(bin: &Path, a: &OverheadArgs) -> Result<Vec<OverheadRun>, BenchError> {
    let dir = ScratchDir::new("sluice-bench-overhead")?;
    let per_day = a.org.per_day.max(1) as u64;
    let days = a.conversations.div_ceil(per_day).max(1) as u32;
    let range = range_for(&a.org, days)?;
    let BenchRange { now, from, to } = range;
    let mut sim_args = vec![
        "--no-limits".to_string(),
        "--seed".into(),
        a.org.seed.to_string(),
        "--days".into(),
        (days + 10).to_string(),
        "--per-day".into(),
        per_day.to_string(),
        "--now".into(),
        rfc(now),
    ];
    if let Some(d) = a.job_delay_ms {
        sim_args.extend(["--job-delay-ms".into(), d.to_string()]);
    }
    // Declared before the databases: dropped (server stopped, datadir removed) after them.
    let (_dedicated, mut dbs) = mariadb_targets(a)?;
    if matches!(a.db, DbChoice::Sqlite | DbChoice::Both) {
        dbs.push(("SQLite", ScratchDb::sqlite(dir.path(), "bench-sqlite.db")));
    }
    let sim = SimProcess::start(bin, dir.path(), &sim_args)?;
    println!("sim: sluice sim {}", sim_args.join(" "));
    let mut runs = Vec::new();
    for &(label, ref db) in &dbs {
        let cmd = backfill_command(bin, dir.path(), &sim, db, &range, &a.org.datasets, &a.mode)
            // The limits are off in the simulator; the engine's own pacing must not be what is
            // measured, so its budget is set far above what the machine can do.
            .env("SLUICE_RATE_PER_MINUTE", "6000000");
        println!("engine ({label}): {}", cmd.display());
        let base = ClientCounts::from_stats(&sim.stats()?, SIM_CLIENT_ID);
        let mut proc = cmd.spawn(&format!("overhead-{}", db.kind()))?;
        let mut timeline = Vec::new();
        let mut next_sample = Instant::now();
        let limit = Duration::from_secs(a.org.timeout_secs);
        let f = loop {
            if let Some(f) = proc.wait_timeout(Duration::from_millis(100))? {
                break f;
            }
            if Instant::now() >= next_sample {
                if let Some(rss) = proc.rss_bytes() {
                    timeline.push((proc.elapsed().as_secs_f64(), rss));
                }
                next_sample += Duration::from_secs(1);
            }
            if proc.elapsed() > limit {
                let _ = proc.kill9();
                return Err(BenchError::Failed(format!(
                    "backfill did not finish within {limit:?}"
                )));
            }
        };
        let counts = ClientCounts::from_stats(&sim.stats()?, SIM_CLIENT_ID).minus(&base);
        let stored = stored_count(db)?;
        let mut run = OverheadRun {
            database: label,
            conversations: stored,
            expected: None,
            wall_secs: f.wall.as_secs_f64(),
            cpu_secs: f.cpu_seconds(),
            max_rss_bytes: f.max_rss_bytes,
            rss_timeline: timeline,
            requests: counts.requests,
            exit_code: f.code(),
            floor_secs: None,
        };
        if !f.success() {
            println!("engine log tail:\n{}", tail_str(&f.log, 3000));
        }
        print_overhead_run(&run);
        if a.floor && f.success() {
            run.floor_secs = measure_floor(label, db, stored);
        }
        runs.push(run);
    }
    let expected = if a.verify {
        Some(expected_count(&sim, from, to)?)
    } else {
        None
    };
    for r in &mut runs {
        r.expected = expected;
    }
    println!();
    println!(
        "engine overhead, simulator --no-limits, {} days x {} conversations/day, mode {}:",
        days, per_day, a.mode
    );
    println!("            database  exit  conversations (expected)  wall (s)  conv/s   CPU s  CPU s/100k  peak RSS (MB)  requests  floor conv/s");
    for r in &runs {
        println!(
            "  {:>18}  {:>4}  {:>13} ({:>8})  {:>8.1}  {:>6.0}  {:>6.1}  {:>10.2}  {:>13.1}  {:>8}  {:>12}",
            r.database,
            r.exit_code
                .map(|c| c.to_string())
                .unwrap_or_else(|| "sig".into()),
            r.conversations,
            r.expected
                .map(|e| e.to_string())
                .unwrap_or_else(|| "-".into()),
            r.wall_secs,
            r.per_second(),
            r.cpu_secs,
            r.cpu_per_100k(),
            r.max_rss_bytes as f64 / 1e6,
            r.requests,
            r.floor_per_second()
                .map(|f| format!("{f:.0}"))
                .unwrap_or_else(|| "-".into())
        );
    }
    Ok(runs)
}

/// The floor of the rows the engine stored in `db`, printed; `None` (and the reason printed)
/// when it could not be measured.
fn measure_floor(label: &str, db: &ScratchDb, conversations: u64) -> Option<f64> {
    let url = match DatabaseUrl::parse(&db.url()) {
        Ok(u) => u,
        Err(e) => {
            println!("  {label} floor: not measured ({e})");
            return None;
        }
    };
    let size = match &url {
        DatabaseUrl::Mysql(_) => schema_bytes(&url)
            .map(|b| {
                format!(
                    "; the engine's tables take {:.0} MiB on disk",
                    b as f64 / 1048576.0
                )
            })
            .unwrap_or_default(),
        DatabaseUrl::Sqlite(p) => std::fs::metadata(p)
            .map(|m| format!("; the file is {:.0} MiB", m.len() as f64 / 1048576.0))
            .unwrap_or_default(),
    };
    match floor_seconds(&url) {
        Ok(secs) => {
            println!(
                "  {label} floor (database alone): {conversations} conversations copied by INSERT … SELECT in {secs:.1} s = {:.0} conversations/s{size}",
                conversations as f64 / secs.max(1e-9)
            );
            Some(secs)
        }
        Err(e) => {
            println!("  {label} floor: not measured ({e})");
            None
        }
    }
}

/// RSS at each tenth of the run, and its range after the warm-up (the first tenth), to show
/// whether memory stays flat.
fn print_overhead_run(r: &OverheadRun) {
    let mut marks = Vec::new();
    if let Some(&(end, _)) = r.rss_timeline.last() {
        for k in 1..=10 {
            let t = (end * k as f64 / 10.0).min(end);
            if let Some(&(ts, rss)) = r.rss_timeline.iter().find(|(ts, _)| *ts >= t) {
                marks.push(format!("{ts:.0}s:{:.0}MB", rss as f64 / 1e6));
            }
        }
    }
    println!(
        "  {}: {} conversations in {:.1} s, RSS over time: {}",
        r.database,
        r.conversations,
        r.wall_secs,
        marks.join(" ")
    );
    if let Some(f) = Flatness::of(&r.rss_timeline) {
        println!(
            "  {}: RSS after warm-up (from {:.0} s, {} samples): min {:.0} MB, max {:.0} MB; max of the first half {:.0} MB, of the second half {:.0} MB",
            r.database,
            f.from_secs,
            f.samples,
            f.min as f64 / 1e6,
            f.max as f64 / 1e6,
            f.first_half_max as f64 / 1e6,
            f.second_half_max as f64 / 1e6
        );
    }
}

/// The RSS samples after the first tenth of a run: their range, and the peak of each half
/// (a second half above the first is growth).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Flatness {
    from_secs: u64,
    samples: usize,
    min: u64,
    max: u64,
    first_half_max: u64,
    second_half_max: u64,
}

impl Flatness {
    fn of(timeline: &[(f64, u64)]) -> Option<Flatness> {
        let end = timeline.last()?.0;
        let from = end / 10.0;
        let after: Vec<u64> = timeline
            .iter()
            .filter(|(t, _)| *t >= from)
            .map(|(_, r)| *r)
            .collect();
        if after.len() < 2 {
            return None;
        }
        let (a, b) = after.split_at(after.len() / 2);
        Some(Flatness {
            from_secs: from.round() as u64,
            samples: after.len(),
            min: after.iter().copied().min()?,
            max: after.iter().copied().max()?,
            first_half_max: a.iter().copied().max()?,
            second_half_max: b.iter().copied().max()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flatness_ignores_the_warm_up_and_shows_growth_in_the_second_half() {
        // 100 s: 50 MB for the first 10 s (warm-up), then 120 MB, then 180 MB from 60 s.
        let timeline: Vec<(f64, u64)> = (1..=100)
            .map(|s| {
                let rss = match s {
                    0..=9 => 50,
                    10..=59 => 120,
                    _ => 180,
                };
                (s as f64, rss * 1_000_000)
            })
            .collect();
        let f = Flatness::of(&timeline).expect("enough samples");
        assert_eq!(f.from_secs, 10);
        assert_eq!(f.samples, 91);
        assert_eq!(f.min, 120_000_000);
        assert_eq!(f.max, 180_000_000);
        assert_eq!(f.first_half_max, 120_000_000);
        assert_eq!(f.second_half_max, 180_000_000);
        assert_eq!(Flatness::of(&timeline[..1]), None);
    }
}
