//! `paper-digest serve` for tests: a `[web]` table on a free loopback port, the server
//! as a child process (stopped when dropped), and small HTTP helpers over reqwest.

use super::site::{NOW, Site};
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::Duration;

/// The secret the test sites sign with (never a real one).
pub const SECRET: &str = "test-only-secret-0123456789abcdef0123456789";

/// A free loopback port (the server binds it a moment later).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The `[web]` table for a site served on `port`, and its secret file written next to it.
pub fn enable_web(site: &Site, port: u16, extra: &str) {
    let secret = site.path("web.secret");
    std::fs::write(&secret, SECRET).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    site.edit_config(|text| {
        format!(
            "{text}\n[web]\nbase_url = \"http://127.0.0.1:{port}\"\nlisten = \"127.0.0.1:{port}\"\nsecret_file = \"web.secret\"\n{extra}\n"
        )
    });
}

/// A running `paper-digest serve`.
pub struct Served {
    child: Child,
    pub base: String,
}

impl Served {
    pub fn start(site: &Site, port: u16) -> Served {
        Self::start_at(site, port, NOW)
    }

    pub fn start_at(site: &Site, port: u16, now: &str) -> Served {
        let mut child = site
            .cmd(&["serve"], now)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the binary starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_default();
        let served = Served { child, base: format!("http://127.0.0.1:{port}") };
        assert!(line.starts_with("listening on"), "serve did not start: {line:?}");
        served
    }
}

impl Served {
    /// Asks the server to stop (SIGTERM) and returns how it exited.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success());
        let start = std::time::Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(start.elapsed() < Duration::from_secs(15), "serve did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP answer: status and body.
pub struct Answer {
    pub status: u16,
    pub body: String,
    pub content_type: String,
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

async fn answer(r: reqwest::Response) -> Answer {
    let status = r.status().as_u16();
    let content_type =
        r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    Answer { status, body: r.text().await.unwrap(), content_type }
}

pub fn get(url: &str) -> Answer {
    runtime().block_on(async { answer(client().get(url).send().await.unwrap()).await })
}

/// POSTs a urlencoded `body`; `origin` is sent as the `Origin` header when given.
pub fn post(url: &str, body: &str, origin: Option<&str>) -> Answer {
    runtime().block_on(async {
        let mut req = client()
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_string());
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        answer(req.send().await.unwrap()).await
    })
}

/// POSTs one field as `multipart/form-data`, as RFC 8058 recommends for one-click.
pub fn post_multipart(url: &str, name: &str, value: &str) -> Answer {
    let body = format!(
        "--pd-boundary\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n--pd-boundary--\r\n"
    );
    runtime().block_on(async {
        let req =
            client().post(url).header("content-type", "multipart/form-data; boundary=pd-boundary").body(body);
        answer(req.send().await.unwrap()).await
    })
}

/// The first URL in `text` that starts with `prefix`, up to a quote, space or bracket.
pub fn url_after(text: &str, prefix: &str) -> Option<String> {
    let at = text.find(prefix)?;
    Some(
        text[at..].chars().take_while(|c| !matches!(c, '"' | '\'' | ' ' | '<' | '>' | '\r' | '\n')).collect(),
    )
}
