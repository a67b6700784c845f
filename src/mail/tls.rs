//! TLS for SMTP: which certificates are trusted (the webpki roots, the system store and
//! the configured `ca_file`), and what a failed handshake means in words an operator can
//! act on.

use crate::config::SmtpSettings;
use lettre::transport::smtp::Error as SmtpError;
use lettre::transport::smtp::client::{Certificate, CertificateStore, TlsParameters};
use rustls::{CertificateError, Error as TlsError};
use std::sync::OnceLock;

/// The system's trusted roots (`/etc/ssl/certs`, or `$SSL_CERT_FILE` / `$SSL_CERT_DIR`),
/// loaded once per process; those rustls cannot use are left out, as one bad entry would
/// otherwise refuse them all.
fn system_roots() -> &'static [Vec<u8>] {
    static ROOTS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            tracing::debug!("system trust store: {e}");
        }
        found
            .certs
            .into_iter()
            .filter(|der| rustls::RootCertStore::empty().add(der.clone()).is_ok())
            .map(|der| der.to_vec())
            .collect()
    })
}

/// The TLS parameters for `s.host`: webpki roots, the system store, and `ca_file`.
pub(crate) fn parameters(s: &SmtpSettings) -> Result<TlsParameters, String> {
    let mut builder = TlsParameters::builder(s.host.clone()).certificate_store(CertificateStore::WebpkiRoots);
    for der in system_roots() {
        if let Ok(cert) = Certificate::from_der(der.clone()) {
            builder = builder.add_root_certificate(cert);
        }
    }
    if let Some(path) = &s.ca_file {
        let pem = std::fs::read(path)
            .map_err(|e| format!("mail.smtp.ca_file: cannot read {}: {e}", path.display()))?;
        let cert = Certificate::from_pem(&pem)
            .map_err(|e| format!("mail.smtp.ca_file: {} is not a PEM certificate: {e}", path.display()))?;
        builder = builder.add_root_certificate(cert);
    }
    builder.build_rustls().map_err(|e| format!("cannot set up TLS for {}: {e}", s.host))
}

/// The rustls error behind a failed connection or STARTTLS upgrade, if TLS is what failed.
/// lettre reports handshake failures as connection errors wrapping an `io::Error` that
/// wraps the rustls error.
pub(crate) fn handshake_error(e: &SmtpError) -> Option<&TlsError> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(err) = next {
        if let Some(tls) = err.downcast_ref::<TlsError>() {
            return Some(tls);
        }
        if let Some(tls) =
            err.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()).and_then(|i| i.downcast_ref())
        {
            return Some(tls);
        }
        next = err.source();
    }
    None
}

/// What went wrong with the server's TLS, and what to change.
pub(crate) fn explain(e: &TlsError, host: &str) -> String {
    match e {
        TlsError::InvalidCertificate(cert) => match cert {
            CertificateError::UnknownIssuer => format!(
                "the certificate of {host} is not signed by an authority this host trusts (a private CA or a \
                 self-signed certificate?); put the CA's certificate (PEM) in a file and set mail.smtp.ca_file to it"
            ),
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => format!(
                "the certificate the server presents is not valid for {host}; set mail.smtp.host to a name the \
                 certificate lists (not an IP address or an alias)"
            ),
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                format!("the certificate of {host} has expired; the server's administrator must renew it")
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => format!(
                "the certificate of {host} is not valid yet; check this host's clock, or ask the server's administrator"
            ),
            CertificateError::Revoked => format!("the certificate of {host} has been revoked"),
            CertificateError::Other(other) => format!(
                "the certificate of {host} cannot be used ({other}); if it is a CA certificate, the server must \
                 present a certificate issued by it instead, and mail.smtp.ca_file may name the CA"
            ),
            other => format!("the certificate of {host} was refused ({other:?})"),
        },
        TlsError::InvalidMessage(_) | TlsError::InappropriateMessage { .. } => format!(
            "{host} did not answer in TLS on this port; use security = \"tls\" only for implicit-TLS ports \
             such as 465, and \"starttls\" for 587 or 25"
        ),
        TlsError::AlertReceived(alert) => format!("{host} ended the TLS handshake with the alert {alert:?}"),
        other => format!("TLS with {host} failed: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_failures_are_explained_with_the_key_to_change() {
        let unknown =
            explain(&TlsError::InvalidCertificate(CertificateError::UnknownIssuer), "mx.example.org");
        assert!(unknown.contains("mail.smtp.ca_file") && unknown.contains("mx.example.org"), "{unknown}");
        let name =
            explain(&TlsError::InvalidCertificate(CertificateError::NotValidForName), "mx.example.org");
        assert!(name.contains("mail.smtp.host"), "{name}");
        assert!(!unknown.contains("OtherError"), "{unknown}");
    }
}
