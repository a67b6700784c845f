//! Building the MIME message for one subscriber: multipart/alternative (text, then HTML)
//! with the identity and list headers mailbox providers look for (RFC 2369, RFC 8058).

use crate::config::MailSettings;
use crate::error::{Error, Result};
use crate::render::{Encoded, Part, Rendered};
use chrono::{DateTime, Utc};
use lettre::Message;
use lettre::message::header::ContentTransferEncoding;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Body, Mailbox, MultiPart};
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// Who a message goes to and the identity it is sent under.
#[derive(Debug, Clone)]
pub struct Envelope<'a> {
    pub to: &'a Mailbox,
    /// With angle brackets: `<...@domain>`.
    pub message_id: &'a str,
    pub date: DateTime<Utc>,
}

/// A fresh Message-ID in the From domain, e.g. `<pd.5f3c...e1@example.org>`.
///
/// The ledger stores it before the first attempt, so a resend after a crash carries the
/// same id and receivers can fold the duplicate. It must be unguessable (ids show up in
/// replies and bounces), hence 128 bits from a keyed hash rather than a plain PRNG.
pub fn new_message_id(settings: &MailSettings) -> String {
    format!("<pd.{:032x}@{}>", unguessable_u128(), settings.from.email.domain())
}

/// 128 bits that cannot be predicted from earlier outputs.
///
/// std's `RandomState` keys SipHash with 128 bits from the operating system's RNG;
/// SipHash is a PRF, so hashing a counter under that secret key gives unpredictable
/// output without adding a dependency on a CSPRNG crate.
fn unguessable_u128() -> u128 {
    static KEY: OnceLock<RandomState> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let key = KEY.get_or_init(RandomState::new);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let hi = key.hash_one((0u8, n, nanos));
    let lo = key.hash_one((1u8, n, nanos));
    (u128::from(hi) << 64) | u128::from(lo)
}

const LIST_ID: HeaderName = HeaderName::new_from_ascii_str("List-Id");
const LIST_UNSUBSCRIBE: HeaderName = HeaderName::new_from_ascii_str("List-Unsubscribe");
const LIST_UNSUBSCRIBE_POST: HeaderName = HeaderName::new_from_ascii_str("List-Unsubscribe-Post");

/// The message for one subscriber. Errors name the recipient.
pub fn build(settings: &MailSettings, env: &Envelope<'_>, rendered: &Rendered) -> Result<Message> {
    build_for(settings, env, rendered, settings.unsubscribe_url.as_deref())
}

/// [`build`] with this recipient's own one-click unsubscribe URL (a signed `[web]` link)
/// in `List-Unsubscribe` instead of the configured one.
pub fn build_for(
    settings: &MailSettings,
    env: &Envelope<'_>,
    rendered: &Rendered,
    unsubscribe_url: Option<&str>,
) -> Result<Message> {
    let plain = |text: &String| Part { text: text.clone(), quoted_printable: None };
    let parts = (plain(&rendered.text), plain(&rendered.html));
    build_parts(settings, env, &rendered.subject, parts, unsubscribe_url)
}

/// [`build_for`] from a digest rendered with [`crate::render::Renderer::render_encoded`]:
/// parts that come encoded already go in as they are, the others are encoded here; no part
/// is copied on the way into the message.
pub fn build_encoded(
    settings: &MailSettings,
    env: &Envelope<'_>,
    encoded: Encoded,
    unsubscribe_url: Option<&str>,
) -> Result<Message> {
    build_parts(settings, env, &encoded.subject, (encoded.text, encoded.html), unsubscribe_url)
}

/// The text and HTML parts as lettre bodies: a quoted-printable encoding moved in as it
/// is, otherwise the text for lettre to encode (it picks 7bit, quoted-printable or base64).
fn body(part: Part) -> Body {
    match part.quoted_printable {
        Some(encoded) => Body::dangerous_pre_encoded(encoded, ContentTransferEncoding::QuotedPrintable),
        None => Body::new(part.text),
    }
}

fn build_parts(
    settings: &MailSettings,
    env: &Envelope<'_>,
    subject: &str,
    (text, html): (Part, Part),
    unsubscribe_url: Option<&str>,
) -> Result<Message> {
    let fail =
        |message: String| Error::Mail { recipient: env.to.email.to_string(), transient: false, message };

    check_message_id(env.message_id).map_err(&fail)?;
    let list_id = list_id(&settings.list_id).map_err(&fail)?;
    let unsubscribe = list_unsubscribe(settings, unsubscribe_url).map_err(&fail)?;

    let mut builder = Message::builder()
        .from(header_safe(&settings.from))
        .to(header_safe(env.to))
        .subject(one_line(subject))
        .date(env.date.into())
        .message_id(Some(env.message_id.to_string()))
        .raw_header(HeaderValue::new(LIST_ID, list_id));
    if let Some(reply_to) = &settings.reply_to {
        builder = builder.reply_to(header_safe(reply_to));
    }
    if let Some(unsubscribe) = unsubscribe {
        builder = builder.raw_header(HeaderValue::new(LIST_UNSUBSCRIBE, unsubscribe));
        // RFC 8058: one-click only makes sense with an https URI the provider can POST to.
        if unsubscribe_url.is_some() {
            builder = builder
                .raw_header(HeaderValue::new(LIST_UNSUBSCRIBE_POST, "List-Unsubscribe=One-Click".into()));
        }
    }
    builder
        .multipart(MultiPart::alternative_plain_html(body(text), body(html)))
        .map_err(|e| fail(format!("cannot build the message: {e}")))
}

/// The mailbox with its display name on one line. lettre panics on a name with a line
/// break (and a name from the config or a subscriber list may contain one); quotes and
/// non-ASCII are fine, lettre quotes or RFC 2047-encodes them.
fn header_safe(mailbox: &Mailbox) -> Mailbox {
    let name = mailbox.name.as_deref().map(one_line).filter(|n| !n.is_empty());
    Mailbox::new(name, mailbox.email.clone())
}

/// Control characters (CR, LF, tab, ...) become spaces; runs of spaces collapse.
fn one_line(s: &str) -> String {
    s.split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// `<local@domain>` with nothing that could end the header or the angle brackets early.
fn check_message_id(id: &str) -> Result<(), String> {
    let inner = id.strip_prefix('<').and_then(|s| s.strip_suffix('>'));
    let ok = inner.is_some_and(|s| {
        s.split_once('@').is_some_and(|(l, d)| !l.is_empty() && !d.is_empty())
            && s.bytes().all(|b| b.is_ascii_graphic() && !matches!(b, b'<' | b'>'))
    });
    if ok { Ok(()) } else { Err(format!("Message-ID `{id}` is not of the form <local@domain>")) }
}

/// `List-Id: <list.example.org>`; a configured value may come with or without brackets.
fn list_id(raw: &str) -> Result<String, String> {
    let id = raw.trim();
    let id = id.strip_prefix('<').and_then(|s| s.strip_suffix('>')).unwrap_or(id);
    if crate::config::is_list_id(id) {
        Ok(format!("<{id}>"))
    } else {
        Err(format!(
            "mail.list_id `{raw}` must look like a domain name (letters, digits, `.`, `-`, `_`), e.g. digest.example.org"
        ))
    }
}

/// `<mailto:...>, <https://...>` (RFC 2369), or nothing when neither is configured.
fn list_unsubscribe(settings: &MailSettings, url: Option<&str>) -> Result<Option<String>, String> {
    let mut uris = Vec::new();
    if let Some(mailto) = settings.unsubscribe_mailto.as_deref() {
        let mailto = mailto.trim();
        let has_scheme = mailto.get(..7).is_some_and(|s| s.eq_ignore_ascii_case("mailto:"));
        let uri = if has_scheme { mailto.to_string() } else { format!("mailto:{mailto}") };
        uris.push(bracketed_uri("mail.unsubscribe_mailto", &uri)?);
    }
    if let Some(url) = url {
        uris.push(bracketed_uri("the unsubscribe URL", url.trim())?);
    }
    Ok((!uris.is_empty()).then(|| uris.join(", ")))
}

/// A URI inside `<...>` must be printable ASCII without spaces or brackets, or it would
/// break the header (or smuggle a second one in).
fn bracketed_uri(key: &str, uri: &str) -> Result<String, String> {
    if !uri.is_empty() && uri.bytes().all(|b| b.is_ascii_graphic() && !matches!(b, b'<' | b'>' | b',')) {
        Ok(format!("<{uri}>"))
    } else {
        Err(format!(
            "{key} `{uri}` must be a URI of printable ASCII without spaces, `<`, `>` or `,` (percent-encode the rest)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TransportKind;
    use std::collections::HashSet;

    fn settings() -> MailSettings {
        MailSettings {
            from: "Paper Digest <digest@example.org>".parse().unwrap(),
            reply_to: None,
            transport: TransportKind::File,
            list_id: "paper-digest.example.org".into(),
            unsubscribe_mailto: Some("digest@example.org?subject=unsubscribe".into()),
            unsubscribe_url: Some("https://example.org/u/abc".into()),
            file_dir: "outbox".into(),
            sendmail_command: "/usr/sbin/sendmail".into(),
            smtp: None,
        }
    }

    fn rendered() -> Rendered {
        Rendered { subject: "3 new papers".into(), html: "<p>hi</p>".into(), text: "hi".into() }
    }

    fn parse(msg: &Message) -> mail_parser::Message<'static> {
        mail_parser::MessageParser::default().parse(&msg.formatted()).unwrap().into_owned()
    }

    #[test]
    fn message_ids_are_in_the_from_domain_and_never_repeat() {
        let s = settings();
        let ids: HashSet<String> = (0..1000).map(|_| new_message_id(&s)).collect();
        assert_eq!(ids.len(), 1000);
        for id in &ids {
            assert!(id.ends_with("@example.org>"), "{id}");
            assert!(check_message_id(id).is_ok(), "{id}");
        }
    }

    #[test]
    fn message_carries_the_given_message_id_date_and_list_headers() {
        let s = settings();
        let to: Mailbox = "Alice <alice@example.org>".parse().unwrap();
        let id = new_message_id(&s);
        let date = DateTime::parse_from_rfc3339("2024-11-27T06:30:00Z").unwrap().with_timezone(&Utc);
        let msg = build(&s, &Envelope { to: &to, message_id: &id, date }, &rendered()).unwrap();
        let parsed = parse(&msg);
        assert_eq!(parsed.message_id().map(|m| format!("<{m}>")), Some(id));
        assert_eq!(parsed.date().unwrap().to_timestamp(), date.timestamp());
        assert_eq!(parsed.header_raw("List-Id").unwrap().trim(), "<paper-digest.example.org>");
        // lettre folds long headers at the space; unfold as a reader would.
        assert_eq!(
            parsed.header_raw("List-Unsubscribe").unwrap().replace("\r\n", "").trim(),
            "<mailto:digest@example.org?subject=unsubscribe>, <https://example.org/u/abc>"
        );
        assert_eq!(parsed.header_raw("List-Unsubscribe-Post").unwrap().trim(), "List-Unsubscribe=One-Click");
        assert!(parsed.header_raw("Reply-To").is_none());
    }

    #[test]
    fn one_click_header_is_left_out_without_an_unsubscribe_url() {
        let s = MailSettings { unsubscribe_url: None, ..settings() };
        let to: Mailbox = "alice@example.org".parse().unwrap();
        let env = Envelope { to: &to, message_id: "<a@example.org>", date: Utc::now() };
        let parsed = parse(&build(&s, &env, &rendered()).unwrap());
        assert_eq!(
            parsed.header_raw("List-Unsubscribe").unwrap().trim(),
            "<mailto:digest@example.org?subject=unsubscribe>"
        );
        assert!(parsed.header_raw("List-Unsubscribe-Post").is_none());
    }

    #[test]
    fn a_malformed_message_id_is_refused_naming_the_recipient() {
        let to: Mailbox = "alice@example.org".parse().unwrap();
        for bad in ["no-brackets@example.org", "<no-at-sign>", "<a@b>\r\nBcc: x@y", "<a b@c>"] {
            let env = Envelope { to: &to, message_id: bad, date: Utc::now() };
            let err = build(&settings(), &env, &rendered()).unwrap_err();
            assert!(err.to_string().contains("alice@example.org"), "{err}");
            assert!(!err.is_transient());
        }
    }

    #[test]
    fn display_names_and_subjects_with_line_breaks_are_put_on_one_line() {
        let to = Mailbox::new(
            Some("Eve \"the\"\r\nBcc: mallory@example.org".into()),
            "eve@example.org".parse().unwrap(),
        );
        let env = Envelope { to: &to, message_id: "<a@example.org>", date: Utc::now() };
        let r = Rendered { subject: "two\r\nlines\tand  tabs".into(), ..rendered() };
        let parsed = parse(&build(&settings(), &env, &r).unwrap());
        assert!(parsed.header_raw("Bcc").is_none());
        assert_eq!(parsed.subject(), Some("two lines and tabs"));
        let to = parsed.to().unwrap().first().unwrap();
        assert_eq!(to.name(), Some("Eve \"the\" Bcc: mallory@example.org"));
        assert_eq!(to.address(), Some("eve@example.org"));
    }

    #[test]
    fn a_recipients_own_unsubscribe_url_replaces_the_configured_one() {
        let to: Mailbox = "alice@example.org".parse().unwrap();
        let env = Envelope { to: &to, message_id: "<a@example.org>", date: Utc::now() };
        let msg = build_for(&settings(), &env, &rendered(), Some("https://example.org/u/TOKEN.TAG")).unwrap();
        let parsed = parse(&msg);
        assert_eq!(
            parsed.header_raw("List-Unsubscribe").unwrap().replace("\r\n", "").trim(),
            "<mailto:digest@example.org?subject=unsubscribe>, <https://example.org/u/TOKEN.TAG>"
        );
        assert_eq!(parsed.header_raw("List-Unsubscribe-Post").unwrap().trim(), "List-Unsubscribe=One-Click");
    }

    #[test]
    fn header_breaking_list_settings_are_refused() {
        assert!(list_id("<paper-digest.example.org>").is_ok());
        assert!(list_id("two words.example.org").is_err());
        assert!(list_id("x.org>\r\nBcc: eve@example.org").is_err());
        assert!(bracketed_uri("k", "https://example.org/u?a=1&b=2").is_ok());
        assert!(bracketed_uri("k", "https://example.org/>, <https://evil").is_err());
        assert!(bracketed_uri("k", "https://example.org/\r\nBcc: x").is_err());
    }
}
