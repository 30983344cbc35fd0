//! A fresh database per test, SQLite or PostgreSQL, for the binary (by URL) or in process
//! (re-exports [`sightline_db::testing`]).
//!
//! PostgreSQL is the server at `$SIGHTLINE_TEST_POSTGRES_URL`; when it cannot be reached the
//! test fails, it never skips.

use std::path::Path;

pub use sightline_db::testing::{
    PgTestDatabase, SqliteTestFile, TestDb, fresh_postgres, fresh_sqlite,
};

/// The two metadata databases Sightline supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An embedded SQLite file.
    Sqlite,
    /// A database on the test PostgreSQL server.
    Postgres,
}

/// A database URL for a child process, with what keeps it alive (the PostgreSQL database is
/// dropped with this value; the SQLite file lives in the test's own folder).
#[derive(Debug)]
pub struct TestDatabase {
    url: String,
    _pg: Option<PgTestDatabase>,
}

impl TestDatabase {
    /// A fresh database of `backend`; for SQLite, the file `dir/<file>`.
    ///
    /// # Panics
    /// When the PostgreSQL test server is unreachable.
    pub fn new(backend: Backend, dir: &Path, file: &str) -> Self {
        match backend {
            Backend::Sqlite => Self::sqlite(dir, file),
            Backend::Postgres => Self::postgres(),
        }
    }

    /// The SQLite file `dir/<file>` (created by the binary on first use).
    pub fn sqlite(dir: &Path, file: &str) -> Self {
        Self {
            url: sqlite_url(&dir.join(file)),
            _pg: None,
        }
    }

    /// A new database on the test PostgreSQL server.
    ///
    /// # Panics
    /// When the server is unreachable.
    pub fn postgres() -> Self {
        let pg = PgTestDatabase::create()
            .unwrap_or_else(|e| panic!("PostgreSQL test database: {e} ({e:?})"));
        Self {
            url: pg.url().to_string(),
            _pg: Some(pg),
        }
    }

    /// The URL to pass to the binary (`--database-url`, `DATABASE_URL`).
    pub fn url(&self) -> &str {
        &self.url
    }
}

/// `sqlite://<path>`.
pub fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}
