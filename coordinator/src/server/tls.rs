//! HTTPS for the coordinator: its certificate (from PEM files, or self-signed and made once in
//! the data directory, so agents' pins stay valid across restarts), the fingerprint agents pin,
//! and a listener that runs each TLS handshake in its own task under a time limit, so a client
//! that connects and says nothing holds up nobody.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use idlefarm_tls::Fingerprint;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// How long a client has to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a generated certificate and key live, inside the data directory.
pub const GENERATED_DIR: &str = "tls";

/// The coordinator's certificate, ready to serve.
#[derive(Clone)]
pub struct TlsIdentity {
    /// Accepts TLS connections with the certificate.
    pub acceptor: TlsAcceptor,
    /// The certificate's SHA-256 fingerprint, which agents pin.
    pub fingerprint: Fingerprint,
    /// The certificate file.
    pub cert_path: PathBuf,
    /// Whether the coordinator made it itself (self-signed).
    pub self_signed: bool,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("fingerprint", &self.fingerprint)
            .field("cert_path", &self.cert_path)
            .finish_non_exhaustive()
    }
}

/// Loads a certificate chain and its private key from PEM files.
pub fn from_files(cert: &Path, key: &Path) -> anyhow::Result<TlsIdentity> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("cannot read the certificate {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("{} is not a PEM certificate file", cert.display()))?;
    if chain.is_empty() {
        bail!("{} holds no certificate", cert.display());
    }
    let private = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("cannot read a PEM private key from {}", key.display()))?;
    identity(chain, private, cert, false)
}

/// The self-signed certificate in `data_dir/tls/`, made on first use for `names` (host names
/// and addresses the agents use to reach this coordinator).
pub fn self_signed(data_dir: &Path, names: Vec<String>) -> anyhow::Result<TlsIdentity> {
    let dir = data_dir.join(GENERATED_DIR);
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    if !cert.exists() || !key.exists() {
        generate(&dir, &cert, &key, names)?;
    }
    let mut id = from_files(&cert, &key)?;
    id.self_signed = true;
    Ok(id)
}

fn generate(dir: &Path, cert: &Path, key: &Path, names: Vec<String>) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let made = rcgen::generate_simple_self_signed(names)
        .context("cannot make a self-signed certificate")?;
    // The key first; the certificate's presence marks both complete. Atomic writes go through
    // a temp file created with mode 0600, so the key is never readable by others.
    crate::files::write_atomic(key, made.key_pair.serialize_pem().as_bytes())
        .with_context(|| format!("cannot write {}", key.display()))?;
    crate::files::write_atomic(cert, made.cert.pem().as_bytes())
        .with_context(|| format!("cannot write {}", cert.display()))?;
    tracing::info!("made a self-signed certificate in {}", dir.display());
    Ok(())
}

fn identity(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    cert_path: &Path,
    self_signed: bool,
) -> anyhow::Result<TlsIdentity> {
    let fingerprint = Fingerprint::of(chain[0].as_ref());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .with_context(|| {
            format!(
                "the private key does not suit the certificate {}",
                cert_path.display()
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsIdentity {
        acceptor: TlsAcceptor::from(Arc::new(config)),
        fingerprint,
        cert_path: cert_path.to_path_buf(),
        self_signed,
    })
}

/// Accepted TCP connections after their TLS handshake, for `axum::serve`.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    accepting: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    /// Starts accepting on `tcp`; each handshake runs in its own task.
    pub fn new(tcp: TcpListener, acceptor: TlsAcceptor) -> std::io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        let accepting = tokio::spawn(async move {
            loop {
                let (stream, peer) = match tcp.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors and the like: wait instead of spinning.
                        tracing::warn!("cannot accept a connection: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    let shake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream));
                    match shake.await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener {
            ready,
            local,
            accepting,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The accepting task only ends when the listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_certificate_is_kept_and_reused_with_a_private_key() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let first = self_signed(dir.path(), vec!["localhost".into()]).unwrap();
        let again = self_signed(dir.path(), vec!["other".into()]).unwrap();
        assert_eq!(first.fingerprint, again.fingerprint, "made once");
        assert!(first.self_signed);
        let key = dir.path().join("tls/key.pem");
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the key is private: {mode:o}");
    }

    #[test]
    fn unreadable_or_mismatched_files_are_refused_with_the_file_named() {
        let dir = tempfile::tempdir().unwrap();
        let a = self_signed(&dir.path().join("a"), vec!["a".into()]).unwrap();
        let b = self_signed(&dir.path().join("b"), vec!["b".into()]).unwrap();
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not pem at all").unwrap();
        let key_b = dir.path().join("b/tls/key.pem");
        for (cert, key, says) in [
            (junk.clone(), key_b.clone(), "junk.pem"),
            (a.cert_path.clone(), junk.clone(), "junk.pem"),
            (a.cert_path.clone(), key_b.clone(), "does not suit"),
            (dir.path().join("missing.pem"), key_b.clone(), "missing.pem"),
        ] {
            let err = format!("{:#}", from_files(&cert, &key).unwrap_err());
            assert!(err.contains(says), "{cert:?} {key:?}: {err}");
        }
        assert!(from_files(&b.cert_path, &key_b).is_ok());
    }
}
