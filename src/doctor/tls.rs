//! A TLS handshake that reports what it saw: the certificate verdict of the real verifier
//! (even when `insecure` accepts anything), the version and the ALPN result.

use super::diagnosis::Diagnosis;
use crate::profile::{HttpVersion, Profile};
use crate::transport::tls::{provider, read_certificates, server_name};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Runs the real verifier, remembers its verdict, and accepts anyway when `insecure`.
#[derive(Debug)]
struct Inspect {
    inner: Arc<WebPkiServerVerifier>,
    insecure: bool,
    verdict: Mutex<Option<Result<(), rustls::Error>>>,
}

impl ServerCertVerifier for Inspect {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let result =
            self.inner
                .verify_server_cert(end_entity, intermediates, server_name, ocsp, now);
        if let Ok(mut v) = self.verdict.lock() {
            *v = Some(result.as_ref().map(|_| ()).map_err(Clone::clone));
        }
        match result {
            Err(_) if self.insecure => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// What the handshake showed. `usable` is false when the run's own handshake would fail.
pub struct TlsFindings {
    pub findings: Vec<Diagnosis>,
    pub usable: bool,
}

fn certificate_reason(e: &rustls::Error) -> Option<Result<String, ()>> {
    // Ok(reason) = untrusted for that reason; Err(()) = name mismatch.
    match e {
        rustls::Error::InvalidCertificate(c) => Some(match c {
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                Err(())
            }
            CertificateError::UnknownIssuer => {
                Ok("issued by an unknown CA, e.g. self-signed".to_string())
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                Ok("expired".to_string())
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                Ok("not valid yet".to_string())
            }
            CertificateError::Revoked => Ok("revoked".to_string()),
            CertificateError::Other(o) if format!("{o:?}").contains("CaUsedAsEndEntity") => {
                Ok("self-signed: the server certificate is its own CA".to_string())
            }
            other => Ok(format!("{other:?}")),
        }),
        _ => None,
    }
}

/// Handshakes with `addr` as the run would (SNI, ALPN, trust settings) and explains the result.
pub async fn inspect(
    profile: &Profile,
    host: &str,
    addr: SocketAddr,
    timeout: Duration,
) -> TlsFindings {
    let t = &profile.target;
    let sni = t.sni.clone().unwrap_or_else(|| host.to_string());
    let mut findings = Vec::new();
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = &t.ca_file {
        match read_certificates(path) {
            Ok(certs) => {
                for cert in certs {
                    if let Err(e) = roots.add(cert) {
                        findings.push(Diagnosis::CaFileUnusable {
                            error: format!("{}: {e}", path.display()),
                        });
                    }
                }
            }
            Err(e) => findings.push(Diagnosis::CaFileUnusable {
                error: e.to_string(),
            }),
        }
    }
    let fail = |mut findings: Vec<Diagnosis>, error: String| {
        findings.push(Diagnosis::TlsHandshakeFailed {
            error,
            plain_http: false,
        });
        TlsFindings {
            findings,
            usable: false,
        }
    };
    let inner =
        match WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider()).build() {
            Ok(v) => v,
            Err(e) => return fail(findings, format!("TLS setup: {e}")),
        };
    let verifier = Arc::new(Inspect {
        inner,
        insecure: t.insecure,
        verdict: Mutex::new(None),
    });
    let mut config = match ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
    {
        Ok(b) => b
            .dangerous()
            .with_custom_certificate_verifier(verifier.clone())
            .with_no_client_auth(),
        Err(e) => return fail(findings, format!("TLS setup: {e}")),
    };
    config.alpn_protocols = match t.http {
        HttpVersion::Auto => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        HttpVersion::H1 => vec![b"http/1.1".to_vec()],
        HttpVersion::H2 => vec![b"h2".to_vec()],
    };
    let name = match server_name(&sni) {
        Ok(n) => n,
        Err(e) => return fail(findings, e.to_string()),
    };
    let handshake = async {
        let tcp = TcpStream::connect(addr).await?;
        TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
    };
    let result = tokio::time::timeout(timeout, handshake).await;
    let verdict = verifier.verdict.lock().ok().and_then(|mut v| v.take());
    if let Some(Err(e)) = &verdict {
        findings.push(match certificate_reason(e) {
            Some(Err(())) => Diagnosis::CertificateNameMismatch {
                sni: sni.clone(),
                insecure: t.insecure,
            },
            Some(Ok(reason)) => Diagnosis::CertificateUntrusted {
                reason,
                insecure: t.insecure,
            },
            None => Diagnosis::CertificateUntrusted {
                reason: e.to_string(),
                insecure: t.insecure,
            },
        });
    }
    let stream = match result {
        Err(_) => {
            return fail(
                findings,
                format!("no handshake within {} ms", timeout.as_millis()),
            )
        }
        Ok(Err(e)) => {
            if matches!(verdict, Some(Err(_))) && !t.insecure {
                // The certificate finding above already says why.
                return TlsFindings {
                    findings,
                    usable: false,
                };
            }
            let text = e.to_string();
            let plain_http = text.contains("InvalidContentType")
                || text.contains("corrupt message")
                || text.contains("invalid content type");
            findings.push(Diagnosis::TlsHandshakeFailed {
                error: text,
                plain_http,
            });
            return TlsFindings {
                findings,
                usable: false,
            };
        }
        Ok(Ok(s)) => s,
    };
    let conn = stream.get_ref().1;
    let alpn = conn
        .alpn_protocol()
        .map(|p| String::from_utf8_lossy(p).into_owned());
    let version = conn
        .protocol_version()
        .map(|v| match v {
            rustls::ProtocolVersion::TLSv1_3 => "1.3".to_string(),
            rustls::ProtocolVersion::TLSv1_2 => "1.2".to_string(),
            other => format!("{other:?}"),
        })
        .unwrap_or_else(|| "?".into());
    findings.push(Diagnosis::TlsOk {
        version,
        alpn: alpn.clone(),
        sni,
    });
    let mut usable = true;
    if alpn.as_deref() != Some("h2") {
        match t.http {
            HttpVersion::H1 => {}
            HttpVersion::Auto => findings.push(Diagnosis::NoHttp2 {
                alpn,
                required: false,
            }),
            HttpVersion::H2 => {
                usable = false;
                findings.push(Diagnosis::NoHttp2 {
                    alpn,
                    required: true,
                })
            }
        }
    }
    TlsFindings { findings, usable }
}
