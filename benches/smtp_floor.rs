//! The SMTP client alone (issue #15): one prebuilt message of a digest's size sent N times
//! over the mail settings of a config, at its `concurrency`, with nothing rendered, ranked
//! or recorded. `bench/load.py` runs it beside paper-digest and smtp-source against the
//! same sink, so the table shows how much of the gap to smtp-source is the client itself.
//!
//! ```text
//! cargo bench --bench smtp_floor -- CONFIG MESSAGES BYTES [ours|lettre]
//! ```
//!
//! `ours` (the default) sends through paper-digest's own pool (`Mailer::send_wire`, what a
//! run uses); `lettre` through lettre's stock pooled `AsyncSmtpTransport`, the control that
//! tells our pool's cost from lettre's.

use futures_util::StreamExt;
use lettre::AsyncTransport;
use paper_digest::config::Config;
use paper_digest::mail::{Mailer, Wire};
use std::error::Error;
use std::time::Instant;

type Result<T> = std::result::Result<T, Box<dyn Error>>;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let [config, messages, bytes, rest @ ..] = args.as_slice() else {
        return Err("usage: smtp_floor CONFIG MESSAGES BYTES [ours|lettre]".into());
    };
    let cfg = Config::load(std::path::Path::new(config))?;
    let (messages, bytes): (usize, usize) = (messages.parse()?, bytes.parse()?);
    let client = rest.first().map_or("ours", String::as_str);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        // A body of 76-character lines, like a quoted-printable digest of the same size.
        let line = format!("{}\n", "x".repeat(75));
        let message = lettre::Message::builder()
            .from(cfg.mail.from.clone())
            .to("reader@bench.example.org".parse()?)
            .subject("The SMTP client alone")
            .body(line.repeat(bytes / line.len()))?;
        let wire = Wire::new(&message);
        let started = Instant::now();
        let sent = match client {
            "ours" => {
                let mailer = Mailer::new(&cfg.mail)?;
                let sent = send_all(messages, mailer.concurrency(), |_| {
                    mailer.send_wire(&wire, "reader@bench.example.org")
                })
                .await;
                mailer.close().await;
                sent
            }
            "lettre" => {
                let smtp = cfg.mail.smtp.as_ref().ok_or("the config has no [mail.smtp]")?;
                let pool =
                    lettre::transport::smtp::PoolConfig::new().max_size(u32::try_from(smtp.concurrency)?);
                let transport =
                    lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::builder_dangerous(&smtp.host)
                        .port(smtp.port)
                        .pool_config(pool)
                        .build();
                send_all(messages, smtp.concurrency, |_| transport.send_raw(&wire.envelope, &wire.bytes))
                    .await
            }
            other => return Err(format!("unknown client {other:?}: ours or lettre").into()),
        };
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "{client}: {sent} of {messages} messages of {} bytes in {seconds:.2} s = {:.0}/s",
            wire.bytes.len(),
            sent as f64 / seconds
        );
        Ok(())
    })
}

/// Runs `send` `n` times, `concurrency` at once; how many succeeded (failures are printed).
async fn send_all<F, T, E>(n: usize, concurrency: usize, send: impl Fn(usize) -> F) -> usize
where
    F: Future<Output = std::result::Result<T, E>>,
    E: std::fmt::Display,
{
    futures_util::stream::iter(0..n)
        .map(send)
        .buffer_unordered(concurrency.max(1))
        .fold(0, |sent, result| async move {
            match result {
                Ok(_) => sent + 1,
                Err(e) => {
                    eprintln!("smtp_floor: {e}");
                    sent
                }
            }
        })
        .await
}
