//! Metadata database: SQLite (embedded default) or PostgreSQL, versioned migrations, repositories
//! for projects, labels and the records later layers add.
//!
//! ```no_run
//! # async fn demo() -> Result<(), sightline_db::DbError> {
//! // sqlite://<home>/sightline.db (created with its folder) or postgres://user@host/db
//! let db = sightline_db::Db::connect("sqlite:///tmp/sl/sightline.db").await?; // runs migrations
//! let projects = sightline_db::projects::list(&db).await?;
//! # Ok(()) }
//! ```
//!
//! [`Db`] is an enum over the two pools. Repository modules (`projects`, and `datasets`, ...
//! added by later layers) write each query once with `$1`-style placeholders (both backends accept
//! them) and run it on whichever pool with [`with_pool!`]. Migrations live in
//! `migrations/sqlite/NNNN_name.sql` and `migrations/postgres/NNNN_name.sql` (same numbers in
//! both folders) and are embedded at compile time.

pub mod corrections;
pub mod datasets;
pub mod experiments;
pub mod inference_log;
pub mod labels;
pub mod projects;
pub mod registry;
pub mod testing;

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

pub use projects::{ApplyOutcome, ApplyReport, Label, LabelChange, Project, ProjectSummary};

/// Migrations for SQLite (`migrations/sqlite`).
pub static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");
/// Migrations for PostgreSQL (`migrations/postgres`).
pub static POSTGRES_MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// Which database engine a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Embedded SQLite file.
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

/// A connection pool to the metadata database.
#[derive(Debug, Clone)]
pub enum Db {
    /// SQLite.
    Sqlite(SqlitePool),
    /// PostgreSQL.
    Postgres(PgPool),
}

/// Run the same code on whichever pool a [`Db`] holds: `with_pool!(db, |pool| expr)`.
/// Inside, `pool` is a `&SqlitePool` or a `&PgPool`; the expression is compiled for each.
#[macro_export]
macro_rules! with_pool {
    ($db:expr, |$pool:ident| $body:expr) => {
        match $db {
            $crate::Db::Sqlite($pool) => $body,
            $crate::Db::Postgres($pool) => $body,
        }
    };
}

/// Database errors.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL is neither SQLite nor PostgreSQL.
    #[error("unsupported database URL `{0}`: expected sqlite://PATH or postgres://USER@HOST/DB")]
    UnsupportedUrl(String),
    /// The database could not be reached or opened.
    #[error("cannot connect to the database {url}: {source}")]
    Connect {
        /// The URL (password redacted).
        url: String,
        /// The driver's error.
        source: sqlx::Error,
    },
    /// A migration failed.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A query failed.
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
    /// A file-system error (creating the SQLite file's folder).
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// No project by that name.
    #[error("project `{0}` does not exist (create it with `sightline project apply <manifest>`)")]
    ProjectNotFound(String),
    /// A label change was refused because data already depends on the label ids.
    #[error(transparent)]
    LabelChangeRefused(#[from] projects::LabelChangeRefused),
    /// A stored value could not be decoded.
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
}

impl Db {
    /// The statement that opens a write transaction: `BEGIN IMMEDIATE` on SQLite takes the write
    /// lock at once, so a transaction that reads before it writes waits (busy timeout) instead of
    /// failing with "database is locked" when another writer commits in between (a deferred
    /// transaction cannot upgrade its read snapshot); plain `BEGIN` on PostgreSQL.
    pub(crate) fn begin_write(&self) -> &'static str {
        match self {
            Db::Sqlite(_) => "BEGIN IMMEDIATE",
            Db::Postgres(_) => "BEGIN",
        }
    }

    /// Connect (creating a SQLite file and its folder if missing) and apply pending migrations.
    pub async fn connect(url: &str) -> Result<Self, DbError> {
        let db = Self::connect_without_migrating(url).await?;
        db.migrate().await?;
        Ok(db)
    }

    /// Connect without touching the schema.
    pub async fn connect_without_migrating(url: &str) -> Result<Self, DbError> {
        let shown = sightline_core::settings::redact_url(url);
        if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)
                .map_err(|source| DbError::Connect {
                    url: shown.clone(),
                    source,
                })?
                .create_if_missing(true)
                .foreign_keys(true)
                .journal_mode(SqliteJournalMode::Wal)
                .busy_timeout(Duration::from_secs(30));
            let file = options.get_filename();
            if let Some(dir) = file.parent()
                && !dir.as_os_str().is_empty()
                && file.as_os_str() != ":memory:"
            {
                fs_err::create_dir_all(dir)?;
            }
            let pool = SqlitePoolOptions::new()
                .max_connections(4)
                .connect_with(options)
                .await
                .map_err(|source| DbError::Connect { url: shown, source })?;
            Ok(Db::Sqlite(pool))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = PgPoolOptions::new()
                .max_connections(8)
                .acquire_timeout(Duration::from_secs(5))
                .connect(url)
                .await
                .map_err(|source| DbError::Connect { url: shown, source })?;
            Ok(Db::Postgres(pool))
        } else {
            Err(DbError::UnsupportedUrl(shown))
        }
    }

    /// Apply the pending migrations of this backend.
    pub async fn migrate(&self) -> Result<(), DbError> {
        match self {
            Db::Sqlite(pool) => SQLITE_MIGRATOR.run(pool).await?,
            Db::Postgres(pool) => POSTGRES_MIGRATOR.run(pool).await?,
        }
        Ok(())
    }

    /// The engine.
    pub fn backend(&self) -> Backend {
        match self {
            Db::Sqlite(_) => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// The versions of the applied migrations, oldest first.
    pub async fn applied_migrations(&self) -> Result<Vec<i64>, DbError> {
        let versions: Vec<i64> = with_pool!(self, |pool| {
            sqlx::query_scalar(
                "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version",
            )
            .fetch_all(pool)
            .await?
        });
        Ok(versions)
    }

    /// Close every connection.
    pub async fn close(&self) {
        with_pool!(self, |pool| pool.close().await)
    }
}

/// The current time, truncated to microseconds (what PostgreSQL keeps) so values round-trip.
pub fn now() -> chrono::DateTime<chrono::Utc> {
    let now = chrono::Utc::now();
    let micros = now.timestamp_micros();
    chrono::DateTime::from_timestamp_micros(micros).unwrap_or(now)
}
