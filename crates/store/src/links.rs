//! Short links: resolving a token to its stored target, with campaign parameters, and
//! recording the click.

use nudge_core::store::StoreError;
use nudge_core::time::Timestamp;

use crate::SqlStore;
use crate::rows::{db_error, get, ms};

pub(crate) async fn follow(
    store: &SqlStore,
    token: &str,
    record_click: bool,
    now: Timestamp,
) -> Result<Option<String>, StoreError> {
    let row =
        sqlx::query("SELECT workspace_id, target, campaign, medium FROM links WHERE token = $1")
            .bind(token)
            .fetch_optional(&store.read)
            .await
            .map_err(db_error)?;
    let Some(row) = row else {
        return Ok(None);
    };
    let workspace_id: i64 = get(&row, "workspace_id")?;
    let target: String = get(&row, "target")?;
    let campaign: String = get(&row, "campaign")?;
    let medium: String = get(&row, "medium")?;
    if record_click {
        sqlx::query("INSERT INTO clicks (workspace_id, token, clicked_at) VALUES ($1, $2, $3)")
            .bind(workspace_id)
            .bind(token)
            .bind(ms(now))
            .execute(&store.write)
            .await
            .map_err(db_error)?;
    }
    Ok(Some(with_campaign(&target, &medium, &campaign)))
}

/// Adds `utm_source=nudge`, the medium and the campaign to a URL, replacing any values the
/// target already had for those three keys.
pub fn with_campaign(target: &str, medium: &str, campaign: &str) -> String {
    let Ok(mut url) = url::Url::parse(target) else {
        return target.to_string();
    };
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(key, _)| !matches!(key.as_ref(), "utm_source" | "utm_medium" | "utm_campaign"))
        .map(|(key, value)| (key.into_owned(), value.into_owned()))
        .collect();
    url.query_pairs_mut()
        .clear()
        .extend_pairs(kept)
        .append_pair("utm_source", "nudge")
        .append_pair("utm_medium", medium)
        .append_pair("utm_campaign", campaign);
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::with_campaign;

    #[test]
    fn campaign_parameters_are_appended() {
        assert_eq!(
            with_campaign(
                "https://test-shop.example.com/1/checkouts/c0de/recover?key=TESTKEY",
                "sms",
                "cart-recovery"
            ),
            "https://test-shop.example.com/1/checkouts/c0de/recover?key=TESTKEY&utm_source=nudge&utm_medium=sms&utm_campaign=cart-recovery"
        );
    }

    #[test]
    fn existing_campaign_parameters_are_replaced() {
        assert_eq!(
            with_campaign("https://shop.example/c?utm_source=mail&a=1", "sms", "x"),
            "https://shop.example/c?a=1&utm_source=nudge&utm_medium=sms&utm_campaign=x"
        );
    }
}
