//! Rules for values the config holds that a later stage relies on too: the shape of a
//! `List-Id` (the message builder writes it) and a PEM bundle of certificates (the TLS
//! setup loads it). They live here, below both, so that validation and use agree without
//! the config importing the stages that consume it.

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// Whether `raw` (with or without its angle brackets) is a `List-Id` the message builder
/// writes: a name shaped like a domain (RFC 2919). Validation refuses any other `mail.list_id`,
/// and the builder asks the same question.
pub fn is_list_id(raw: &str) -> bool {
    let id = raw.trim();
    let id = id.strip_prefix('<').and_then(|s| s.strip_suffix('>')).unwrap_or(id);
    !id.is_empty()
        && id.contains('.')
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// How many certificates a PEM file holds; an error when a `CERTIFICATE` block is broken.
pub fn pem_certificates(pem: &[u8]) -> Result<usize, String> {
    CertificateDer::pem_slice_iter(pem)
        .try_fold(0, |n, cert| cert.map(|_| n + 1))
        .map_err(|e| format!("not a valid PEM certificate file: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_id_is_a_domain_shaped_name_with_or_without_brackets() {
        assert!(is_list_id("digest.example.org") && is_list_id("<digest.example.org>"));
        assert!(!is_list_id("digest") && !is_list_id("a b.org") && !is_list_id("<>") && !is_list_id(""));
    }

    #[test]
    fn a_pem_file_counts_its_certificates_and_a_text_file_has_none() {
        assert_eq!(pem_certificates(b"hello\n"), Ok(0));
        let broken = b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n";
        assert!(pem_certificates(broken).is_err());
    }

    proptest::proptest! {
        #[test]
        fn counting_certificates_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = pem_certificates(&bytes);
        }
    }
}
