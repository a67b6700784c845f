//! A small scriptable HTTP/1.1 server on 127.0.0.1:0 for tests: fixture files, status
//! sequences (503, 503, 200), Retry-After, ETag/304, endless bodies, redirects and slow
//! answers. It records every request (path, headers, arrival time) and runs on its own
//! thread and runtime, so it also serves while a test blocks on a child process. It shuts
//! down when dropped.
//!
//! ```ignore
//! use crate::support::http::{HttpServer, Reply, Route};
//! let server = HttpServer::start(vec![
//!     Route::files("/api/daily_papers", "date", "tests/fixtures/hf", "json"),
//!     Route::get("/flaky").reply(Reply::status(503)).reply(Reply::file("tests/fixtures/hf/2024-11-25.json")),
//! ]);
//! let base = server.url(); // http://127.0.0.1:PORT
//! ```

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Request {
    /// Path and query as sent (`/api/query?start=0&...`).
    pub target: String,
    pub path: String,
    /// Header names lowercased.
    pub headers: Vec<(String, String)>,
    /// When the request head had fully arrived.
    pub at: Instant,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
    }

    /// A query parameter, percent-decoded (`+` as space).
    pub fn param(&self, name: &str) -> Option<String> {
        let query = self.target.split_once('?')?.1;
        url::form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
    }
}

#[derive(Debug, Clone)]
enum Body {
    Bytes(Vec<u8>),
    File(PathBuf),
    /// Chunked, without Content-Length, until the client hangs up.
    Endless,
}

/// What the server answers.
#[derive(Debug, Clone)]
pub struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Body,
    delay: Duration,
    etag: Option<String>,
}

impl Reply {
    /// 200 with `body`.
    pub fn ok(body: impl Into<Vec<u8>>) -> Self {
        Reply {
            status: 200,
            headers: Vec::new(),
            body: Body::Bytes(body.into()),
            delay: Duration::ZERO,
            etag: None,
        }
    }

    /// `code` with an empty body.
    pub fn status(code: u16) -> Self {
        Reply { status: code, ..Reply::ok(Vec::new()) }
    }

    /// 200 with a file's content; `path` is relative to the crate root. A missing file
    /// answers 404.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let path =
            if path.is_absolute() { path } else { PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path) };
        Reply { body: Body::File(path), ..Reply::ok(Vec::new()) }
    }

    /// A redirect (`301`, `302`, ...) to `location` (relative, absolute, or `file://...`).
    pub fn redirect(code: u16, location: &str) -> Self {
        Reply::status(code).header("Location", location)
    }

    /// 200 with a chunked body that never ends.
    pub fn endless() -> Self {
        Reply { body: Body::Endless, ..Reply::ok(Vec::new()) }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Waits this long before answering.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Sends `ETag: tag`, and answers 304 to a request whose If-None-Match is `tag`.
    pub fn etag(mut self, tag: &str) -> Self {
        self.etag = Some(tag.to_string());
        self
    }
}

type Handler = Arc<dyn Fn(&Request) -> Reply + Send + Sync>;

/// Which requests a reply script answers: a path and, optionally, query parameters.
#[derive(Clone)]
pub struct Route {
    path: String,
    params: Vec<(String, String)>,
    replies: Vec<Reply>,
    handler: Option<Handler>,
    served: usize,
}

impl Route {
    /// Requests for `path` (any query unless [`Route::param`] narrows it).
    pub fn get(path: &str) -> Self {
        Route { path: path.to_string(), params: Vec::new(), replies: Vec::new(), handler: None, served: 0 }
    }

    /// Only requests whose query has `name=value`.
    pub fn param(mut self, name: &str, value: &str) -> Self {
        self.params.push((name.to_string(), value.to_string()));
        self
    }

    /// The next reply in the script; the last one repeats forever.
    pub fn reply(mut self, reply: Reply) -> Self {
        self.replies.push(reply);
        self
    }

    /// Computes the reply from the request instead of a script.
    pub fn with(mut self, handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Self {
        self.handler = Some(Arc::new(handler));
        self
    }

    /// `path?{param}=NAME` answers the file `{dir}/NAME.{ext}` (404 when there is none),
    /// e.g. `Route::files("/api/daily_papers", "date", "tests/fixtures/hf", "json")`.
    pub fn files(path: &str, param: &str, dir: &str, ext: &str) -> Self {
        let (param, dir, ext) = (param.to_string(), dir.to_string(), ext.to_string());
        Route::get(path).with(move |req| match req.param(&param) {
            Some(name) if !name.is_empty() && !name.contains(['/', '\\']) && !name.starts_with('.') => {
                Reply::file(format!("{dir}/{name}.{ext}"))
            }
            _ => Reply::status(404),
        })
    }

    fn matches(&self, req: &Request) -> bool {
        req.path == self.path && self.params.iter().all(|(k, v)| req.param(k).as_deref() == Some(v.as_str()))
    }

    fn next(&mut self, req: &Request) -> Reply {
        if let Some(handler) = &self.handler {
            return handler(req);
        }
        let reply = self.replies.get(self.served.min(self.replies.len().saturating_sub(1))).cloned();
        self.served += 1;
        reply.unwrap_or_else(|| Reply::status(404))
    }
}

struct State {
    routes: Mutex<Vec<Route>>,
    requests: Mutex<Vec<Request>>,
    aborted: AtomicUsize,
}

/// The running server.
pub struct HttpServer {
    addr: SocketAddr,
    state: Arc<State>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HttpServer {
    /// Binds 127.0.0.1:0 and serves `routes` (first match wins) on a thread of its own.
    pub fn start(routes: Vec<Route>) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).expect("non-blocking listener");
        let addr = listener.local_addr().expect("local address");
        let state = Arc::new(State {
            routes: Mutex::new(routes),
            requests: Mutex::new(Vec::new()),
            aborted: AtomicUsize::new(0),
        });
        let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
        let shared = Arc::clone(&state);
        let thread = std::thread::spawn(move || {
            let runtime =
                tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                loop {
                    tokio::select! {
                        _ = &mut rx => break,
                        accepted = listener.accept() => {
                            if let Ok((stream, _)) = accepted {
                                tokio::spawn(serve(stream, Arc::clone(&shared)));
                            }
                        }
                    }
                }
            });
            // Dropping the runtime cancels connections still in flight (endless bodies).
        });
        HttpServer { addr, state, shutdown: Some(tx), thread: Some(thread) }
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Adds a route after start (e.g. one that needs [`HttpServer::url`]); it is tried
    /// after the earlier ones.
    pub fn route(&self, route: Route) {
        self.state.routes.lock().unwrap_or_else(PoisonError::into_inner).push(route);
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        self.state.requests.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// How many responses the client hung up on before the body was complete.
    pub fn aborted(&self) -> usize {
        self.state.aborted.load(Ordering::SeqCst)
    }

    /// Waits up to `limit` for [`HttpServer::aborted`] to reach `n`, yielding to the
    /// caller's runtime so the client can close its side meanwhile.
    pub async fn aborted_within(&self, n: usize, limit: Duration) -> bool {
        let start = Instant::now();
        while self.aborted() < n && start.elapsed() < limit {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.aborted() >= n
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve(mut stream: TcpStream, state: Arc<State>) {
    let Some(request) = read_head(&mut stream).await else {
        return;
    };
    state.requests.lock().unwrap_or_else(PoisonError::into_inner).push(request.clone());
    let reply = {
        let mut routes = state.routes.lock().unwrap_or_else(PoisonError::into_inner);
        routes
            .iter_mut()
            .find(|r| r.matches(&request))
            .map_or_else(|| Reply::status(404), |r| r.next(&request))
    };
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    if write_reply(&mut stream, &request, reply).await.is_err() {
        state.aborted.fetch_add(1, Ordering::SeqCst);
    }
}

async fn read_head(stream: &mut TcpStream) -> Option<Request> {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > 64 * 1024 {
            return None;
        }
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let at = Instant::now();
    let text = String::from_utf8_lossy(&head);
    let mut lines = text.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let _method = first.next()?;
    let target = first.next()?.to_string();
    let headers = lines
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let path = target.split('?').next().unwrap_or_default().to_string();
    Some(Request { target, path, headers, at })
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Whatever",
    }
}

async fn write_reply(stream: &mut TcpStream, request: &Request, reply: Reply) -> std::io::Result<()> {
    let not_modified = reply.etag.as_deref().is_some_and(|tag| request.header("if-none-match") == Some(tag));
    let status = if not_modified { 304 } else { reply.status };
    let mut head = format!("HTTP/1.1 {status} {}\r\nConnection: close\r\n", reason(status));
    for (k, v) in &reply.headers {
        let _ = write!(head, "{k}: {v}\r\n");
    }
    if let Some(tag) = &reply.etag {
        let _ = write!(head, "ETag: {tag}\r\n");
    }
    if not_modified {
        head.push_str("\r\n");
        return stream.write_all(head.as_bytes()).await;
    }
    match reply.body {
        Body::Endless => {
            head.push_str("Transfer-Encoding: chunked\r\n\r\n");
            stream.write_all(head.as_bytes()).await?;
            let chunk = vec![b'x'; 64 * 1024];
            let mut frame = format!("{:x}\r\n", chunk.len()).into_bytes();
            frame.extend_from_slice(&chunk);
            frame.extend_from_slice(b"\r\n");
            // Bounded so a client that never hangs up cannot keep a test alive forever.
            for _ in 0..16 * 1024 {
                stream.write_all(&frame).await?;
            }
            stream.write_all(b"0\r\n\r\n").await
        }
        Body::Bytes(body) => send(stream, head, &body).await,
        Body::File(path) => match std::fs::read(&path) {
            Ok(body) => send(stream, head, &body).await,
            Err(_) => send(stream, "HTTP/1.1 404 Not Found\r\nConnection: close\r\n".to_string(), b"").await,
        },
    }
}

async fn send(stream: &mut TcpStream, mut head: String, body: &[u8]) -> std::io::Result<()> {
    let _ = write!(head, "Content-Length: {}\r\n\r\n", body.len());
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    stream.shutdown().await
}
