//! Workspaces and API keys. Keys are stored as hashes only.

use nudge_core::store::StoreError;
use nudge_core::time::Timestamp;

use crate::SqlStore;
use crate::rows::{db_error, get, ms};

pub(crate) async fn default_workspace(store: &SqlStore) -> Result<i64, StoreError> {
    let row = sqlx::query("SELECT id FROM workspaces ORDER BY id LIMIT 1")
        .fetch_optional(&store.read)
        .await
        .map_err(db_error)?
        .ok_or(StoreError::NotFound)?;
    get(&row, "id")
}

pub(crate) async fn create(
    store: &SqlStore,
    workspace_id: i64,
    key_hash: &str,
    label: &str,
    now: Timestamp,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO api_keys (workspace_id, key_hash, label, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(workspace_id)
    .bind(key_hash)
    .bind(label)
    .bind(ms(now))
    .execute(&store.write)
    .await
    .map_err(db_error)?;
    Ok(())
}

pub(crate) async fn workspace_for(
    store: &SqlStore,
    key_hash: &str,
) -> Result<Option<i64>, StoreError> {
    let row = sqlx::query("SELECT workspace_id FROM api_keys WHERE key_hash = $1")
        .bind(key_hash)
        .fetch_optional(&store.read)
        .await
        .map_err(db_error)?;
    row.map(|row| get(&row, "workspace_id")).transpose()
}
