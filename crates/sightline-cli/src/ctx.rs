//! Global command-line options and the resolved context every command receives.

use std::path::PathBuf;

/// Options accepted before any subcommand.
#[derive(Debug, clap::Args)]
pub struct GlobalArgs {
    /// Data directory (SQLite database, artifacts). Default: ./.sightline
    #[arg(long, global = true, env = "SIGHTLINE_HOME")]
    pub home: Option<PathBuf>,
    /// Database URL: sqlite://… or postgres://… (default: SQLite under the data directory).
    #[arg(long, global = true, env = "DATABASE_URL")]
    pub database_url: Option<String>,
    /// Machine-readable JSON output.
    #[arg(long, global = true)]
    pub json: bool,
    /// More log output (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// What every command gets: resolved settings and output mode.
#[derive(Debug)]
pub struct Ctx {
    /// Print JSON instead of human tables.
    pub json: bool,
    /// Data directory.
    pub home: PathBuf,
    /// Database URL override, if any.
    pub database_url: Option<String>,
}

impl Ctx {
    /// Resolve the context from global flags (settings layering lands with the foundation issue).
    pub fn from_global(global: &GlobalArgs) -> anyhow::Result<Self> {
        Ok(Self {
            json: global.json,
            home: global.home.clone().unwrap_or_else(|| PathBuf::from(".sightline")),
            database_url: global.database_url.clone(),
        })
    }
}

/// Logs go to stderr; `RUST_LOG` overrides the verbosity flags.
pub fn init_tracing(global: &GlobalArgs) {
    let level = match global.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
