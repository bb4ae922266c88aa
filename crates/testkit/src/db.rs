//! Fresh databases for tests: a SQLite file in a temporary folder and, when configured, a new
//! PostgreSQL database on the server `NUDGE_TEST_POSTGRES_URL` names.

use std::sync::atomic::{AtomicU32, Ordering};

/// The variable that points tests at a PostgreSQL server, for example
/// `postgres://root@127.0.0.1:5432/test`.
pub const POSTGRES_VAR: &str = "NUDGE_TEST_POSTGRES_URL";
/// Set to `1` to make a missing `NUDGE_TEST_POSTGRES_URL` a failure instead of a skip.
pub const REQUIRE_POSTGRES_VAR: &str = "NUDGE_REQUIRE_POSTGRES";

/// A database that lives as long as the value (the SQLite file is deleted with it; the
/// PostgreSQL database is left for `.ci/run` to drop, because dropping needs every
/// connection closed first).
pub struct TestDb {
    /// `sqlite` or `postgres`.
    pub name: &'static str,
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub fn sqlite() -> TestDb {
        let dir = match tempfile::tempdir() {
            Ok(dir) => dir,
            Err(error) => panic!("cannot create a temporary folder: {error}"),
        };
        TestDb {
            name: "sqlite",
            url: format!("sqlite://{}/nudge.db", dir.path().display()),
            _dir: Some(dir),
        }
    }

    /// A fresh PostgreSQL database, or `None` with a printed skip message when
    /// `NUDGE_TEST_POSTGRES_URL` is not set.
    ///
    /// # Panics
    ///
    /// Panics when `NUDGE_REQUIRE_POSTGRES=1` and the variable is missing, or when the server
    /// cannot be reached.
    pub async fn postgres() -> Option<TestDb> {
        match std::env::var(POSTGRES_VAR) {
            Ok(base) if !base.is_empty() => Some(TestDb {
                name: "postgres",
                url: fresh_postgres(&base).await,
                _dir: None,
            }),
            _ if std::env::var(REQUIRE_POSTGRES_VAR).as_deref() == Ok("1") => {
                panic!("{REQUIRE_POSTGRES_VAR}=1 but {POSTGRES_VAR} is not set")
            }
            _ => {
                // Written to the process's stderr directly, past the test harness's output
                // capture, so the skip shows in a normal `cargo test` run.
                use std::io::Write;
                let _ = writeln!(
                    std::io::stderr(),
                    "SKIPPED the PostgreSQL half of this test: set {POSTGRES_VAR}=postgres://USER@HOST:PORT/DB to run it"
                );
                None
            }
        }
    }
}

/// A fresh SQLite database, and a fresh PostgreSQL one when configured.
pub async fn databases() -> Vec<TestDb> {
    let mut all = vec![TestDb::sqlite()];
    all.extend(TestDb::postgres().await);
    all
}

/// Creates an empty database on the server of `base` and returns its URL.
///
/// # Panics
///
/// Panics when the server cannot be reached or refuses to create the database.
pub async fn fresh_postgres(base: &str) -> String {
    use sqlx::Connection;
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos() % 1_000_000_000)
        .unwrap_or_default();
    let name = format!(
        "nudge_test_{}_{nanos}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    );
    let mut admin = match sqlx::PgConnection::connect(base).await {
        Ok(connection) => connection,
        Err(error) => panic!("cannot connect to PostgreSQL at {POSTGRES_VAR}: {error}"),
    };
    if let Err(error) = sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
    {
        panic!("cannot create test database {name}: {error}");
    }
    let _ = admin.close().await;
    let Some((prefix, _)) = base.split('?').next().and_then(|url| url.rsplit_once('/')) else {
        panic!("{POSTGRES_VAR} must end with /DATABASE");
    };
    format!("{prefix}/{name}")
}
