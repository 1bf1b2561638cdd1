//! rustls client configuration: trust roots, custom CA files, `insecure`, ALPN.

use crate::error::Error;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore};
use std::path::Path;
use std::sync::Arc;

/// The crypto provider used everywhere (ring: no cmake/clang needed to build).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds a client config. `alpn` lists protocols in preference order (e.g. h2, http/1.1).
pub fn client_config(
    insecure: bool,
    ca_file: Option<&Path>,
    alpn: &[&[u8]],
) -> Result<ClientConfig, Error> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Other(format!("TLS setup: {e}")))?;
    let mut config = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(
                provider().signature_verification_algorithms,
            )))
            .with_no_client_auth()
    } else {
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(path) = ca_file {
            for cert in read_certificates(path)? {
                roots
                    .add(cert)
                    .map_err(|e| Error::flag("--ca-file", format!("{}: {e}", path.display())))?;
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// Reads every certificate in a PEM file; an empty or unreadable file is an error.
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let data = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let certs: Result<Vec<_>, _> = rustls_pemfile::certs(&mut &data[..]).collect();
    let certs = certs.map_err(|e| Error::flag("--ca-file", format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(Error::flag(
            "--ca-file",
            format!("{}: no PEM certificates found", path.display()),
        ));
    }
    Ok(certs)
}

/// The TLS server name: SNI override, else the URL host (IP addresses are allowed).
pub fn server_name(name: &str) -> Result<ServerName<'static>, Error> {
    let trimmed = name.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(trimmed.to_string()).map_err(|e| {
        Error::flag(
            "--sni",
            format!("{name:?} is not a valid TLS server name: {e}"),
        )
    })
}

/// `insecure: true`: any certificate is accepted, signatures are still checked so the
/// handshake itself is real.
#[derive(Debug)]
struct AcceptAnyCertificate(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_schemes()
    }
}
