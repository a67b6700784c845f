//! A small but real SMTP server on 127.0.0.1 for tests, with fault injection.
//!
//! It runs on its own thread and runtime, so it serves equally a `#[tokio::test]` and a
//! plain `#[test]` that runs the binary as a subprocess. It records every accepted
//! message (envelope and raw bytes, dot-unstuffed) and every command line it read, and
//! stops when dropped.
//!
//! ```ignore
//! use crate::support::smtp::{Faults, SmtpServer};
//!
//! let server = SmtpServer::start(Faults::none().tempfail_data(2).reject_rcpt("bob@example.org"));
//! // ... point [mail.smtp] at 127.0.0.1:{server.port()} with security = "none" ...
//! assert_eq!(server.messages().len(), 1);
//! assert!(!server.saw_command("AUTH"));
//! ```

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// How the server speaks TLS.
#[derive(Debug, Clone)]
pub enum Tls {
    /// TLS from the first byte (port 465 style).
    Implicit(Arc<ServerConfig>),
    /// Plaintext, upgraded by a real `STARTTLS` (port 587 style).
    Starttls(Arc<ServerConfig>),
}

/// What the server does wrong, and how often. Counts apply across all connections.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    tempfail_rcpt: usize,
    tempfail_data: usize,
    reject: Vec<String>,
    drop_after_data: usize,
    close_after_reply: usize,
    delay: Duration,
    delay_first: Option<usize>,
    auth: Option<(String, String)>,
    mechanisms: Option<String>,
    starttls: bool,
    greeting: Option<String>,
    /// `greeting` applies to this many first connections only (all when `None`).
    greeting_first: Option<usize>,
    close_after_ehlo: bool,
    withhold_reply: usize,
    tls: Option<Tls>,
}

impl Faults {
    /// A well-behaved plaintext server: no AUTH, no STARTTLS, accepts everything.
    pub fn none() -> Self {
        Faults::default()
    }

    /// Replies `451` to the first `n` RCPT commands, then accepts.
    pub fn tempfail_rcpt(mut self, n: usize) -> Self {
        self.tempfail_rcpt = n;
        self
    }

    /// Replies `451` after the final dot of the first `n` messages (which are discarded).
    pub fn tempfail_data(mut self, n: usize) -> Self {
        self.tempfail_data = n;
        self
    }

    /// Replies `550` to RCPT for this address (case-insensitive), every time.
    pub fn reject_rcpt(mut self, addr: &str) -> Self {
        self.reject.push(addr.to_ascii_lowercase());
        self
    }

    /// For the first `n` messages, closes the connection right after the final dot,
    /// before replying. The message counts as received (it is in [`SmtpServer::messages`]).
    pub fn drop_after_data(mut self, n: usize) -> Self {
        self.drop_after_data = n;
        self
    }

    /// For the first `n` messages, confirms the message (`250`), then closes the
    /// connection at once, as a server restarting or ending idle sessions does.
    pub fn close_after_reply(mut self, n: usize) -> Self {
        self.close_after_reply = n;
        self
    }

    /// Waits `delay` before confirming each message (the message is recorded at the
    /// final dot, before the wait, as a real MTA queues it).
    pub fn slow(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self.delay_first = None;
        self
    }

    /// Like [`slow`](Self::slow), for the first `n` messages only.
    pub fn slow_first(mut self, n: usize, delay: Duration) -> Self {
        self.delay = delay;
        self.delay_first = Some(n);
        self
    }

    /// Advertises `AUTH PLAIN LOGIN XOAUTH2`, accepts only these credentials (`535` otherwise)
    /// and requires AUTH before MAIL (`530`).
    pub fn auth(mut self, user: &str, password: &str) -> Self {
        self.auth = Some((user.into(), password.into()));
        self
    }

    /// Advertises these AUTH mechanisms instead of `PLAIN LOGIN` (with [`auth`](Self::auth)).
    pub fn auth_mechanisms(mut self, mechanisms: &str) -> Self {
        self.mechanisms = Some(mechanisms.into());
        self
    }

    /// Advertises STARTTLS but answers `454` to it (this server has no TLS). Without
    /// this (or [`tls`](Self::tls)) the server is plaintext-only and does not mention
    /// STARTTLS at all.
    pub fn advertise_starttls(mut self) -> Self {
        self.starttls = true;
        self
    }

    /// Greets with this line instead of `220 ...`, e.g. `554 5.7.1 No SMTP service here`;
    /// then waits for QUIT, answering `503` to anything else.
    pub fn greeting(mut self, line: &str) -> Self {
        self.greeting = Some(line.into());
        self
    }

    /// As [`Faults::greeting`], for the first `n` connections only: a refusal that clears.
    pub fn greeting_first(mut self, n: usize, line: &str) -> Self {
        self.greeting = Some(line.into());
        self.greeting_first = Some(n);
        self
    }

    /// Answers the first EHLO of each connection, then closes it.
    pub fn close_after_ehlo(mut self) -> Self {
        self.close_after_ehlo = true;
        self
    }

    /// For the first `n` messages, records the message at its final dot and then never
    /// replies, holding the connection open until the client goes away (a server that
    /// queued it but whose reply was lost).
    pub fn withhold_final_reply(mut self, n: usize) -> Self {
        self.withhold_reply = n;
        self
    }

    /// Speaks TLS: implicit, or after a real STARTTLS.
    pub fn tls(mut self, tls: Tls) -> Self {
        self.tls = Some(tls);
        self
    }
}

/// A certificate authority made for one test, and server certificates it signs.
pub struct TestCa {
    pem: String,
    der: CertificateDer<'static>,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl TestCa {
    pub fn new() -> Self {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages =
            vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::DigitalSignature];
        params.distinguished_name.push(rcgen::DnType::CommonName, "paper-digest test CA");
        let key = rcgen::KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("CA certificate");
        TestCa { pem: cert.pem(), der: cert.der().clone(), issuer: rcgen::Issuer::new(params, key) }
    }

    /// The CA certificate, PEM: what `ca_file` names.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// A server configuration with a certificate for `names` (DNS names or IP
    /// addresses) issued by this CA.
    pub fn server(&self, names: &[&str]) -> Arc<ServerConfig> {
        let key = rcgen::KeyPair::generate().expect("server key");
        let params =
            rcgen::CertificateParams::new(names.iter().map(|n| (*n).to_string()).collect::<Vec<_>>())
                .expect("server parameters");
        let cert = params.signed_by(&key, &self.issuer).expect("server certificate");
        server_config(cert.der().clone(), &key)
    }
}

impl TestCa {
    /// A server that presents the CA certificate itself, as a misconfigured relay does.
    pub fn as_server(&self) -> Arc<ServerConfig> {
        server_config(self.der.clone(), self.issuer.key())
    }
}

/// A server configuration with a self-signed certificate for `names`.
pub fn self_signed(names: &[&str]) -> Arc<ServerConfig> {
    let key = rcgen::KeyPair::generate().expect("key");
    let params = rcgen::CertificateParams::new(names.iter().map(|n| (*n).to_string()).collect::<Vec<_>>())
        .expect("parameters");
    let cert = params.self_signed(&key).expect("self-signed certificate");
    server_config(cert.der().clone(), &key)
}

fn server_config(cert: CertificateDer<'static>, key: &rcgen::KeyPair) -> Arc<ServerConfig> {
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .expect("server certificate and key");
    Arc::new(config)
}

/// One message the server accepted (or received before dropping the connection).
#[derive(Debug, Clone)]
pub struct Received {
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    /// The message as sent, dot-unstuffed, CRLF line ends, without the final `.`.
    pub data: Vec<u8>,
}

impl Received {
    /// The first value of a top-level header, unfolded (simple scan, no MIME decoding).
    pub fn header(&self, name: &str) -> Option<String> {
        let text = String::from_utf8_lossy(&self.data);
        let head = text.split("\r\n\r\n").next().unwrap_or_default();
        let mut value: Option<String> = None;
        for line in head.split("\r\n") {
            if let Some(v) = value.as_mut() {
                if line.starts_with([' ', '\t']) {
                    v.push_str(line);
                    continue;
                }
                break;
            }
            if let Some((n, v)) = line.split_once(':')
                && n.eq_ignore_ascii_case(name)
            {
                value = Some(v.trim().to_string());
            }
        }
        value
    }

    /// The Message-ID header, with its angle brackets.
    pub fn message_id(&self) -> Option<String> {
        self.header("Message-ID")
    }
}

#[derive(Debug, Default)]
struct Log {
    messages: Vec<Received>,
    commands: Vec<String>,
    /// Commands read before the connection was encrypted.
    in_clear: Vec<String>,
    connections: usize,
    active: usize,
    max_active: usize,
    tempfail_rcpt_left: usize,
    tempfail_data_left: usize,
    drops_left: usize,
    closes_left: usize,
    delays_left: Option<usize>,
    withheld_left: usize,
}

struct Shared {
    faults: Faults,
    log: Mutex<Log>,
}

impl Shared {
    fn log(&self) -> MutexGuard<'_, Log> {
        // A panicking test thread must not hide what the server saw.
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The server. Stops (and closes every connection) when dropped.
pub struct SmtpServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl SmtpServer {
    /// Listens on `127.0.0.1:0` and serves until dropped.
    pub fn start(faults: Faults) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).expect("non-blocking listener");
        let addr = listener.local_addr().expect("local address");
        let log = Log {
            tempfail_rcpt_left: faults.tempfail_rcpt,
            tempfail_data_left: faults.tempfail_data,
            drops_left: faults.drop_after_data,
            closes_left: faults.close_after_reply,
            delays_left: faults.delay_first,
            withheld_left: faults.withhold_reply,
            ..Log::default()
        };
        let shared = Arc::new(Shared { faults, log: Mutex::new(log) });
        let (stop, stopped) = oneshot::channel();
        let state = Arc::clone(&shared);
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                tokio::select! {
                    _ = stopped => {}
                    () = accept_loop(listener, state) => {}
                }
            });
            // Dropping the runtime here cancels every open session.
        });
        SmtpServer { addr, shared, stop: Some(stop), thread: Some(thread) }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Every message received so far, in order.
    pub fn messages(&self) -> Vec<Received> {
        self.shared.log().messages.clone()
    }

    /// Every command line read so far (all connections, in order), without CRLF.
    /// AUTH continuation lines are included as sent.
    pub fn commands(&self) -> Vec<String> {
        self.shared.log().commands.clone()
    }

    /// Whether any command began with this verb (case-insensitive), e.g. `"AUTH"`.
    pub fn saw_command(&self, verb: &str) -> bool {
        self.commands()
            .iter()
            .any(|c| c.split_whitespace().next().is_some_and(|v| v.eq_ignore_ascii_case(verb)))
    }

    /// Whether any command began with this verb while the connection was in clear text.
    pub fn saw_command_in_clear(&self, verb: &str) -> bool {
        self.shared
            .log()
            .in_clear
            .iter()
            .any(|c| c.split_whitespace().next().is_some_and(|v| v.eq_ignore_ascii_case(verb)))
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.log().connections
    }

    /// The most connections that were open at the same time.
    pub fn max_concurrent_connections(&self) -> usize {
        self.shared.log().max_active
    }

    /// A loopback port with nothing listening on it (bound, then released).
    pub fn closed_port() -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.local_addr().expect("local address").port()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn accept_loop(listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let id = {
            let mut log = shared.log();
            log.connections += 1;
            log.active += 1;
            log.max_active = log.max_active.max(log.active);
            log.connections - 1
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let _ = session(stream, &shared, id).await;
            shared.log().active -= 1;
        });
    }
}

/// The envelope of the transaction in progress.
#[derive(Default)]
struct Transaction {
    from: Option<String>,
    rcpts: Vec<String>,
}

/// A byte stream the session can speak over: TCP, or TLS over it.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}
type Stream = Box<dyn Io>;

/// Completes a TLS handshake.
async fn accept_tls(config: &Arc<ServerConfig>, stream: Stream) -> std::io::Result<Stream> {
    let tls = TlsAcceptor::from(Arc::clone(config)).accept(stream).await?;
    Ok(Box::new(tls))
}

fn halves(stream: Stream) -> (BufReader<ReadHalf<Stream>>, WriteHalf<Stream>) {
    let (r, w) = tokio::io::split(stream);
    (BufReader::new(r), w)
}

async fn session(stream: TcpStream, shared: &Shared, id: usize) -> std::io::Result<()> {
    let faults = &shared.faults;
    let mut encrypted = false;
    let stream: Stream = match &faults.tls {
        Some(Tls::Implicit(config)) => {
            encrypted = true;
            accept_tls(config, Box::new(stream)).await?
        }
        _ => Box::new(stream),
    };
    let (mut r, mut w) = halves(stream);
    let greeting = faults.greeting.as_deref().filter(|_| faults.greeting_first.is_none_or(|n| id < n));
    let refused = greeting.is_some();
    reply(&mut w, greeting.unwrap_or("220 localhost ESMTP paper-digest test server")).await?;
    let mut authed = false;
    let mut tx = Transaction::default();
    while let Some(line) = read_line(&mut r).await? {
        let line = String::from_utf8_lossy(&line).into_owned();
        log_command(shared, &line, encrypted);
        let verb = line.split_whitespace().next().unwrap_or_default().to_ascii_uppercase();
        let starttls = match &faults.tls {
            Some(Tls::Starttls(config)) if !encrypted => Some(config),
            _ => None,
        };
        match verb.as_str() {
            "QUIT" => {
                reply(&mut w, "221 2.0.0 Bye").await?;
                return Ok(());
            }
            _ if refused => reply(&mut w, "503 5.5.1 No SMTP service here; QUIT only").await?,
            "EHLO" => {
                reply(&mut w, &ehlo_reply(faults, starttls.is_some())).await?;
                tx = Transaction::default();
                if faults.close_after_ehlo {
                    return Ok(());
                }
            }
            "HELO" => reply(&mut w, "250 localhost").await?,
            "STARTTLS" if starttls.is_some() => {
                reply(&mut w, "220 2.0.0 Ready to start TLS").await?;
                let Some(config) = starttls else { unreachable!() };
                let plain = r.into_inner().unsplit(w);
                (r, w) = halves(accept_tls(config, plain).await?);
                encrypted = true;
                // RFC 3207: the client forgets what it knew and says EHLO again.
                authed = false;
                tx = Transaction::default();
            }
            "STARTTLS" if faults.starttls => reply(&mut w, "454 4.7.0 TLS not available").await?,
            "AUTH" => match &faults.auth {
                None => reply(&mut w, "502 5.5.1 AUTH not offered").await?,
                Some(expected) => {
                    let given = auth_exchange(&line, &mut r, &mut w, shared).await?;
                    if given.as_ref() == Some(expected) {
                        authed = true;
                        reply(&mut w, "235 2.7.0 Authentication successful").await?;
                    } else {
                        reply(&mut w, "535 5.7.8 Authentication credentials invalid").await?;
                    }
                }
            },
            "MAIL" if faults.auth.is_some() && !authed => {
                reply(&mut w, "530 5.7.0 Authentication required").await?;
            }
            "MAIL" => {
                tx = Transaction { from: Some(path_of(&line)), rcpts: Vec::new() };
                reply(&mut w, "250 2.1.0 OK").await?;
            }
            "RCPT" if tx.from.is_none() => reply(&mut w, "503 5.5.1 MAIL first").await?,
            "RCPT" => {
                let answer = rcpt(shared, &mut tx, path_of(&line));
                reply(&mut w, answer).await?;
            }
            "DATA" if tx.rcpts.is_empty() => reply(&mut w, "554 5.5.1 No valid recipients").await?,
            "DATA" => {
                if !receive(&mut r, &mut w, shared, &mut tx).await? {
                    return Ok(());
                }
            }
            "RSET" => {
                tx = Transaction::default();
                reply(&mut w, "250 2.0.0 OK").await?;
            }
            "NOOP" => reply(&mut w, "250 2.0.0 OK").await?,
            "VRFY" => reply(&mut w, "252 2.5.2 Cannot VRFY user").await?,
            _ => reply(&mut w, "500 5.5.2 Command not recognized").await?,
        }
    }
    Ok(())
}

fn log_command(shared: &Shared, line: &str, encrypted: bool) {
    let mut log = shared.log();
    log.commands.push(line.to_string());
    if !encrypted {
        log.in_clear.push(line.to_string());
    }
}

/// The reply to RCPT, after the fault budgets; an accepted recipient joins `tx`.
fn rcpt(shared: &Shared, tx: &mut Transaction, rcpt: String) -> &'static str {
    if take_one(&mut shared.log().tempfail_rcpt_left) {
        "451 4.7.1 Greylisted, try again later"
    } else if shared.faults.reject.contains(&rcpt.to_ascii_lowercase()) {
        "550 5.1.1 No such user here"
    } else {
        tx.rcpts.push(rcpt);
        "250 2.1.5 OK"
    }
}

/// DATA for a transaction with recipients: reads the message and applies the fault
/// budgets. False when the session ends here.
async fn receive<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    r: &mut BufReader<R>,
    w: &mut W,
    shared: &Shared,
    tx: &mut Transaction,
) -> std::io::Result<bool> {
    reply(w, "354 End data with <CR><LF>.<CR><LF>").await?;
    let Some(data) = read_data(r).await? else { return Ok(false) };
    let received = Received {
        mail_from: tx.from.take().unwrap_or_default(),
        rcpt_to: std::mem::take(&mut tx.rcpts),
        data,
    };
    match end_of_data(shared, received) {
        AfterData::Drop => Ok(false),
        AfterData::Withhold => {
            // Hold the connection, silent, until the client gives up on it.
            while read_line(r).await?.is_some() {}
            Ok(false)
        }
        AfterData::Tempfail => reply(w, "451 4.3.0 Try again later").await.map(|()| true),
        AfterData::Accept { delay, close } => {
            if delay && !shared.faults.delay.is_zero() {
                tokio::time::sleep(shared.faults.delay).await;
            }
            reply(w, "250 2.0.0 OK queued").await?;
            Ok(!close)
        }
    }
}

fn ehlo_reply(faults: &Faults, offer_starttls: bool) -> String {
    let mut lines: Vec<String> =
        ["250-localhost", "250-8BITMIME", "250-SMTPUTF8", "250-SIZE 10485760"].map(String::from).into();
    if faults.auth.is_some() {
        lines.push(format!("250-AUTH {}", faults.mechanisms.as_deref().unwrap_or("PLAIN LOGIN XOAUTH2")));
    }
    if faults.starttls || offer_starttls {
        lines.push("250-STARTTLS".into());
    }
    lines.push("250 ENHANCEDSTATUSCODES".into());
    lines.join("\r\n")
}

enum AfterData {
    /// Close the connection without replying (the message was recorded).
    Drop,
    /// Never reply; keep the connection until the client closes it (the message was recorded).
    Withhold,
    /// Reply 451 (the message was discarded).
    Tempfail,
    /// Reply 250, after the configured delay if `delay`; then hang up if `close`.
    Accept { delay: bool, close: bool },
}

/// Applies the fault budgets to a message whose final dot just arrived, recording it
/// unless it is refused.
fn end_of_data(shared: &Shared, received: Received) -> AfterData {
    let mut log = shared.log();
    if take_one(&mut log.drops_left) {
        log.messages.push(received);
        return AfterData::Drop;
    }
    if take_one(&mut log.withheld_left) {
        log.messages.push(received);
        return AfterData::Withhold;
    }
    if take_one(&mut log.tempfail_data_left) {
        return AfterData::Tempfail;
    }
    let delay = log.delays_left.as_mut().is_none_or(take_one);
    let close = take_one(&mut log.closes_left);
    log.messages.push(received);
    AfterData::Accept { delay, close }
}

/// Decrements a fault budget; true when the fault should fire now.
fn take_one(left: &mut usize) -> bool {
    if *left > 0 {
        *left -= 1;
        true
    } else {
        false
    }
}

/// AUTH PLAIN (with or without an initial response) or AUTH LOGIN; the credentials
/// given, or None when they cannot be decoded.
async fn auth_exchange<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    line: &str,
    r: &mut BufReader<R>,
    w: &mut W,
    shared: &Shared,
) -> std::io::Result<Option<(String, String)>> {
    let mut words = line.split_whitespace().skip(1);
    let mechanism = words.next().unwrap_or_default().to_ascii_uppercase();
    let initial = words.next().map(str::to_string);
    let mut ask = async |prompt: &str| -> std::io::Result<String> {
        reply(w, prompt).await?;
        let answer = read_line(r).await?.unwrap_or_default();
        let answer = String::from_utf8_lossy(&answer).into_owned();
        shared.log().commands.push(answer.clone());
        Ok(answer)
    };
    Ok(match mechanism.as_str() {
        "PLAIN" => {
            let b64 = match initial {
                Some(i) => i,
                None => ask("334 ").await?,
            };
            base64_decode(&b64).and_then(|raw| {
                let mut parts = raw.split(|b| *b == 0).skip(1);
                let user = String::from_utf8(parts.next()?.to_vec()).ok()?;
                let pass = String::from_utf8(parts.next()?.to_vec()).ok()?;
                Some((user, pass))
            })
        }
        "LOGIN" => {
            let user = ask("334 VXNlcm5hbWU6").await?;
            let pass = ask("334 UGFzc3dvcmQ6").await?;
            let decode = |s: &str| base64_decode(s).and_then(|b| String::from_utf8(b).ok());
            decode(&user).zip(decode(&pass))
        }
        // RFC-less but documented by Google and Microsoft: base64 of
        // `user=NAME\x01auth=Bearer TOKEN\x01\x01`; the token is compared as the password.
        "XOAUTH2" => {
            let b64 = match initial {
                Some(i) => i,
                None => ask("334 ").await?,
            };
            base64_decode(&b64).and_then(|raw| {
                let text = String::from_utf8(raw).ok()?;
                let mut fields = text.split('\x01');
                let user = fields.next()?.strip_prefix("user=")?.to_string();
                let token = fields.next()?.strip_prefix("auth=Bearer ")?.to_string();
                Some((user, token))
            })
        }
        _ => None,
    })
}

/// `MAIL FROM:<a@b> SIZE=1` → `a@b`.
fn path_of(line: &str) -> String {
    let start = line.find('<').map_or(0, |i| i + 1);
    let end = line[start..].find('>').map_or(line.len(), |i| start + i);
    line[start..end].to_string()
}

async fn reply<W: AsyncWrite + Unpin>(w: &mut W, text: &str) -> std::io::Result<()> {
    w.write_all(format!("{text}\r\n").as_bytes()).await?;
    w.flush().await
}

/// One line without its CRLF (or LF), or None at end of stream.
async fn read_line<R: AsyncRead + Unpin>(r: &mut BufReader<R>) -> std::io::Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    if r.read_until(b'\n', &mut line).await? == 0 {
        return Ok(None);
    }
    while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        line.pop();
    }
    Ok(Some(line))
}

/// The DATA body up to the lone `.`, dot-unstuffed; None if the client went away first.
async fn read_data<R: AsyncRead + Unpin>(r: &mut BufReader<R>) -> std::io::Result<Option<Vec<u8>>> {
    let mut data = Vec::new();
    loop {
        let mut line = Vec::new();
        if r.read_until(b'\n', &mut line).await? == 0 {
            return Ok(None);
        }
        if line == b".\r\n" || line == b".\n" {
            return Ok(Some(data));
        }
        let unstuffed = if line.first() == Some(&b'.') { &line[1..] } else { &line[..] };
        data.extend_from_slice(unstuffed);
    }
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.trim().bytes().take_while(|c| *c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}
