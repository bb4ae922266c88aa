//! Test databases: a fresh SQLite file and, when configured, a fresh PostgreSQL database.

use nudge_store::{ConnectOptions, SqlStore};

/// The variable that points the tests at a PostgreSQL server.
pub const POSTGRES_VAR: &str = "NUDGE_TEST_POSTGRES_URL";

/// A database that lives as long as the value.
pub struct TestDb {
    pub name: &'static str,
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

/// One fresh database per backend available here. PostgreSQL needs `NUDGE_TEST_POSTGRES_URL`
/// (for example `postgres://root@127.0.0.1:5432/test`); without it the PostgreSQL half is
/// skipped with a message, unless `NUDGE_REQUIRE_POSTGRES=1`, which turns the skip into a
/// failure (CI sets both).
pub async fn databases() -> Vec<TestDb> {
    let dir = tempfile::tempdir().expect("temporary folder");
    let sqlite = TestDb {
        name: "sqlite",
        url: format!("sqlite://{}/nudge.db", dir.path().display()),
        _dir: Some(dir),
    };
    let mut all = vec![sqlite];
    match std::env::var(POSTGRES_VAR) {
        Ok(base) => all.push(TestDb {
            name: "postgres",
            url: fresh_postgres(&base).await,
            _dir: None,
        }),
        Err(_) if std::env::var("NUDGE_REQUIRE_POSTGRES").as_deref() == Ok("1") => {
            panic!("NUDGE_REQUIRE_POSTGRES=1 but {POSTGRES_VAR} is not set");
        }
        Err(_) => eprintln!(
            "SKIPPED the PostgreSQL half: set {POSTGRES_VAR}=postgres://USER@HOST:PORT/DB to run it"
        ),
    }
    all
}

/// Creates an empty database next to the one `base` names and returns its URL.
pub async fn fresh_postgres(base: &str) -> String {
    use sqlx::Connection;
    let name = format!("nudge_test_{}", uuid_like());
    let mut admin = sqlx::PgConnection::connect(base)
        .await
        .expect("connect to PostgreSQL");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .expect("create test database");
    let (prefix, _) = base.rsplit_once('/').expect("database URL with a path");
    format!("{prefix}/{name}")
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos())
        .unwrap_or_default();
    format!(
        "{}_{}_{}",
        std::process::id(),
        nanos % 1_000_000_000,
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

pub async fn open(db: &TestDb) -> SqlStore {
    SqlStore::open(&db.url, &ConnectOptions::default())
        .await
        .unwrap_or_else(|error| panic!("open {}: {error}", db.name))
}
