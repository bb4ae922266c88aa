//! Opening a store: choosing the backend from the URL's scheme, pool sizes and SQLite's
//! settings, and applying the backend's migrations.

use std::str::FromStr;
use std::time::Duration;

use nudge_core::store::StoreError;
use sqlx::Executor;
use sqlx::any::AnyPoolOptions;

use crate::SqlStore;
use crate::rows::db_error;

/// The database behind a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    /// The backend a database URL names, by its scheme.
    pub fn of_url(url: &str) -> Result<Backend, StoreError> {
        let scheme = url.split(':').next().unwrap_or_default();
        match scheme {
            "sqlite" => Ok(Backend::Sqlite),
            "postgres" | "postgresql" => Ok(Backend::Postgres),
            _ => Err(StoreError::Other(format!(
                "unsupported database URL scheme {scheme:?}; use sqlite://PATH or postgres://…"
            ))),
        }
    }
}

/// Pool settings.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Connections for PostgreSQL, and for SQLite readers.
    pub max_connections: u32,
    /// How long a request waits for a connection before the database counts as unavailable.
    pub acquire_timeout: Duration,
    /// SQLite only: skip `fsync` (for throwaway replay databases).
    pub sqlite_unsynced: bool,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(3),
            sqlite_unsynced: false,
        }
    }
}

static INSTALL_DRIVERS: std::sync::Once = std::sync::Once::new();

pub(crate) async fn open(url: &str, options: &ConnectOptions) -> Result<SqlStore, StoreError> {
    INSTALL_DRIVERS.call_once(sqlx::any::install_default_drivers);
    let backend = Backend::of_url(url)?;
    match backend {
        Backend::Sqlite => open_sqlite(url, options).await,
        Backend::Postgres => {
            let pool = AnyPoolOptions::new()
                .max_connections(options.max_connections)
                .acquire_timeout(options.acquire_timeout)
                .connect(url)
                .await
                .map_err(db_error)?;
            Ok(SqlStore {
                backend,
                write: pool.clone(),
                read: pool,
                url: url.to_string(),
            })
        }
    }
}

async fn open_sqlite(url: &str, options: &ConnectOptions) -> Result<SqlStore, StoreError> {
    let memory = url.contains(":memory:") || url.contains("mode=memory");
    let url = with_create_mode(url, memory);
    if !memory {
        create_parent_dir(&url)?;
    }
    let synchronous = if options.sqlite_unsynced {
        "OFF"
    } else {
        "NORMAL"
    };
    let pool_for = |connections: u32| {
        AnyPoolOptions::new()
            .max_connections(connections)
            .acquire_timeout(options.acquire_timeout)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute(format!("PRAGMA synchronous = {synchronous}").as_str())
                        .await?;
                    conn.execute("PRAGMA busy_timeout = 5000").await?;
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                    Ok(())
                })
            })
    };
    let write = pool_for(1).connect(&url).await.map_err(db_error)?;
    // An in-memory database exists once per connection, so readers must share the writer.
    let read = if memory {
        write.clone()
    } else {
        pool_for(options.max_connections.clamp(1, 8))
            .connect(&url)
            .await
            .map_err(db_error)?
    };
    Ok(SqlStore {
        backend: Backend::Sqlite,
        write,
        read,
        url,
    })
}

/// Adds `mode=rwc` so that a missing database file is created.
fn with_create_mode(url: &str, memory: bool) -> String {
    if memory || url.contains("mode=") {
        return url.to_string();
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}mode=rwc")
}

fn create_parent_dir(url: &str) -> Result<(), StoreError> {
    let path = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:")
        .split('?')
        .next()
        .unwrap_or_default();
    if let Some(parent) = std::path::Path::new(path).parent() {
        if !parent.as_os_str().is_empty() {
            std::fs::create_dir_all(parent).map_err(|error| {
                StoreError::Other(format!(
                    "cannot create folder {}: {error}",
                    parent.display()
                ))
            })?;
        }
    }
    Ok(())
}

pub(crate) async fn migrate(store: &SqlStore) -> Result<(), StoreError> {
    let migrator = match store.backend {
        Backend::Sqlite => sqlx::migrate!("./migrations/sqlite"),
        Backend::Postgres => sqlx::migrate!("./migrations/postgres"),
    };
    // On PostgreSQL the migrator holds an advisory lock, so two instances starting together
    // do not apply the same migration twice.
    migrator
        .run(&store.write)
        .await
        .map_err(|error| StoreError::Other(format!("applying migrations failed: {error}")))
}

impl FromStr for Backend {
    type Err = StoreError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Backend::of_url(text)
    }
}
