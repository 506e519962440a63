//! The `sluice` binary: parses the command line and starts things. Everything else is in the
//! library.
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "Pull Genesys Cloud analytics history into MySQL within the org's rate budget"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// `--config` and the overrides every engine command takes.
#[derive(Args)]
struct EngineArgs {
    /// TOML configuration file (default: sluice.toml in the working directory, if present).
    #[arg(long, value_name = "PATH")]
    config: Option<std::path::PathBuf>,
    /// Datasets to ingest: conversations,users,directory (default: the configuration's).
    #[arg(long, value_name = "LIST")]
    datasets: Option<String>,
    /// Path per block: auto, query or jobs (default: the configuration's).
    #[arg(long, value_name = "MODE")]
    mode: Option<String>,
    /// Also ingest data newer than the watermark, as not final (re-fetched once it passes).
    #[arg(long)]
    provisional: bool,
}

impl EngineArgs {
    fn overrides(self) -> sluice::engine::CliOverrides {
        sluice::engine::CliOverrides {
            config: self.config,
            datasets: self.datasets,
            mode: self.mode,
            provisional: self.provisional,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Ingest [--from, --to) and exit: 0 only when every partition is verified.
    Backfill {
        /// First instant: a UTC day (2026-01-01) or an RFC 3339 instant.
        #[arg(long)]
        from: String,
        /// End, exclusive: a UTC day or an RFC 3339 instant.
        #[arg(long)]
        to: String,
        #[command(flatten)]
        engine: EngineArgs,
    },
    /// Fetch every block of [--from, --to) again now (e.g. after Genesys announces a data
    /// incident): reopens its partitions, then backfills; exit codes as backfill.
    Resync {
        /// First instant: a UTC day (2026-01-01) or an RFC 3339 instant.
        #[arg(long)]
        from: String,
        /// End, exclusive: a UTC day or an RFC 3339 instant.
        #[arg(long)]
        to: String,
        #[command(flatten)]
        engine: EngineArgs,
    },
    /// Service mode: backfill from `start` (SLUICE_START), then catch up every poll interval.
    Run {
        #[command(flatten)]
        engine: EngineArgs,
    },
    /// One-command demo: a simulated org in-process, ingested into a fresh SQLite file, checked
    /// against the simulator's ground truth.
    Demo(sluice::demo::DemoArgs),
    /// Validate the configuration, the database and the credentials.
    CheckConfig {
        /// TOML configuration file (default: sluice.toml in the working directory, if present).
        #[arg(long, value_name = "PATH")]
        config: Option<std::path::PathBuf>,
    },
    /// Run the Genesys Cloud Analytics API simulator.
    Sim(sluice::sim::SimArgs),
    /// Apply the database migrations and exit (database from DATABASE_URL, default
    /// sqlite://sluice.db); `--revert N` undoes the last N instead.
    Migrate(sluice::storage::migrations::MigrateArgs),
    /// Print a report from the database (DATABASE_URL): queue-daily, agent-daily,
    /// presence-daily, wrapup-daily or completeness; names beside ids, in --tz, per --interval.
    Report(sluice::report::ReportArgs),
    /// Show per-day completeness, the last run, and failed or unverified partitions with their
    /// errors. Reads the checkpoint tables only: no API calls, the service need not run.
    Status(sluice::status::StatusArgs),
    /// Run a benchmark (budget utilization, path choice, engine overhead) against `sluice sim`.
    Bench(sluice::bench::BenchArgs),
}

fn main() -> anyhow::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    sluice::storage::connection::limit_mysql_driver_buffers();
    let cli = Cli::parse();
    match cli.command {
        Command::Backfill { from, to, engine } => {
            std::process::exit(sluice::engine::backfill_cli(engine.overrides(), &from, &to))
        }
        Command::Resync { from, to, engine } => {
            std::process::exit(sluice::engine::resync_cli(engine.overrides(), &from, &to))
        }
        Command::Run { engine } => std::process::exit(sluice::engine::run_cli(engine.overrides())),
        Command::Demo(args) => std::process::exit(sluice::demo::run_cli(args)),
        Command::CheckConfig { config } => std::process::exit(sluice::engine::check_config_cli(
            sluice::engine::CliOverrides {
                config,
                ..Default::default()
            },
        )),
        Command::Sim(args) => sluice::sim::run_cli(args),
        Command::Migrate(args) => {
            let url = sluice::storage::DatabaseUrl::from_env_or_default()?;
            sluice::storage::migrations::migrate_cli(&url, &args)?;
            Ok(())
        }
        Command::Report(args) => Ok(sluice::report::run_cli(args)?),
        Command::Bench(args) => Ok(sluice::bench::run_cli(args)?),
        Command::Status(args) => {
            let url = sluice::storage::DatabaseUrl::from_env_or_default()?;
            let report = sluice::status::read_status(&url, chrono::Utc::now())?;
            print!("{}", sluice::status::render(&report, args.format));
            Ok(())
        }
    }
}
