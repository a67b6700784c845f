//! mail.rs against a real SMTP server on loopback: what arrives, and how each server
//! failure comes back to the caller.

use crate::support::digest;
use crate::support::smtp::{Faults, Received, SmtpServer};

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use lettre::Message;
use lettre::message::Mailbox;
use mail_parser::{MessageParser, MimeHeaders};
use paper_digest::Error;
use paper_digest::config::{MailSettings, Secret, Security, SmtpSettings, TransportKind};
use paper_digest::mail::{Envelope, Mailer, build, new_message_id};
use paper_digest::render::Rendered;
use std::time::{Duration, Instant};

fn smtp(port: u16) -> SmtpSettings {
    SmtpSettings {
        host: "127.0.0.1".into(),
        port,
        security: Security::None,
        username: None,
        password: None,
        concurrency: 2,
        rate_limit: None,
        max_per_hour: None,
        max_attempts: 3,
        timeout: Duration::from_secs(5),
        data_timeout: Duration::from_secs(5),
        backoff_base: Duration::from_millis(5),
        helo_name: Some("client.test".into()),
        ca_file: None,
        password_command: None,
        auth: paper_digest::config::SmtpAuth::Password,
    }
}

fn settings(smtp: SmtpSettings) -> MailSettings {
    MailSettings {
        from: "Paper Digest <digest@example.org>".parse().unwrap(),
        reply_to: Some("Editors <editors@example.org>".parse().unwrap()),
        transport: TransportKind::Smtp,
        list_id: "paper-digest.example.org".into(),
        unsubscribe_mailto: Some("digest@example.org?subject=unsubscribe".into()),
        unsubscribe_url: Some("https://example.org/unsubscribe/abc123".into()),
        file_dir: "outbox".into(),
        sendmail_command: "/usr/sbin/sendmail".into(),
        smtp: Some(smtp),
    }
}

fn rendered() -> Rendered {
    Rendered {
        subject: "Your digest: 2 new papers".into(),
        html: "<html><body><h1>Papers</h1><p>3D Gaussian Splatting</p></body></html>".into(),
        text: "Papers\n\n3D Gaussian Splatting\n".into(),
    }
}

fn date() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2024-11-27T06:30:00Z").unwrap().with_timezone(&Utc)
}

/// A message for `to` with a fresh Message-ID, as the run loop makes it.
fn message(s: &MailSettings, to: &str) -> (Message, String) {
    let to: Mailbox = to.parse().unwrap();
    let id = new_message_id(s);
    let msg = build(s, &Envelope { to: &to, message_id: &id, date: date() }, &rendered()).unwrap();
    (msg, id)
}

fn parse(r: &Received) -> mail_parser::Message<'static> {
    MessageParser::default().parse(&r.data).expect("a parseable message").into_owned()
}

fn content_type(part: &mail_parser::MessagePart<'_>) -> String {
    let ct = part.content_type().expect("a Content-Type");
    format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or_default())
}

#[tokio::test]
async fn delivered_message_is_multipart_alternative_with_text_before_html_and_list_headers() {
    let server = SmtpServer::start(Faults::none());
    let s = settings(smtp(server.port()));
    let mailer = Mailer::new(&s).unwrap();
    let (msg, id) = message(&s, "Alice Example <alice@example.org>");

    mailer.send(&msg, "alice@example.org").await.unwrap();

    let received = server.messages();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].mail_from, "digest@example.org");
    assert_eq!(received[0].rcpt_to, ["alice@example.org"]);
    let m = parse(&received[0]);
    assert_eq!(content_type(m.root_part()), "multipart/alternative");
    let parts: Vec<String> =
        m.root_part().sub_parts().unwrap().iter().map(|i| content_type(&m.parts[*i as usize])).collect();
    assert_eq!(parts, ["text/plain", "text/html"]);
    assert_eq!(m.body_text(0).unwrap().replace("\r\n", "\n"), rendered().text);
    assert_eq!(m.body_html(0).unwrap(), rendered().html);
    assert_eq!(m.subject(), Some("Your digest: 2 new papers"));
    assert_eq!(m.date().unwrap().to_timestamp(), date().timestamp());
    assert_eq!(received[0].message_id(), Some(id));
    assert_eq!(m.from().unwrap().first().unwrap().address(), Some("digest@example.org"));
    assert_eq!(m.to().unwrap().first().unwrap().address(), Some("alice@example.org"));
    assert_eq!(m.reply_to().unwrap().first().unwrap().address(), Some("editors@example.org"));
    assert_eq!(received[0].header("List-Id").as_deref(), Some("<paper-digest.example.org>"));
    assert_eq!(
        received[0].header("List-Unsubscribe").as_deref(),
        Some("<mailto:digest@example.org?subject=unsubscribe>, <https://example.org/unsubscribe/abc123>")
    );
    assert_eq!(received[0].header("List-Unsubscribe-Post").as_deref(), Some("List-Unsubscribe=One-Click"));
}

#[tokio::test]
async fn non_ascii_text_and_lines_starting_with_a_dot_arrive_intact() {
    let server = SmtpServer::start(Faults::none());
    let s = settings(smtp(server.port()));
    let r = Rendered {
        subject: "Gaußsche Splats — 3 neue Papiere ✨".into(),
        text: "Über Café-Szenen\n.hidden line\n..two dots\n.\nend\n".into(),
        html: "<p>Über Café — 東京</p>".into(),
    };
    let to: Mailbox = "alice@example.org".parse().unwrap();
    let id = new_message_id(&s);
    let msg = build(&s, &Envelope { to: &to, message_id: &id, date: date() }, &r).unwrap();

    Mailer::new(&s).unwrap().send(&msg, "alice@example.org").await.unwrap();

    let m = parse(&server.messages()[0]);
    assert_eq!(m.subject(), Some(r.subject.as_str()));
    assert_eq!(m.body_text(0).unwrap().replace("\r\n", "\n"), r.text);
    assert_eq!(m.body_html(0).unwrap(), r.html);
}

/// A digest rendered with its cards encoded once (`render_encoded`) and built without
/// re-encoding (`build_encoded`) crosses a real SMTP session, dot-stuffing included, and
/// decodes to the text the renderer made.
#[tokio::test]
async fn a_digest_encoded_once_per_card_arrives_as_rendered() {
    let server = SmtpServer::start(Faults::none());
    let s = settings(smtp(server.port()));
    let cfg = digest::config();
    let papers = digest::papers();
    let renderer = paper_digest::render::Renderer::new(None).unwrap();
    let mut sent = Vec::new();
    for sub in &cfg.subscribers {
        let ranked = digest::rank(&cfg, sub, &papers, 10);
        let ctx = paper_digest::render::DigestContext {
            subscriber: sub,
            edition: digest::edition(),
            papers: &ranked,
            unsubscribe_url: None,
            unsubscribe_mailto: None,
        };
        let plain = renderer.render(&ctx).unwrap();
        let encoded = renderer.render_encoded(&ctx, None).unwrap();
        assert!(encoded.html.quoted_printable.is_some(), "the HTML part is assembled encoded");
        let id = new_message_id(&s);
        let env = Envelope { to: &sub.email, message_id: &id, date: date() };
        let msg = paper_digest::mail::build_encoded(&s, &env, encoded, None).unwrap();
        Mailer::new(&s).unwrap().send(&msg, sub.email.email.as_ref()).await.unwrap();
        sent.push(plain);
    }
    let received = server.messages();
    assert_eq!(received.len(), sent.len());
    for (got, plain) in received.iter().zip(&sent) {
        let m = parse(got);
        assert_eq!(m.subject(), Some(plain.subject.as_str()));
        assert_eq!(m.body_text(0).unwrap().replace("\r\n", "\n"), plain.text);
        assert_eq!(m.body_html(0).unwrap().replace("\r\n", "\n"), plain.html);
    }
}

#[tokio::test]
async fn hostile_display_name_and_unusual_address_cannot_inject_headers() {
    let server = SmtpServer::start(Faults::none());
    let s = settings(smtp(server.port()));
    let to = Mailbox::new(
        Some("Eve \"the\" O'Brien\r\nBcc: mallory@example.org".into()),
        "o'brien+digest@example.org".parse().unwrap(),
    );
    let id = new_message_id(&s);
    let msg = build(&s, &Envelope { to: &to, message_id: &id, date: date() }, &rendered()).unwrap();

    Mailer::new(&s).unwrap().send(&msg, "o'brien+digest@example.org").await.unwrap();

    let received = &server.messages()[0];
    assert_eq!(received.rcpt_to, ["o'brien+digest@example.org"]);
    let m = parse(received);
    assert!(received.header("Bcc").is_none());
    let to = m.to().unwrap().first().unwrap();
    assert_eq!(to.address(), Some("o'brien+digest@example.org"));
    assert!(to.name().unwrap().contains("Eve \"the\" O'Brien"), "{:?}", to.name());
}

#[tokio::test]
async fn throttled_message_is_retried_until_accepted_and_delivered_once() {
    let server = SmtpServer::start(Faults::none().tempfail_data(2));
    let s = settings(smtp(server.port()));
    let (msg, id) = message(&s, "alice@example.org");

    Mailer::new(&s).unwrap().send(&msg, "alice@example.org").await.unwrap();

    let received = server.messages();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].message_id(), Some(id));
    assert_eq!(server.commands().iter().filter(|c| c.eq_ignore_ascii_case("DATA")).count(), 3);
}

#[tokio::test]
async fn greylisted_recipient_is_retried_until_accepted() {
    let server = SmtpServer::start(Faults::none().tempfail_rcpt(2));
    let s = settings(smtp(server.port()));
    let (msg, _) = message(&s, "alice@example.org");

    Mailer::new(&s).unwrap().send(&msg, "alice@example.org").await.unwrap();

    assert_eq!(server.messages().len(), 1);
}

#[tokio::test]
async fn throttling_that_outlasts_max_attempts_is_a_transient_error_for_that_recipient() {
    let server = SmtpServer::start(Faults::none().tempfail_data(10));
    let s = settings(smtp(server.port()));
    let (msg, _) = message(&s, "alice@example.org");

    let err = Mailer::new(&s).unwrap().send(&msg, "alice@example.org").await.unwrap_err();

    match err {
        Error::Mail { recipient, transient: true, message } => {
            assert_eq!(recipient, "alice@example.org");
            assert!(message.contains("451"), "{message}");
        }
        other => panic!("expected a transient Mail error, got {other:?}"),
    }
    assert!(server.messages().is_empty());
    assert_eq!(server.commands().iter().filter(|c| c.eq_ignore_ascii_case("DATA")).count(), 3);
}

#[tokio::test]
async fn rejected_recipient_fails_permanently_while_the_others_are_delivered() {
    let server = SmtpServer::start(Faults::none().reject_rcpt("bob@example.org"));
    let s = settings(smtp(server.port()));
    let mailer = Mailer::new(&s).unwrap();
    let recipients = ["alice@example.org", "bob@example.org", "carol@example.org"];
    let messages: Vec<_> = recipients.iter().map(|r| message(&s, r).0).collect();

    let results: Vec<_> =
        futures_util::future::join_all(messages.iter().zip(recipients).map(|(m, r)| mailer.send(m, r))).await;

    assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
    match &results[1] {
        Err(Error::Mail { recipient, transient: false, message }) => {
            assert_eq!(recipient, "bob@example.org");
            assert!(message.contains("550"), "{message}");
        }
        other => panic!("expected a permanent Mail error, got {other:?}"),
    }
    let mut delivered: Vec<String> = server.messages().iter().flat_map(|m| m.rcpt_to.clone()).collect();
    delivered.sort();
    assert_eq!(delivered, ["alice@example.org", "carol@example.org"]);
    // A 5xx is final: no second try.
    assert_eq!(server.commands().iter().filter(|c| c.contains("<bob@example.org>")).count(), 1);
}

#[tokio::test]
async fn connection_dropped_after_the_final_dot_is_transient_and_a_resend_keeps_the_message_id() {
    let server = SmtpServer::start(Faults::none().drop_after_data(1));
    let s = settings(SmtpSettings { max_attempts: 1, ..smtp(server.port()) });
    let mailer = Mailer::new(&s).unwrap();
    let (msg, id) = message(&s, "alice@example.org");

    let err = mailer.send(&msg, "alice@example.org").await.unwrap_err();
    assert!(matches!(err, Error::Mail { transient: true, .. }), "{err:?}");
    assert_eq!(server.messages().len(), 1, "the server got the bytes before dropping");

    mailer.send(&msg, "alice@example.org").await.unwrap();
    let ids: Vec<_> = server.messages().iter().map(Received::message_id).collect();
    assert_eq!(ids, [Some(id.clone()), Some(id)]);
}

#[tokio::test]
async fn a_connection_dropped_after_the_final_dot_is_not_retried_within_the_send() {
    // The server may have queued it: a second copy waits for a later run.
    let server = SmtpServer::start(Faults::none().drop_after_data(1));
    let s = settings(smtp(server.port()));
    let (msg, id) = message(&s, "alice@example.org");

    let err = Mailer::new(&s).unwrap().send(&msg, "alice@example.org").await.unwrap_err();

    assert!(matches!(err, Error::Mail { transient: true, .. }), "{err:?}");
    assert!(err.to_string().contains("may have been accepted"), "{err}");
    let ids: Vec<_> = server.messages().iter().map(Received::message_id).collect();
    assert_eq!(ids, [Some(id)]);
}

#[tokio::test]
async fn no_reply_to_the_final_dot_waits_data_timeout_not_timeout_and_is_not_retried() {
    let server = SmtpServer::start(Faults::none().withhold_final_reply(1));
    let s = settings(SmtpSettings {
        timeout: Duration::from_millis(200),
        data_timeout: Duration::from_millis(900),
        ..smtp(server.port())
    });
    let (msg, _) = message(&s, "alice@example.org");

    let err = Mailer::new(&s).unwrap().send(&msg, "alice@example.org").await.unwrap_err();

    assert!(matches!(err, Error::Mail { transient: true, .. }), "{err:?}");
    assert!(err.to_string().contains("data_timeout_secs"), "{err}");
    assert_eq!(server.messages().len(), 1, "one copy: no retry after an unanswered final dot");
    assert_eq!(server.commands().iter().filter(|c| c.eq_ignore_ascii_case("DATA")).count(), 1);
}

#[tokio::test]
async fn back_to_back_messages_reuse_one_connection_without_a_noop_between_them() {
    let server = SmtpServer::start(Faults::none());
    let s = settings(SmtpSettings { concurrency: 1, ..smtp(server.port()) });
    let mailer = Mailer::new(&s).unwrap();
    for to in ["alice@example.org", "bob@example.org", "carol@example.org"] {
        mailer.send(&message(&s, to).0, to).await.unwrap();
    }
    assert_eq!(server.messages().len(), 3);
    assert_eq!(server.connections(), 1);
    assert!(!server.saw_command("NOOP"), "a connection parked moments ago is used without a probe");
}

#[tokio::test]
async fn a_parked_connection_the_server_closed_costs_one_attempt_and_the_retry_delivers() {
    // The server hangs up right after confirming the first message; the client parked that
    // connection and, trusting it, sends the second message on it.
    let server = SmtpServer::start(Faults::none().close_after_reply(1));
    let s = settings(SmtpSettings { concurrency: 1, max_attempts: 2, ..smtp(server.port()) });
    let mailer = Mailer::new(&s).unwrap();
    let (first, first_id) = message(&s, "alice@example.org");
    let (second, second_id) = message(&s, "bob@example.org");

    mailer.send(&first, "alice@example.org").await.unwrap();
    mailer.send(&second, "bob@example.org").await.unwrap();

    let ids: Vec<_> = server.messages().iter().map(Received::message_id).collect();
    assert_eq!(ids, [Some(first_id), Some(second_id)], "both delivered, once each");
    assert_eq!(server.connections(), 2, "the retry went out on a new connection");
    assert!(!server.saw_command("NOOP"));
}

#[tokio::test]
async fn after_one_dead_parked_connection_the_others_are_probed_before_use() {
    // Two connections are parked, then both die (as in a server restart). The first send
    // finds out on one of them; the other must be probed, not trusted, or the message's
    // second and last attempt would be spent on it too.
    let server = SmtpServer::start(Faults::none().close_after_reply(2).slow(Duration::from_millis(50)));
    let s = settings(SmtpSettings { concurrency: 2, max_attempts: 2, ..smtp(server.port()) });
    let mailer = Mailer::new(&s).unwrap();
    let (a, b) = (message(&s, "alice@example.org").0, message(&s, "bob@example.org").0);
    let (ra, rb) = tokio::join!(mailer.send(&a, "alice@example.org"), mailer.send(&b, "bob@example.org"));
    ra.unwrap();
    rb.unwrap();
    assert_eq!(server.connections(), 2, "two connections parked");

    let (third, third_id) = message(&s, "carol@example.org");
    mailer.send(&third, "carol@example.org").await.unwrap();

    assert_eq!(server.messages().last().and_then(Received::message_id), Some(third_id));
    assert_eq!(server.messages().len(), 3);
    assert_eq!(server.connections(), 3, "delivered on a new connection, at the second attempt");
}

#[tokio::test]
async fn unreachable_server_is_a_transient_transport_error_and_later_sends_fail_fast() {
    let port = SmtpServer::closed_port();
    let s = settings(smtp(port));
    let mailer = Mailer::new(&s).unwrap();
    let (msg, _) = message(&s, "alice@example.org");

    let err = mailer.send(&msg, "alice@example.org").await.unwrap_err();
    match &err {
        Error::Transport { transient: true, message } => {
            assert!(message.contains(&port.to_string()), "{message}");
        }
        other => panic!("expected a transient Transport error, got {other:?}"),
    }
    assert!(err.is_transient());

    let started = Instant::now();
    let again = mailer.send(&msg, "bob@example.org").await.unwrap_err();
    assert!(matches!(again, Error::Transport { transient: true, .. }), "{again:?}");
    assert!(started.elapsed() < Duration::from_millis(100), "no new attempts once the server is known down");
}

#[tokio::test]
async fn starttls_required_against_a_plaintext_only_server_fails_before_auth() {
    let server = SmtpServer::start(Faults::none().auth("digest", "s3cret"));
    let s = settings(SmtpSettings {
        security: Security::Starttls,
        username: Some("digest".into()),
        password: Some(Secret::new("s3cret")),
        ..smtp(server.port())
    });
    let (msg, _) = message(&s, "alice@example.org");

    let err = Mailer::new(&s).unwrap().send(&msg, "alice@example.org").await.unwrap_err();

    match err {
        Error::Transport { transient: false, message } => {
            assert!(message.contains("STARTTLS"), "{message}");
            assert!(!message.contains("s3cret"));
        }
        other => panic!("expected a permanent Transport error, got {other:?}"),
    }
    assert!(server.saw_command("EHLO"));
    assert!(!server.saw_command("AUTH"), "{:?}", server.commands());
    assert!(!server.saw_command("MAIL"));
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn failed_starttls_upgrade_never_falls_back_to_plaintext() {
    let server = SmtpServer::start(Faults::none().auth("digest", "s3cret").advertise_starttls());
    let s = settings(SmtpSettings {
        security: Security::Starttls,
        username: Some("digest".into()),
        password: Some(Secret::new("s3cret")),
        ..smtp(server.port())
    });
    let (msg, _) = message(&s, "alice@example.org");

    let err = Mailer::new(&s).unwrap().send(&msg, "alice@example.org").await.unwrap_err();

    assert!(matches!(err, Error::Transport { .. }), "{err:?}");
    assert!(server.saw_command("STARTTLS"));
    assert!(!server.saw_command("AUTH"));
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn configured_credentials_authenticate_before_mail() {
    let server = SmtpServer::start(Faults::none().auth("digest", "s3cret"));
    let s = settings(SmtpSettings {
        username: Some("digest".into()),
        password: Some(Secret::new("s3cret")),
        ..smtp(server.port())
    });
    let (msg, _) = message(&s, "alice@example.org");

    Mailer::new(&s).unwrap().send(&msg, "alice@example.org").await.unwrap();

    assert_eq!(server.messages().len(), 1);
    assert!(server.saw_command("AUTH"));
}

#[tokio::test]
async fn refused_password_is_a_permanent_transport_error_tried_only_once() {
    let server = SmtpServer::start(Faults::none().auth("digest", "s3cret"));
    let s = settings(SmtpSettings {
        username: Some("digest".into()),
        password: Some(Secret::new("wrong")),
        ..smtp(server.port())
    });
    let mailer = Mailer::new(&s).unwrap();
    let (msg, _) = message(&s, "alice@example.org");

    for to in ["alice@example.org", "bob@example.org"] {
        let err = mailer.send(&msg, to).await.unwrap_err();
        match err {
            Error::Transport { transient: false, message } => {
                assert!(message.contains("AUTH"), "{message}");
                assert!(!message.contains("wrong"), "{message}");
            }
            other => panic!("expected a permanent Transport error, got {other:?}"),
        }
    }
    // Retrying a refused password can lock the account.
    assert_eq!(server.commands().iter().filter(|c| c.starts_with("AUTH")).count(), 1);
    assert!(!format!("{mailer:?}").contains("wrong"));
}

#[tokio::test]
async fn parallel_sends_share_at_most_concurrency_pooled_connections() {
    let server = SmtpServer::start(Faults::none().slow(Duration::from_millis(20)));
    let s = settings(SmtpSettings { concurrency: 3, ..smtp(server.port()) });
    let mailer = Mailer::new(&s).unwrap();
    let messages: Vec<_> = (0..12).map(|i| message(&s, &format!("reader{i}@example.org"))).collect();

    let results: Vec<_> = futures_util::stream::iter(&messages)
        .map(|(m, _)| mailer.send(m, "reader@example.org"))
        .buffer_unordered(mailer.concurrency())
        .collect()
        .await;

    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let mut got: Vec<_> = server.messages().iter().filter_map(Received::message_id).collect();
    let mut sent: Vec<_> = messages.iter().map(|(_, id)| id.clone()).collect();
    got.sort();
    sent.sort();
    assert_eq!(got, sent);
    assert!(server.connections() <= 3, "{} connections", server.connections());
    assert!(server.max_concurrent_connections() <= 3);
}

#[tokio::test]
async fn rate_limit_spaces_out_messages_across_concurrent_senders() {
    let server = SmtpServer::start(Faults::none());
    let s = settings(SmtpSettings { concurrency: 4, rate_limit: Some(20.0), ..smtp(server.port()) });
    let mailer = Mailer::new(&s).unwrap();
    let messages: Vec<_> = (0..6).map(|i| message(&s, &format!("reader{i}@example.org")).0).collect();

    let started = Instant::now();
    let results: Vec<_> = futures_util::stream::iter(&messages)
        .map(|m| mailer.send(m, "reader@example.org"))
        .buffer_unordered(4)
        .collect()
        .await;

    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(server.messages().len(), 6);
    // Six messages at 20/s need at least five gaps of 50 ms, however many senders.
    assert!(started.elapsed() >= Duration::from_millis(240), "{:?}", started.elapsed());
}

#[tokio::test]
async fn slow_server_times_out_as_transient_and_its_connection_is_never_reused() {
    let server = SmtpServer::start(Faults::none().slow_first(1, Duration::from_secs(3)));
    let s = settings(SmtpSettings {
        max_attempts: 1,
        concurrency: 1,
        timeout: Duration::from_millis(300),
        data_timeout: Duration::from_millis(300),
        ..smtp(server.port())
    });
    let mailer = Mailer::new(&s).unwrap();
    let (first, _) = message(&s, "alice@example.org");
    let (second, second_id) = message(&s, "bob@example.org");

    let started = Instant::now();
    let err = mailer.send(&first, "alice@example.org").await.unwrap_err();
    assert!(matches!(err, Error::Mail { transient: true, .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(2));

    mailer.send(&second, "bob@example.org").await.unwrap();
    assert_eq!(server.messages().last().and_then(Received::message_id), Some(second_id));
    assert_eq!(server.connections(), 2, "the timed-out connection was dropped, not pooled");
}

#[tokio::test]
async fn check_greets_and_authenticates_without_sending_anything() {
    let server = SmtpServer::start(Faults::none().auth("digest", "s3cret"));
    let s = settings(SmtpSettings {
        username: Some("digest".into()),
        password: Some(Secret::new("s3cret")),
        ..smtp(server.port())
    });

    let verdict = Mailer::new(&s).unwrap().check().await.unwrap();

    assert!(verdict.contains(&format!("127.0.0.1:{}", server.port())), "{verdict}");
    assert!(verdict.contains("AUTH ok as digest"), "{verdict}");
    assert!(server.saw_command("EHLO") && server.saw_command("AUTH") && server.saw_command("QUIT"));
    assert!(!server.saw_command("MAIL"));
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn check_reports_an_unreachable_server_as_transient() {
    let s = settings(smtp(SmtpServer::closed_port()));
    let err = Mailer::new(&s).unwrap().check().await.unwrap_err();
    assert!(matches!(err, Error::Transport { transient: true, .. }), "{err:?}");
}

#[tokio::test]
async fn file_transport_writes_one_parseable_eml_per_message_creating_the_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("outbox").join("nested");
    let s = MailSettings {
        transport: TransportKind::File,
        file_dir: dir.clone(),
        smtp: None,
        ..settings(smtp(25))
    };
    let mailer = Mailer::new(&s).unwrap();
    let (a, id_a) = message(&s, "alice@example.org");
    let (b, id_b) = message(&s, "bob@example.org");

    mailer.send(&a, "alice@example.org").await.unwrap();
    mailer.send(&b, "bob@example.org").await.unwrap();

    let mut ids = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(path.extension().and_then(|e| e.to_str()), Some("eml"));
        let bytes = std::fs::read(&path).unwrap();
        let m = MessageParser::default().parse(&bytes).unwrap();
        assert_eq!(m.body_html(0).unwrap(), rendered().html);
        ids.push(format!("<{}>", m.message_id().unwrap()));
    }
    ids.sort();
    let mut want = vec![id_a, id_b];
    want.sort();
    assert_eq!(ids, want);
}
