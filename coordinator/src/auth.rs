//! Secrets for enrolment tokens and agents: generated from the OS's randomness, stored as
//! blake3 hashes, compared in constant time.

/// A fresh random secret: 32 bytes, hex.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).expect("the OS has randomness");
    hex::encode(bytes)
}

/// The stored form of a secret.
pub fn hash_secret(secret: &str) -> String {
    blake3::hash(secret.as_bytes()).to_hex().to_string()
}

/// Whether `secret` matches the stored hash. `blake3::Hash` compares in constant time.
pub fn verify_secret(secret: &str, stored_hash: &str) -> bool {
    match blake3::Hash::from_hex(stored_hash) {
        Ok(stored) => blake3::hash(secret.as_bytes()) == stored,
        Err(_) => false,
    }
}

/// Splits an `Authorization` header value `Bearer <agent_id>.<secret>`.
pub fn parse_bearer(header: &str) -> Option<(i64, &str)> {
    let credential = header.strip_prefix("Bearer ")?.trim();
    let (id, secret) = credential.split_once('.')?;
    Some((id.parse().ok()?, secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_verify_only_against_their_hash() {
        let s = new_secret();
        assert_eq!(s.len(), 64);
        let h = hash_secret(&s);
        assert!(verify_secret(&s, &h));
        assert!(!verify_secret(&new_secret(), &h));
        assert!(!verify_secret(&s, "not hex"));
    }

    #[test]
    fn bearer_headers_are_parsed_strictly() {
        assert_eq!(parse_bearer("Bearer 12.abc"), Some((12, "abc")));
        assert_eq!(parse_bearer("Basic 12.abc"), None);
        assert_eq!(parse_bearer("Bearer x.abc"), None);
        assert_eq!(parse_bearer("Bearer 12abc"), None);
    }
}
