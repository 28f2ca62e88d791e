//! HTTPS: the same routes (pages, API, WHIP, WHEP) behind rustls, from a PEM certificate chain
//! and key (`--tls-cert`, `--tls-key`).
//!
//! Browsers give the camera only to secure origins, so a host page on a public server needs
//! this (or a TLS-terminating reverse proxy, docs/deploy.md). warp 0.4 has no TLS of its own:
//! the accept loop in `connections` hands each rustls stream to hyper with the warp filter as
//! its service. This file builds the rustls acceptor.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use thiserror::Error;
use tokio_rustls::TlsAcceptor;

/// The PEM files HTTPS is served with.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// Its private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

#[derive(Debug, Error)]
pub enum TlsError {
    #[error("--tls-cert {path}: {reason}")]
    Cert { path: PathBuf, reason: String },
    #[error("--tls-key {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("the certificate and key do not make a TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// Reads the certificate chain and key and builds the acceptor (TLS 1.2 and 1.3, ALPN h2 and
/// http/1.1). Errors name the file and what is wrong with it, for a clear startup failure.
pub fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, TlsError> {
    let cert_error = |reason: String| TlsError::Cert { path: files.cert.clone(), reason };
    let chain = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| cert_error(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_error(e.to_string()))?;
    if chain.is_empty() {
        return Err(cert_error("no CERTIFICATE block in the file".into()));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| TlsError::Key { path: files.key.clone(), reason: e.to_string() })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_or_empty_files_are_refused_naming_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").expect("write");
        let missing = dir.path().join("missing.pem");
        let error = |cert: &PathBuf, key: &PathBuf| {
            acceptor(&TlsFiles { cert: cert.clone(), key: key.clone() }).err().map(|e| e.to_string()).unwrap_or_default()
        };
        assert!(error(&missing, &empty).starts_with(&format!("--tls-cert {}", missing.display())));
        assert!(error(&empty, &empty).contains("no CERTIFICATE block"));
    }
}
