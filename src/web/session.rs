//! The web view's session cookie. Signing in with a token sets `changebot_session` to
//! `EXPIRES.MAC`: the Unix time the session ends and an HMAC-SHA256 of it keyed with the
//! token. The cookie never carries the token, cannot be used as a bearer token, ends after
//! [`LIFETIME`] (the browser is told the same with `Max-Age`), ends at once when the token
//! changes, and is cleared by signing out.

use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The session cookie's name.
pub const COOKIE: &str = "changebot_session";
/// How long a sign-in lasts.
pub const LIFETIME: Duration = Duration::hours(12);

/// What the MAC covers besides the expiry, so the value is useless anywhere else.
const CONTEXT: &[u8] = b"changebot web session v2\0";

fn mac(token: &str, expires: i64) -> Option<Hmac<Sha256>> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(token.as_bytes()).ok()?;
    mac.update(CONTEXT);
    mac.update(expires.to_string().as_bytes());
    Some(mac)
}

/// A session for `token` that starts `now`.
pub fn issue(token: &str, now: DateTime<Utc>) -> String {
    let expires = (now + LIFETIME).timestamp();
    let digest = mac(token, expires).map(|m| hex::encode(m.finalize().into_bytes()));
    format!("{expires}.{}", digest.unwrap_or_default())
}

/// Whether `value` is a session `token` issued that has not ended at `now` (constant-time
/// comparison of the MAC).
pub fn vouches(value: &str, token: &str, now: DateTime<Utc>) -> bool {
    let Some((expires, digest)) = value.split_once('.') else {
        return false;
    };
    let (Ok(expires), Ok(digest)) = (expires.parse::<i64>(), hex::decode(digest)) else {
        return false;
    };
    if token.is_empty() || digest.is_empty() || expires <= now.timestamp() {
        return false;
    }
    mac(token, expires).is_some_and(|m| m.verify_slice(&digest).is_ok())
}

/// The `Set-Cookie` value that starts a session (`Secure` when the site is served over https).
pub fn set_cookie(value: &str, secure: bool) -> String {
    format!(
        "{COOKIE}={value}; Max-Age={}; HttpOnly; SameSite=Strict; Path=/{}",
        LIFETIME.num_seconds(),
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that ends a session.
pub fn clear_cookie(secure: bool) -> String {
    format!(
        "{COOKIE}=; Max-Age=0; HttpOnly; SameSite=Strict; Path=/{}",
        if secure { "; Secure" } else { "" }
    )
}

/// The session cookie's value, if the request has one.
pub fn from_headers(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderValue, header};

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn a_session_holds_no_token_and_ends_after_its_lifetime() {
        let now = at("2026-11-23T09:00:00Z");
        let value = issue("s3cret", now);
        assert!(!value.contains("s3cret"), "{value}");
        assert!(vouches(&value, "s3cret", now));
        assert!(vouches(
            &value,
            "s3cret",
            now + LIFETIME - Duration::seconds(1)
        ));
        assert!(!vouches(&value, "s3cret", now + LIFETIME), "ended");
        assert!(!vouches(&value, "other-token", now), "the token changed");
    }

    #[test]
    fn a_forged_or_stretched_session_is_refused() {
        let now = at("2026-11-23T09:00:00Z");
        let value = issue("s3cret", now);
        let (expires, digest) = value.split_once('.').expect("two parts");
        let later = expires.parse::<i64>().expect("number") + 86_400;
        for forged in [
            format!("{later}.{digest}"),
            format!("{expires}.{}", "0".repeat(64)),
            format!("{expires}."),
            expires.to_string(),
            "garbage".to_string(),
            String::new(),
        ] {
            assert!(!vouches(&forged, "s3cret", now), "{forged}");
        }
        assert!(
            !vouches(&value, "", now),
            "an empty token vouches for nothing"
        );
    }

    #[test]
    fn cookies_say_how_long_and_where() {
        let set = set_cookie("1.ab", true);
        assert_eq!(
            set,
            "changebot_session=1.ab; Max-Age=43200; HttpOnly; SameSite=Strict; Path=/; Secure"
        );
        assert!(clear_cookie(false).contains("Max-Age=0"));
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=b; changebot_session=abc; c=d"),
        );
        assert_eq!(from_headers(&headers), Some("abc"));
    }
}
