//! Store webhooks: signature checks over the raw body and the mapping of each provider's
//! payload onto domain events.

pub mod shopify;
mod value;
pub mod whatsapp;
pub mod woocommerce;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

/// Whether `signature` (base64) is the HMAC-SHA256 of `body` under any of `secrets`. The
/// comparison is constant-time on the decoded digests.
pub fn verify_base64_hmac(secrets: &[SecretString], body: &[u8], signature: &str) -> bool {
    let Ok(expected) = STANDARD.decode(signature.trim()) else {
        return false;
    };
    secrets.iter().any(|secret| {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes()) else {
            return false;
        };
        mac.update(body);
        mac.verify_slice(&expected).is_ok()
    })
}

/// The base64 HMAC-SHA256 of a body, as Shopify and WooCommerce send it; for tests and fakes.
pub fn sign_base64(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| {
        // HMAC accepts keys of any length, so this branch cannot be taken.
        unreachable!("HMAC key of any length is valid")
    });
    mac.update(body);
    STANDARD.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_failure_b07_signature_is_over_raw_bytes() {
        let secret = SecretString::from("shpss_fake_secret_0001");
        let raw = STANDARD
            .decode("eyJpZCI6ODIwOTgyOTExOTQ2MTU0NTA4LCJlbWFpbCI6IndhbmppcnVAZXhhbXBsZS5jb20iLCJub3RlIjoiVG9tIFx1MDAyNiBKZXJyeSIsImxhbmRpbmdfc2l0ZSI6IlwvcHJvZHVjdHNcL2ppa28/cmVmPXNtcyIsImxpbmVfaXRlbXMiOlt7InRpdGxlIjoiTcOibmVjxIMgSmlrbyDigJMgQ2xhc3NpYyIsInByaWNlIjoiMjQ5OS4wMCJ9XSwiY3VycmVuY3kiOiJLRVMiLCJzZXAiOiJhXHUyMDI4YiJ9")
            .unwrap();
        let header = "WE9bmxz9w0COY2zqlIMLcmSgHI5qSxRCf+3AJ+oQlHA=";
        assert!(verify_base64_hmac(
            std::slice::from_ref(&secret),
            &raw,
            header
        ));
        // Any re-serialisation changes the bytes and must fail.
        let value: serde_json::Value = serde_json::from_slice(&raw).unwrap();
        let reserialised = serde_json::to_vec(&value).unwrap();
        assert_ne!(reserialised, raw);
        assert!(!verify_base64_hmac(
            std::slice::from_ref(&secret),
            &reserialised,
            header
        ));
        // Tampered price.
        let tampered = String::from_utf8(raw.clone())
            .unwrap()
            .replace("2499.00", "1.00");
        assert!(!verify_base64_hmac(
            std::slice::from_ref(&secret),
            tampered.as_bytes(),
            header
        ));
        assert!(!verify_base64_hmac(&[secret], &raw, "not base64!"));
    }

    #[test]
    fn previous_secret_still_verifies_during_rotation() {
        let body = b"{\"id\":1}";
        let signature = sign_base64("old", body);
        let secrets = [SecretString::from("new"), SecretString::from("old")];
        assert!(verify_base64_hmac(&secrets, body, &signature));
        assert!(!verify_base64_hmac(&secrets[..1], body, &signature));
    }
}
