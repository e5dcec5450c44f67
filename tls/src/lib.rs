//! Certificate fingerprints and pinning for idlefarm's HTTPS.
//!
//! A lab's coordinator usually has no certificate from a public authority: it makes itself a
//! self-signed one on first start and prints its [`Fingerprint`]. Agents (and the CLI) trust
//! it the way SSH trusts a host key: the fingerprint given on the command line, or the one
//! seen at enrolment (trust on first use), is pinned, and a coordinator presenting any other
//! certificate afterwards is refused before a byte of HTTP — so no secret reaches it.
//! [`Pin::client_config`] is the rustls configuration that does this; the signatures of the
//! handshake are still verified, only the chain of trust is replaced by the pin.

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex, RwLock};

use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

/// The SHA-256 of a certificate (its DER bytes), shown as `AB:CD:…` like
/// `openssl x509 -noout -fingerprint -sha256`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of a DER-encoded certificate.
    pub fn of(der: &[u8]) -> Fingerprint {
        let digest = ring::digest::digest(&ring::digest::SHA256, der);
        let mut bytes = [0; 32];
        bytes.copy_from_slice(digest.as_ref());
        Fingerprint(bytes)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// A fingerprint that does not read as 32 bytes of hex.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a SHA-256 certificate fingerprint (64 hex digits, colons allowed, e.g. as `idlefarm serve` prints it)"
)]
pub struct BadFingerprint(pub String);

impl FromStr for Fingerprint {
    type Err = BadFingerprint;

    /// Accepts `AB:CD:…`, `abcd…`, and either with a `sha256:` or `SHA256 Fingerprint=` prefix.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadFingerprint(s.to_owned());
        let text = s.trim();
        let lower = text.to_ascii_lowercase();
        let rest = ["sha256 fingerprint=", "sha256:", "sha256 "]
            .iter()
            .find_map(|p| lower.strip_prefix(p))
            .unwrap_or(&lower);
        let hex: Vec<u8> = rest.bytes().filter(|&b| b != b':').collect();
        if hex.len() != 64 {
            return Err(bad());
        }
        let mut bytes = [0; 32];
        for (i, pair) in hex.chunks(2).enumerate() {
            let digit = |b: u8| (b as char).to_digit(16).ok_or_else(bad);
            bytes[i] = (digit(pair[0])? * 16 + digit(pair[1])?) as u8;
        }
        Ok(Fingerprint(bytes))
    }
}

/// The certificate a client trusts: pinned, or not yet (then the first one seen is accepted
/// and can be pinned by the caller once it has decided to trust it).
#[derive(Debug, Default)]
pub struct Pin {
    expected: RwLock<Option<Fingerprint>>,
    presented: Mutex<Option<Fingerprint>>,
}

impl Pin {
    /// A pin expecting `expected`, or trusting on first use when `None`.
    pub fn new(expected: Option<Fingerprint>) -> Arc<Pin> {
        Arc::new(Pin {
            expected: RwLock::new(expected),
            presented: Mutex::new(None),
        })
    }

    /// From now on only `fingerprint` is accepted.
    pub fn pin(&self, fingerprint: Fingerprint) {
        *self.expected.write().unwrap_or_else(|e| e.into_inner()) = Some(fingerprint);
    }

    /// The fingerprint accepted, if any is pinned.
    pub fn expected(&self) -> Option<Fingerprint> {
        *self.expected.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The certificate the server presented last (accepted or not).
    pub fn presented(&self) -> Option<Fingerprint> {
        *self.presented.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A rustls client configuration that accepts only the pinned certificate (any, while
    /// none is pinned), with rustls's own ring provider.
    pub fn client_config(self: &Arc<Self>) -> rustls::ClientConfig {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = Arc::new(PinVerifier {
            pin: self.clone(),
            provider: provider.clone(),
        });
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth()
    }
}

/// Why a server was refused: it presented another certificate than the pinned one.
pub fn mismatch_message(presented: Fingerprint, pinned: Fingerprint) -> String {
    format!(
        "the coordinator presented certificate {presented}, but {pinned} is pinned: \
         something may be impersonating it. If its certificate was replaced on purpose, \
         start again with --fingerprint set to the new one"
    )
}

#[derive(Debug)]
struct PinVerifier {
    pin: Arc<Pin>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let presented = Fingerprint::of(end_entity.as_ref());
        *self.pin.presented.lock().unwrap_or_else(|e| e.into_inner()) = Some(presented);
        match self.pin.expected() {
            Some(pinned) if pinned != presented => {
                Err(rustls::Error::General(mismatch_message(presented, pinned)))
            }
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_print_like_openssl_and_parse_in_every_usual_form() {
        let fp = Fingerprint::of(b"not really a certificate");
        let shown = fp.to_string();
        assert_eq!(shown.len(), 95);
        assert!(shown.chars().all(|c| c == ':' || c.is_ascii_hexdigit()));
        for form in [
            shown.clone(),
            shown.to_lowercase(),
            shown.replace(':', ""),
            format!("sha256:{shown}"),
            format!("SHA256 Fingerprint={shown}"),
            format!("  {shown}\n"),
        ] {
            assert_eq!(form.parse::<Fingerprint>(), Ok(fp), "{form}");
        }
        for bad in [
            "",
            "AB:CD",
            &shown[..94],
            &format!("{shown}:00"),
            &format!("G{}", &shown[1..]),
        ] {
            let err = bad.parse::<Fingerprint>().unwrap_err();
            assert!(err.to_string().contains("not a SHA-256"), "{bad}: {err}");
        }
    }

    #[test]
    fn a_pin_remembers_what_it_expects() {
        let pin = Pin::new(None);
        assert_eq!(pin.expected(), None);
        let fp = Fingerprint::of(b"x");
        pin.pin(fp);
        assert_eq!(pin.expected(), Some(fp));
        let message = mismatch_message(Fingerprint::of(b"y"), fp);
        assert!(message.contains(&fp.to_string()) && message.contains("--fingerprint"));
    }
}
