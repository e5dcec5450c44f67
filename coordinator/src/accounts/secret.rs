//! Login secrets: a session cookie or API token is `<id>.<secret>`, where the id finds the stored
//! row and the secret is checked against its blake3 hash in constant time
//! ([`crate::auth`]), and CSRF tokens compared in constant time.

use crate::auth;

/// A fresh `<id>.<secret>` credential's parts: the secret to hand out and the hash to store.
pub struct FreshSecret {
    /// The secret, shown once.
    pub secret: String,
    /// Its stored form.
    pub hash: String,
}

impl FreshSecret {
    /// A new random secret.
    pub fn generate() -> FreshSecret {
        let secret = auth::new_secret();
        let hash = auth::hash_secret(&secret);
        FreshSecret { secret, hash }
    }

    /// The credential as handed out, once the row's id is known.
    pub fn credential(&self, id: i64) -> String {
        format!("{id}.{}", self.secret)
    }
}

/// Splits a `<id>.<secret>` credential; `None` for anything else.
pub fn parse_credential(credential: &str) -> Option<(i64, &str)> {
    let (id, secret) = credential.trim().split_once('.')?;
    let id: i64 = id.parse().ok().filter(|&id| id > 0)?;
    let well_formed = secret.len() == 64 && secret.bytes().all(|b| b.is_ascii_hexdigit());
    well_formed.then_some((id, secret))
}

/// Whether `secret` matches the stored hash (constant time).
pub fn secret_matches(secret: &str, stored_hash: &str) -> bool {
    auth::verify_secret(secret, stored_hash)
}

/// Whether the CSRF token a request carried is the session's. Compares blake3 hashes of both,
/// whose equality check takes the same time wherever they differ.
pub fn csrf_matches(expected: &str, given: &str) -> bool {
    !expected.is_empty() && blake3::hash(expected.as_bytes()) == blake3::hash(given.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_round_trip_and_verify() {
        let fresh = FreshSecret::generate();
        let cred = fresh.credential(42);
        let (id, secret) = parse_credential(&cred).unwrap();
        assert_eq!(id, 42);
        assert!(secret_matches(secret, &fresh.hash));
        assert!(!secret_matches(&"0".repeat(64), &fresh.hash));
    }

    #[test]
    fn malformed_credentials_are_refused() {
        let s = "a".repeat(64);
        assert!(parse_credential(&format!("7.{s}")).is_some());
        for bad in [
            String::new(),
            "7".into(),
            format!("x.{s}"),
            format!("0.{s}"),
            format!("-3.{s}"),
            "7.abc".into(),
            format!("7.{}", "g".repeat(64)),
            format!("7.{s}a"),
        ] {
            assert!(parse_credential(&bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn csrf_tokens_match_only_exactly() {
        let t = auth::new_secret();
        assert!(csrf_matches(&t, &t));
        assert!(!csrf_matches(&t, &t[..63]));
        assert!(!csrf_matches(&t, &t.to_uppercase()));
        assert!(!csrf_matches(&t, ""));
        assert!(!csrf_matches("", ""), "a session always has a token");
    }
}
