//! `X-Changebot-Signature-256`: HMAC-SHA256 of the exact body bytes, as `sha256=<hex>`.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// `sha256=<lowercase hex HMAC-SHA256 of body keyed with secret>`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    // Without a MAC (impossible for HMAC) the result is `sha256=`, which `verify` never accepts.
    let digest = mac(secret, body).map(|m| hex::encode(m.finalize().into_bytes()));
    format!("sha256={}", digest.unwrap_or_default())
}

/// Checks a `sha256=<hex>` signature header against `body` in constant time. `false` for a missing
/// or malformed header, and for an empty secret (a misconfiguration must not authenticate anyone).
pub fn verify(secret: &[u8], body: &[u8], header: Option<&str>) -> bool {
    let Some(hex_digest) = header.and_then(|h| h.trim().strip_prefix("sha256=")) else {
        return false;
    };
    if secret.is_empty() {
        return false;
    }
    match (hex::decode(hex_digest), mac(secret, body)) {
        (Ok(expected), Some(mac)) => !expected.is_empty() && mac.verify_slice(&expected).is_ok(),
        _ => false,
    }
}

/// HMAC accepts keys of any length, so this is always `Some`; the `Option` only spares a panic.
fn mac(secret: &[u8], body: &[u8]) -> Option<HmacSha256> {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(secret).ok()?;
    mac.update(body);
    Some(mac)
}
