//! Signed, stateless link tokens: HMAC-SHA256 over (purpose, subscriber, payload) with the
//! `[web]` secret. Nothing is stored; a token proves that this server made the link for
//! this reader and this purpose, and an altered or re-purposed one fails verification.
//!
//! A token is `base64url(subscriber \n payload) . base64url(tag)`, where the tag is the
//! first 16 bytes (128 bits) of the HMAC: short enough for a URL, far beyond guessing.

use crate::config::Secret;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Bytes of the HMAC kept in a token.
const TAG_BYTES: usize = 16;
/// Longest token accepted: a subscriber address (254) and a payload, encoded, with room.
const MAX_TOKEN_CHARS: usize = 1024;

/// What a link is for. Part of the signed input, so a token made for one purpose is
/// refused for any other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// `List-Unsubscribe` and the footer's unsubscribe link.
    Unsubscribe,
    /// The manage page.
    Manage,
    /// One sent edition in the browser; the payload is the edition date.
    Archive,
    /// The reader's Atom feed.
    Feed,
    /// "More like this"; the payload is the paper id.
    Like,
    /// "Fewer like this"; the payload is the paper id.
    Dislike,
    /// Confirming a subscription request; the payload is the request's nonce.
    Confirm,
    /// The subscribe form, against cross-site posts; the payload is when it was served.
    Form,
}

impl Purpose {
    fn label(self) -> &'static str {
        match self {
            Purpose::Unsubscribe => "unsubscribe",
            Purpose::Manage => "manage",
            Purpose::Archive => "archive",
            Purpose::Feed => "feed",
            Purpose::Like => "like",
            Purpose::Dislike => "dislike",
            Purpose::Confirm => "confirm",
            Purpose::Form => "form",
        }
    }
}

/// What a valid token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// The subscriber's key (lowercased address).
    pub subscriber: String,
    pub payload: String,
}

/// Signs with the current secret and verifies with it or any previous one.
#[derive(Clone)]
pub struct Signer {
    current: Secret,
    previous: Vec<Secret>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").field("previous", &self.previous.len()).finish_non_exhaustive()
    }
}

impl Signer {
    pub fn new(current: Secret, previous: Vec<Secret>) -> Self {
        Signer { current, previous }
    }

    /// A token for `subscriber` and `payload`, good for `purpose` only.
    pub fn sign(&self, purpose: Purpose, subscriber: &str, payload: &str) -> String {
        let body = format!("{subscriber}\n{payload}");
        let tag = tag(&self.current, purpose, subscriber, payload);
        format!("{}.{}", URL_SAFE_NO_PAD.encode(body), URL_SAFE_NO_PAD.encode(&tag[..TAG_BYTES]))
    }

    /// The claims of a token made for `purpose` by this server; `None` for anything else
    /// (malformed, altered, another purpose, an unknown secret). Compared in constant time.
    pub fn verify(&self, purpose: Purpose, token: &str) -> Option<Claims> {
        if token.len() > MAX_TOKEN_CHARS {
            return None;
        }
        let (body, tag_text) = token.split_once('.')?;
        let body = String::from_utf8(URL_SAFE_NO_PAD.decode(body).ok()?).ok()?;
        let given = URL_SAFE_NO_PAD.decode(tag_text).ok()?;
        if given.len() != TAG_BYTES {
            return None;
        }
        let (subscriber, payload) = body.split_once('\n')?;
        let valid = std::iter::once(&self.current)
            .chain(&self.previous)
            .any(|secret| mac(secret, purpose, subscriber, payload).verify_truncated_left(&given).is_ok());
        valid.then(|| Claims { subscriber: subscriber.to_string(), payload: payload.to_string() })
    }
}

/// The MAC over the purpose, the subscriber and the payload, each length-prefixed so no
/// two different triples feed it the same bytes.
fn mac(secret: &Secret, purpose: Purpose, subscriber: &str, payload: &str) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret.expose().as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    for part in [purpose.label(), subscriber, payload] {
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part.as_bytes());
    }
    mac
}

fn tag(secret: &Secret, purpose: Purpose, subscriber: &str, payload: &str) -> Vec<u8> {
    mac(secret, purpose, subscriber, payload).finalize().into_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn signer(secret: &str) -> Signer {
        Signer::new(Secret::new(secret), Vec::new())
    }

    const KEY: &str = "0123456789abcdef0123456789abcdef-current";
    const OLD: &str = "fedcba9876543210fedcba9876543210-previous";

    #[test]
    fn a_token_verifies_to_what_was_signed() {
        let s = signer(KEY);
        let t = s.sign(Purpose::Like, "alice@example.org", "2411.16500");
        let claims = s.verify(Purpose::Like, &t).unwrap();
        assert_eq!(claims.subscriber, "alice@example.org");
        assert_eq!(claims.payload, "2411.16500");
        assert!(t.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')), "{t}");
    }

    #[test]
    fn a_token_for_one_purpose_is_refused_for_every_other() {
        let s = signer(KEY);
        let t = s.sign(Purpose::Manage, "alice@example.org", "");
        for other in [Purpose::Unsubscribe, Purpose::Archive, Purpose::Feed, Purpose::Like, Purpose::Confirm]
        {
            assert_eq!(s.verify(other, &t), None, "{other:?}");
        }
    }

    #[test]
    fn a_token_with_another_subscriber_or_payload_is_refused() {
        let s = signer(KEY);
        let t = s.sign(Purpose::Unsubscribe, "alice@example.org", "");
        let (_, tag) = t.split_once('.').unwrap();
        let forged = format!("{}.{tag}", URL_SAFE_NO_PAD.encode("bob@example.org\n"));
        assert_eq!(s.verify(Purpose::Unsubscribe, &forged), None);
        let moved = format!("{}.{tag}", URL_SAFE_NO_PAD.encode("alice@example.org\nx"));
        assert_eq!(s.verify(Purpose::Unsubscribe, &moved), None);
    }

    #[test]
    fn a_token_from_another_secret_is_refused() {
        let t = signer(OLD).sign(Purpose::Unsubscribe, "alice@example.org", "");
        assert_eq!(signer(KEY).verify(Purpose::Unsubscribe, &t), None);
    }

    #[test]
    fn after_a_rotation_old_links_work_while_the_old_secret_is_listed_and_new_ones_use_the_new_secret() {
        let old = signer(OLD).sign(Purpose::Feed, "alice@example.org", "");
        let rotated = Signer::new(Secret::new(KEY), vec![Secret::new(OLD)]);
        assert!(rotated.verify(Purpose::Feed, &old).is_some());
        let new = rotated.sign(Purpose::Feed, "alice@example.org", "");
        assert!(signer(KEY).verify(Purpose::Feed, &new).is_some());
        assert_eq!(signer(OLD).verify(Purpose::Feed, &new), None);
        // Once the old secret is dropped, its links stop working.
        assert_eq!(signer(KEY).verify(Purpose::Feed, &old), None);
    }

    #[test]
    fn the_debug_output_never_shows_the_secret() {
        let s = Signer::new(Secret::new(KEY), vec![Secret::new(OLD)]);
        let shown = format!("{s:?}");
        assert!(!shown.contains("0123456789") && !shown.contains("fedcba"), "{shown}");
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_input_never_panics_and_never_verifies(token in ".{0,300}") {
            prop_assert_eq!(signer(KEY).verify(Purpose::Unsubscribe, &token), None);
        }

        #[test]
        fn any_single_changed_character_is_refused(sub in "[a-z]{1,12}@[a-z]{1,8}\\.org", at in 0usize..200, c in "[A-Za-z0-9_.-]") {
            let s = signer(KEY);
            let t = s.sign(Purpose::Like, &sub, "2411.16500");
            let i = at % t.len();
            let mut bytes = t.clone().into_bytes();
            prop_assume!(bytes[i] != c.as_bytes()[0]);
            bytes[i] = c.as_bytes()[0];
            let altered = String::from_utf8(bytes).unwrap();
            // Base64 padding bits may decode the same; only then may it still verify, to the same claims.
            if let Some(claims) = s.verify(Purpose::Like, &altered) {
                prop_assert_eq!(claims, s.verify(Purpose::Like, &t).unwrap());
            }
        }
    }
}
