//! Opening stores on the test databases of `nudge-testkit`.

use nudge_store::{ConnectOptions, SqlStore};
pub use nudge_testkit::{TestDb, databases};

pub async fn open(db: &TestDb) -> SqlStore {
    SqlStore::open(&db.url, &ConnectOptions::default())
        .await
        .unwrap_or_else(|error| panic!("open {}: {error}", db.name))
}
