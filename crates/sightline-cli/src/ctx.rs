//! Global command-line options and the resolved context every command receives.
//!
//! Settings are layered: built-in defaults < `sightline.toml` (current folder, `$SIGHTLINE_CONFIG`
//! or `--config-file`) < `SIGHTLINE_*` environment variables < these flags
//! (see `sightline_core::settings`).

use std::path::PathBuf;

use anyhow::Context as _;
use sightline_core::{Settings, SettingsLayer};

/// Options accepted before or after any subcommand.
#[derive(Debug, clap::Args)]
pub struct GlobalArgs {
    /// Data directory (SQLite database, pretrained weights). Default: $SIGHTLINE_HOME, else ./.sightline
    #[arg(long, global = true, value_name = "DIR")]
    pub home: Option<PathBuf>,
    /// Database URL: sqlite://FILE or postgres://USER@HOST/DB. Default: $SIGHTLINE_DATABASE_URL,
    /// $DATABASE_URL, else SQLite at <home>/sightline.db
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,
    /// Configuration file. Default: $SIGHTLINE_CONFIG, else ./sightline.toml when present
    #[arg(long, global = true, value_name = "FILE")]
    pub config_file: Option<PathBuf>,
    /// Machine-readable JSON output.
    #[arg(long, global = true)]
    pub json: bool,
    /// More log output (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// What every command gets: resolved settings and output mode.
#[derive(Debug)]
pub struct Ctx {
    /// Print JSON instead of human tables.
    pub json: bool,
    /// Data directory (same as `settings.home`).
    pub home: PathBuf,
    /// Database URL given by flag or environment, if any (`settings.database_url` is the resolved one).
    pub database_url: Option<String>,
    /// Every resolved setting.
    pub settings: Settings,
}

impl Ctx {
    /// Resolve the context: defaults < config file < environment < flags.
    pub fn from_global(global: &GlobalArgs) -> anyhow::Result<Self> {
        let cwd = std::env::current_dir().context("cannot read the current directory")?;
        let flags = SettingsLayer {
            home: global.home.clone(),
            database_url: global.database_url.clone(),
            ..Default::default()
        };
        let settings = Settings::resolve(&cwd, global.config_file.as_deref(), flags)?;
        tracing::debug!(
            home = %settings.home.display(),
            database = %settings.database_url_redacted(),
            config = ?settings.config_file,
            "settings resolved"
        );
        Ok(Self {
            json: global.json,
            home: settings.home.clone(),
            database_url: Some(settings.database_url.clone()),
            settings,
        })
    }

    /// Open the metadata database (creating and migrating it as needed).
    pub async fn db(&self) -> anyhow::Result<sightline_db::Db> {
        sightline_db::Db::connect(&self.settings.database_url)
            .await
            .with_context(|| {
                format!(
                    "opening the metadata database {}",
                    self.settings.database_url_redacted()
                )
            })
    }

    /// The configured artifact store.
    pub fn store(&self) -> anyhow::Result<sightline_store::ArtifactStore> {
        sightline_store::ArtifactStore::from_settings(&self.settings.artifacts)
            .context("opening the artifact store")
    }

    /// Open the model registry over the database and the configured artifact store: bundles in
    /// the local artifact folder (opened in place), or in S3 with verified copies cached under
    /// `<home>/cache/bundles`.
    pub async fn registry(&self) -> anyhow::Result<sightline_registry::Registry> {
        let (artifacts, bundles) = self.bundle_store()?;
        Ok(
            sightline_registry::Registry::new(self.db().await?, artifacts)
                .with_bundle_store(bundles),
        )
    }

    /// The local artifact folder (the store's root, or `<home>/artifacts` beside an S3 store,
    /// for files the server keeps locally) and where deployment bundles live: in place in a
    /// local store, or in S3 with verified copies cached under `<home>/cache/bundles`.
    pub fn bundle_store(
        &self,
    ) -> anyhow::Result<(PathBuf, sightline_registry::bundle::BundleStore)> {
        use sightline_registry::bundle::BundleStore;
        Ok(match &self.settings.artifacts {
            sightline_core::ArtifactSettings::Local { root } => {
                (root.clone(), BundleStore::local(root.clone()))
            }
            sightline_core::ArtifactSettings::S3(_) => (
                self.home.join("artifacts"),
                BundleStore::new(self.store()?, self.home.join("cache").join("bundles")),
            ),
        })
    }

    /// Print a value as pretty JSON on stdout.
    pub fn print_json<T: serde::Serialize>(&self, value: &T) -> anyhow::Result<()> {
        println!("{}", serde_json::to_string_pretty(value)?);
        Ok(())
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
