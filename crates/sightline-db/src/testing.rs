//! Test support, public so that every crate's tests can use it: a fresh PostgreSQL database or
//! SQLite file per test, dropped afterwards.
//!
//! PostgreSQL is the server at `$SIGHTLINE_TEST_POSTGRES_URL` (default
//! [`DEFAULT_TEST_POSTGRES_URL`]). When it cannot be reached the helpers return an error that says
//! so loudly: tests must fail, never skip.
//!
//! ```no_run
//! # async fn demo() {
//! let t = sightline_db::testing::fresh_postgres().await.unwrap();
//! // use t.db (a migrated `Db`) or t.url (for a child process); dropped with `t`
//! # }
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::{Db, DbError};

/// The PostgreSQL server tests use unless `SIGHTLINE_TEST_POSTGRES_URL` says otherwise.
pub const DEFAULT_TEST_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The PostgreSQL URL tests connect to for administration (creating databases).
pub fn postgres_admin_url() -> String {
    std::env::var("SIGHTLINE_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| DEFAULT_TEST_POSTGRES_URL.to_string())
}

fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{}_{}_{}", std::process::id(), nanos % 1_000_000_000_000, n)
}

/// `url` with its database name replaced by `name`.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.find('?') {
        Some(i) => (&url[..i], &url[i..]),
        None => (url, ""),
    };
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[after_scheme..]
        .find('/')
        .map_or(base.len(), |i| after_scheme + i);
    format!("{}/{}{}", &base[..host_end], name, query)
}

/// A database created on the test PostgreSQL server, dropped (with its connections) on drop.
#[derive(Debug)]
pub struct PgTestDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl PgTestDatabase {
    /// Create `sl_t_<unique>` on the test server. Blocking (it runs its own small runtime on a
    /// thread), so it works from synchronous tests and inside async ones.
    pub fn create() -> Result<Self, DbError> {
        let admin_url = postgres_admin_url();
        let name = format!("sl_t_{}", unique_suffix());
        let sql = format!("CREATE DATABASE \"{name}\"");
        run_admin(&admin_url, sql)?;
        let url = with_database(&admin_url, &name);
        Ok(Self {
            admin_url,
            name,
            url,
        })
    }

    /// The URL of the new database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for PgTestDatabase {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        if let Err(err) = run_admin(&self.admin_url, sql) {
            eprintln!("warning: could not drop test database {}: {err}", self.name);
        }
    }
}

/// Run one statement on the admin database from a private thread and runtime.
fn run_admin(admin_url: &str, sql: String) -> Result<(), DbError> {
    let admin_url = admin_url.to_string();
    let handle = std::thread::spawn(move || -> Result<(), DbError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async move {
            use sqlx::Connection;
            let shown = sightline_core::settings::redact_url(&admin_url);
            let mut conn = sqlx::PgConnection::connect(&admin_url)
                .await
                .map_err(|source| DbError::Connect {
                    url: format!(
                        "{shown} (the PostgreSQL test server is unreachable: start it, or set \
                         SIGHTLINE_TEST_POSTGRES_URL; PostgreSQL tests never skip)"
                    ),
                    source,
                })?;
            // `sql` is built here from a generated name (letters, digits, `_`): no user input.
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&mut conn)
                .await?;
            conn.close().await?;
            Ok(())
        })
    });
    handle
        .join()
        .map_err(|_| DbError::Corrupt("the test-database thread panicked".into()))?
}

/// A migrated [`Db`] on a fresh database, removed when dropped.
#[derive(Debug)]
pub struct TestDb {
    /// The connection pool.
    pub db: Db,
    /// The URL (for child processes such as the `sightline` binary).
    pub url: String,
    _guard: Guard,
}

/// Held only for its `Drop` (removing the database or file).
#[derive(Debug)]
#[allow(dead_code)]
enum Guard {
    Postgres(PgTestDatabase),
    Sqlite(SqliteTestFile),
}

/// A SQLite file in a unique temporary folder, removed on drop.
#[derive(Debug)]
pub struct SqliteTestFile {
    dir: std::path::PathBuf,
    url: String,
}

impl SqliteTestFile {
    /// A new unique folder under the system temp dir; the database file is `sightline.db` in it.
    pub fn create() -> Result<Self, DbError> {
        let dir = std::env::temp_dir().join(format!("sl_t_{}", unique_suffix()));
        fs_err::create_dir_all(&dir)?;
        let url = format!("sqlite://{}", dir.join("sightline.db").display());
        Ok(Self { dir, url })
    }

    /// The URL of the database file.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The folder holding it.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }
}

impl Drop for SqliteTestFile {
    fn drop(&mut self) {
        let _ = fs_err::remove_dir_all(&self.dir);
    }
}

/// A migrated database on the test PostgreSQL server; fails loudly when it is unreachable.
pub async fn fresh_postgres() -> Result<TestDb, DbError> {
    let guard = PgTestDatabase::create()?;
    let url = guard.url().to_string();
    let db = Db::connect(&url).await?;
    Ok(TestDb {
        db,
        url,
        _guard: Guard::Postgres(guard),
    })
}

/// A migrated database in a fresh SQLite file.
pub async fn fresh_sqlite() -> Result<TestDb, DbError> {
    let guard = SqliteTestFile::create()?;
    let url = guard.url().to_string();
    let db = Db::connect(&url).await?;
    Ok(TestDb {
        db,
        url,
        _guard: Guard::Sqlite(guard),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_name_replacement() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/test", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres://u:p@h/test?sslmode=disable", "x"),
            "postgres://u:p@h/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
    }
}
