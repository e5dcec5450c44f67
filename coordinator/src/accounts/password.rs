//! Passwords: argon2id hashes in PHC form, and generated passwords a person can type. Hashing is
//! deliberately slow (tens of milliseconds), so async code calls [`hash`] and [`verify`], which
//! run it on the blocking pool.

use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

use super::AccountError;

/// Shortest password accepted.
pub const MIN_LEN: usize = 8;
/// Longest password accepted (bounds the work one request can cause).
pub const MAX_LEN: usize = 1024;
/// Length of generated passwords: 20 characters of a 56-letter alphabet, about 116 bits.
pub const GENERATED_LEN: usize = 20;

/// Letters of generated passwords: no look-alikes (0/O, 1/l/I), nothing a shell would mangle.
const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/// Refuses passwords that are too short or too long.
pub fn check(password: &str) -> Result<(), AccountError> {
    let n = password.chars().count();
    if n < MIN_LEN {
        return Err(AccountError::Invalid(format!(
            "the password is too short: use at least {MIN_LEN} characters (or leave it out to get a generated one)"
        )));
    }
    if n > MAX_LEN {
        return Err(AccountError::Invalid(format!(
            "the password is too long: use at most {MAX_LEN} characters"
        )));
    }
    Ok(())
}

/// The argon2id hash of `password` with a fresh random salt, as a PHC string.
pub fn hash_blocking(password: &str) -> Result<String, AccountError> {
    let mut salt = [0u8; 16];
    getrandom::getrandom(&mut salt).map_err(|e| AccountError::Internal(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| AccountError::Internal(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AccountError::Internal(format!("hashing a password: {e}")))
}

/// Whether `password` matches the stored PHC string (false for a malformed one).
pub fn verify_blocking(password: &str, stored: &str) -> bool {
    match PasswordHash::new(stored) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// [`hash_blocking`] on the blocking pool.
pub async fn hash(password: String) -> Result<String, AccountError> {
    tokio::task::spawn_blocking(move || hash_blocking(&password))
        .await
        .map_err(|e| AccountError::Internal(e.to_string()))?
}

/// [`verify_blocking`] on the blocking pool. Without a stored hash (unknown user) it checks
/// against a stand-in, so a wrong name takes as long as a wrong password.
pub async fn verify(password: String, stored: Option<String>) -> Result<bool, AccountError> {
    tokio::task::spawn_blocking(move || match stored {
        Some(stored) => Ok(verify_blocking(&password, &stored)),
        None => {
            static STAND_IN: OnceLock<String> = OnceLock::new();
            let stand_in = match STAND_IN.get() {
                Some(h) => h,
                None => {
                    let h = hash_blocking("stand-in for unknown users")?;
                    STAND_IN.get_or_init(|| h)
                }
            };
            verify_blocking(&password, stand_in);
            Ok(false)
        }
    })
    .await
    .map_err(|e| AccountError::Internal(e.to_string()))?
}

/// A fresh random password of [`GENERATED_LEN`] characters.
pub fn generate() -> Result<String, AccountError> {
    // Rejection sampling: only bytes below a multiple of the alphabet's size, so every letter
    // is equally likely.
    let limit = 256 - 256 % ALPHABET.len();
    let mut out = String::with_capacity(GENERATED_LEN);
    let mut buf = [0u8; 64];
    while out.len() < GENERATED_LEN {
        getrandom::getrandom(&mut buf).map_err(|e| AccountError::Internal(e.to_string()))?;
        for &b in &buf {
            if (b as usize) < limit && out.len() < GENERATED_LEN {
                out.push(ALPHABET[b as usize % ALPHABET.len()] as char);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_and_no_other() {
        let h = hash_blocking("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(!h.contains("correct horse"));
        assert!(verify_blocking("correct horse", &h));
        assert!(!verify_blocking("correct horsE", &h));
        assert!(!verify_blocking("", &h));
        assert!(!verify_blocking("correct horse", "not a phc string"));
        let again = hash_blocking("correct horse").unwrap();
        assert_ne!(h, again, "every hash has its own salt");
        assert!(verify_blocking("correct horse", &again));
    }

    #[tokio::test]
    async fn async_verify_refuses_unknown_users() {
        let h = hash("s3cret-pass".into()).await.unwrap();
        assert!(verify("s3cret-pass".into(), Some(h.clone())).await.unwrap());
        assert!(!verify("wrong-pass".into(), Some(h)).await.unwrap());
        assert!(!verify("s3cret-pass".into(), None).await.unwrap());
    }

    #[test]
    fn generated_passwords_are_long_random_and_typeable() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert_eq!(a.chars().count(), GENERATED_LEN);
        assert_ne!(a, b);
        assert!(a.bytes().all(|c| ALPHABET.contains(&c)), "{a}");
        check(&a).unwrap();
    }

    #[test]
    fn short_and_huge_passwords_are_refused() {
        assert!(check("1234567").is_err());
        check("12345678").unwrap();
        assert!(check(&"x".repeat(MAX_LEN + 1)).is_err());
    }
}
