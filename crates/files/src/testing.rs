//! For tests of code that downloads (feature `testing`): a local HTTP server
//! with Range support, servers that break or stall, archives built from
//! bytes, checksums and a fake environment. Nothing here touches the outside
//! network.

use std::collections::HashMap;
use std::io::Write;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::thread;

use flate2::write::GzEncoder;
use flate2::Compression;
use md5::Digest;

/// One thing the server answers at a path.
#[derive(Clone)]
pub enum Route {
    /// The file's bytes, with extra headers on every answer.
    File {
        /// The file's bytes.
        body: Vec<u8>,
        /// Extra headers (e.g. an `ETag`).
        headers: Vec<(String, String)>,
    },
    /// A 302 to `location`, with extra headers.
    Redirect {
        /// Where to.
        location: String,
        /// Extra headers (e.g. Hugging Face's `X-Linked-Etag`).
        headers: Vec<(String, String)>,
    },
}

/// `(path, Range header)` of every request received, in order.
type RequestLog = Arc<Mutex<Vec<(String, Option<String>)>>>;

/// A server on 127.0.0.1 that records the `Range` header of each request.
pub struct TestServer {
    server: Arc<tiny_http::Server>,
    /// The base URL, `http://127.0.0.1:PORT`.
    pub base: String,
    /// Every request received.
    pub seen: RequestLog,
}

impl TestServer {
    /// Serves `routes`; with `honour_range` false it answers 200 with the
    /// whole file even to Range requests, like servers without Range support.
    pub fn start(routes: HashMap<String, Route>, honour_range: bool) -> Self {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind test server"));
        let port = server.server_addr().to_ip().expect("ip address").port();
        let seen: RequestLog = Arc::new(Mutex::new(Vec::new()));
        let (srv, log) = (Arc::clone(&server), Arc::clone(&seen));
        thread::spawn(move || {
            for request in srv.incoming_requests() {
                let path = request.url().to_string();
                let range = request
                    .headers()
                    .iter()
                    .find(|h| h.field.equiv("Range"))
                    .map(|h| h.value.to_string());
                log.lock().unwrap().push((path.clone(), range.clone()));
                let _ = match routes.get(&path) {
                    None => request.respond(tiny_http::Response::empty(404)),
                    Some(Route::Redirect { location, headers }) => {
                        let mut response = tiny_http::Response::empty(302)
                            .with_header(header("Location", location));
                        for (k, v) in headers {
                            response = response.with_header(header(k, v));
                        }
                        request.respond(response)
                    }
                    Some(Route::File { body, headers }) => {
                        let (status, bytes, content_range) = answer(body, range, honour_range);
                        let mut response = tiny_http::Response::from_data(bytes)
                            .with_status_code(status)
                            .with_header(header("Accept-Ranges", "bytes"));
                        if let Some(value) = content_range {
                            response = response.with_header(header("Content-Range", &value));
                        }
                        for (k, v) in headers {
                            response = response.with_header(header(k, v));
                        }
                        request.respond(response)
                    }
                };
            }
        });
        TestServer {
            server,
            base: format!("http://127.0.0.1:{port}"),
            seen,
        }
    }

    /// Serves one file at `/PATH` with the given extra headers.
    pub fn file(path: &str, body: Vec<u8>, headers: &[(&str, &str)], honour_range: bool) -> Self {
        let headers = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let routes = HashMap::from([(path.to_string(), Route::File { body, headers })]);
        TestServer::start(routes, honour_range)
    }

    /// The full URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The Range headers received so far.
    pub fn ranges(&self) -> Vec<Option<String>> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|(_, r)| r.clone())
            .collect()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.server.unblock();
    }
}

fn header(key: &str, value: &str) -> tiny_http::Header {
    tiny_http::Header::from_bytes(key.as_bytes(), value.as_bytes()).expect("ascii header")
}

/// Status, body and Content-Range for a request with `range` (`bytes=N-`).
fn answer(body: &[u8], range: Option<String>, honour: bool) -> (u16, Vec<u8>, Option<String>) {
    let start = range.filter(|_| honour).and_then(|r| {
        r.strip_prefix("bytes=")?
            .strip_suffix('-')?
            .parse::<usize>()
            .ok()
    });
    let len = body.len();
    match start {
        None => (200, body.to_vec(), None),
        Some(start) if start >= len => (416, Vec::new(), Some(format!("bytes */{len}"))),
        Some(start) => (
            206,
            body[start..].to_vec(),
            Some(format!("bytes {start}-{}/{len}", len - 1)),
        ),
    }
}

/// A URL on 127.0.0.1 where nothing listens: the port was bound, then freed.
pub fn unreachable_url() -> String {
    let port = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    format!("http://127.0.0.1:{port}/stl10_binary.tar.gz")
}

/// Deterministic, poorly compressible bytes, so archives are not trivially small.
pub fn bytes(len: usize, seed: u32) -> Vec<u8> {
    let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state >> 24) as u8
        })
        .collect()
}

/// A tar.gz of `files`; names are written raw into the header, so unsafe
/// names like `../evil` (which tar::Builder refuses) can be built too.
pub fn tar_gz(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
    for (name, data) in files {
        let mut header = tar::Header::new_gnu();
        let raw = name.as_bytes();
        header.as_gnu_mut().expect("gnu header").name[..raw.len()].copy_from_slice(raw);
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        builder.append(&header, data.as_slice()).expect("append");
    }
    let mut gz = builder.into_inner().expect("finish tar");
    gz.flush().expect("flush");
    gz.finish().expect("finish gzip")
}

/// `data` gzip-compressed (not a tar inside): an archive that is not one.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    gz.write_all(data).expect("compress");
    gz.finish().expect("finish gzip")
}

/// Lower-case hex md5 of `data`.
pub fn md5_hex(data: &[u8]) -> String {
    hex(&md5::Md5::digest(data))
}

/// Lower-case hex sha256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&sha2::Sha256::digest(data))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Serves one request with a 200 announcing all of `body` but sends only
/// `body[..cut]` before closing: a connection that breaks mid-download.
/// Returns the URL (any path).
pub fn breaking_server(body: Vec<u8>, cut: usize) -> String {
    serve_part(body, cut, None)
}

/// Like [`breaking_server`], but the connection stays open after
/// `body[..cut]`, sending nothing more for `stall`: a server that hangs mid-body.
pub fn stalling_server(body: Vec<u8>, cut: usize, stall: std::time::Duration) -> String {
    serve_part(body, cut, Some(stall))
}

fn serve_part(body: Vec<u8>, cut: usize, stall: Option<std::time::Duration>) -> String {
    use std::io::Read;
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    thread::spawn(move || {
        let Ok((mut stream, _)) = listener.accept() else {
            return;
        };
        // Read the whole request first, so closing does not reset the connection.
        let mut request = Vec::new();
        let mut byte = [0u8; 1];
        while !request.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
            request.push(byte[0]);
        }
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let _ = stream.write_all(head.as_bytes());
        let _ = stream.write_all(&body[..cut]);
        let _ = stream.flush();
        if let Some(stall) = stall {
            thread::sleep(stall);
        }
    });
    format!("http://127.0.0.1:{port}/file")
}

/// A lookup over `pairs`, standing in for the process environment in the
/// `from_env`-style constructors (tests never touch the real environment, so
/// they cannot race).
pub fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |key| map.get(key).cloned()
}

/// Every file below `root`, relative to it, sorted: what a download left behind.
pub fn tree(root: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("readable directory") {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                found.push(path.strip_prefix(root).expect("below root").to_path_buf());
            }
        }
    }
    found.sort();
    found
}
