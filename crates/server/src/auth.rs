//! Bearer API keys: a key is shown once when created and stored only as its SHA-256 hash.

use std::collections::HashMap;
use std::sync::RwLock;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use rand::distr::{Alphanumeric, SampleString};
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::state::App;

/// Prefix of every key, so a leaked one is recognisable in logs and scanners.
pub const KEY_PREFIX: &str = "nk_";

/// A new random API key.
pub fn new_key() -> String {
    format!(
        "{KEY_PREFIX}{}",
        Alphanumeric.sample_string(&mut rand::rng(), 40)
    )
}

/// The stored form of a key.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Keys already checked, by hash, so that a busy client does not cost a query per request.
#[derive(Debug, Default)]
pub struct KeyCache {
    known: RwLock<HashMap<String, i64>>,
}

/// The workspace of the calling API key.
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    pub workspace_id: i64,
}

impl FromRequestParts<App> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .ok_or_else(|| {
                ApiError::Unauthorized("missing Authorization: Bearer <API key>".into())
            })?;
        // The scheme name is case-insensitive (RFC 7235).
        let key = header
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, key)| key.trim())
            .filter(|key| !key.is_empty())
            .ok_or_else(|| {
                ApiError::Unauthorized("Authorization must be Bearer <API key>".into())
            })?;
        let hash = hash_key(key);
        let cached = app
            .0
            .keys
            .known
            .read()
            .ok()
            .and_then(|known| known.get(&hash).copied());
        let workspace_id = match cached {
            Some(workspace_id) => workspace_id,
            None => {
                let workspace_id = app
                    .store()
                    .workspace_for_key(&hash)
                    .await?
                    .ok_or_else(|| ApiError::Unauthorized("unknown API key".into()))?;
                if let Ok(mut known) = app.0.keys.known.write() {
                    known.insert(hash, workspace_id);
                }
                workspace_id
            }
        };
        Ok(Caller { workspace_id })
    }
}
