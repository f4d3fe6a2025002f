//! One HTTP download into a `.part` file that survives interruptions, and
//! the checksums that verify it.
//!
//! [`Download`] is a reader over the whole file: first the bytes already in
//! the `.part` file (so they are hashed, and for STL10 extracted, again), then
//! the bytes still coming from the server, which are appended to the `.part`
//! file before being handed on. Every byte handed on goes through the hasher,
//! so the checksum always covers exactly the file's bytes.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use md5::Digest;
use ureq::http::{header, Response};
use ureq::{Agent, Body, BodyReader};

use crate::{say, FilesError};

/// Redirects followed before giving up (Hugging Face uses one or two).
const MAX_REDIRECTS: usize = 10;

/// Long enough for a slow link, short enough that an offline machine fails
/// within seconds instead of the OS's minutes-long TCP timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// How a download talks to its server and to the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transfer {
    /// Appended to connection and HTTP errors: how to use a mirror or local files.
    pub hint: &'static str,
    /// No progress bar, no notes.
    pub quiet: bool,
    /// Longest wait for the next bytes before the download is given up
    /// (and kept for resuming).
    pub read_timeout: Duration,
}

impl Transfer {
    /// The default wait for bytes: a minute.
    pub const READ_TIMEOUT: Duration = Duration::from_secs(60);

    /// Talking, with `hint` on errors and the default read timeout.
    pub fn new(hint: &'static str) -> Transfer {
        Transfer {
            hint,
            quiet: false,
            read_timeout: Transfer::READ_TIMEOUT,
        }
    }
}

/// The checksum computed over the downloaded bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// MD5, as torchvision checks the STL10 archive.
    Md5,
    /// SHA-256, as Hugging Face states for LFS files.
    Sha256,
}

impl Algorithm {
    /// The name used in messages and flags.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "md5",
            Algorithm::Sha256 => "sha256",
        }
    }

    /// Digits in the lower-case hex form of this checksum.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Md5 => 32,
            Algorithm::Sha256 => 64,
        }
    }
}

enum Hasher {
    Md5(md5::Md5),
    Sha256(sha2::Sha256),
}

impl Hasher {
    fn new(algorithm: Algorithm) -> Self {
        match algorithm {
            Algorithm::Md5 => Hasher::Md5(md5::Md5::new()),
            Algorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Md5(h) => h.update(bytes),
            Hasher::Sha256(h) => h.update(bytes),
        }
    }

    fn hex(self) -> String {
        let digest: Vec<u8> = match self {
            Hasher::Md5(h) => h.finalize().to_vec(),
            Hasher::Sha256(h) => h.finalize().to_vec(),
        };
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Checks that `value` is a hex checksum of `algorithm` and lower-cases it.
pub fn parse_checksum(algorithm: Algorithm, what: &str, value: &str) -> Result<String, FilesError> {
    let trimmed = value.trim();
    if trimmed.len() == algorithm.hex_len() && trimmed.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(trimmed.to_ascii_lowercase())
    } else {
        Err(FilesError::BadChecksum {
            what: what.to_string(),
            len: algorithm.hex_len(),
            value: value.to_string(),
        })
    }
}

/// Where the download stands when its stream ends.
pub struct Finished {
    /// Lower-case hex checksum of all the file's bytes.
    pub digest: String,
    /// The SHA-256 the server stated for the file, if it did.
    pub server_sha256: Option<String>,
}

/// A reader over the whole file being downloaded (see the module doc).
pub struct Download {
    url: String,
    part: PathBuf,
    existing: Option<io::Take<File>>,
    body: Option<BodyReader<'static>>,
    writer: Option<File>,
    received: u64,
    hasher: Hasher,
    progress: ProgressBar,
    server_sha256: Option<String>,
    failure: Option<FilesError>,
}

/// What the server's answer means for the `.part` file.
enum Plan {
    /// 200: the body is the whole file; the `.part` file starts again from zero.
    Fresh(Response<Body>),
    /// 206: the body continues the `.part` file, whose length it starts at.
    Resume(Response<Body>, Option<u64>),
    /// 416 with the `.part` file already as long as the file: nothing to receive.
    Complete,
}

impl Download {
    /// Sends the request for `url`, resuming from `part` if it exists.
    ///
    /// `hint` is appended to connection and HTTP errors to say how to use a
    /// mirror or local files instead.
    pub fn start(
        url: &str,
        part: &Path,
        algorithm: Algorithm,
        transfer: &Transfer,
    ) -> Result<Self, FilesError> {
        let (hint, quiet) = (transfer.hint, transfer.quiet);
        let agent = agent(transfer.read_timeout);
        refuse_symlink(part)?;
        let mut offset = fs::metadata(part).map(|m| m.len()).unwrap_or(0);
        let mut server_sha256;
        let plan = loop {
            let (response, sha256) = request(&agent, url, offset, hint)?;
            server_sha256 = sha256;
            let status = response.status().as_u16();
            let range = content_range(&response);
            match status {
                200 => {
                    if offset > 0 {
                        say(
                            quiet,
                            &format!(
                                "{url} ignored the resume request; downloading from the start"
                            ),
                        );
                    }
                    offset = 0;
                    break Plan::Fresh(response);
                }
                206 if offset > 0 && range.map(|r| r.0) == Some(Some(offset)) => {
                    say(
                        quiet,
                        &format!("resuming {url} from byte {offset} ({})", part.display()),
                    );
                    break Plan::Resume(response, range.and_then(|r| r.1));
                }
                416 if offset > 0 && range.and_then(|r| r.1) == Some(offset) => {
                    break Plan::Complete;
                }
                206 | 416 if offset > 0 => {
                    // The partial file does not fit what the server has (it
                    // changed, or the partial is longer): start again cleanly.
                    say(
                        quiet,
                        &format!(
                            "{} does not match {url}; downloading from the start",
                            part.display()
                        ),
                    );
                    fs::remove_file(part).map_err(FilesError::io("remove", part))?;
                    offset = 0;
                }
                status => {
                    return Err(FilesError::HttpStatus {
                        url: url.to_string(),
                        status,
                        hint,
                    })
                }
            }
        };

        let (total, body, writer) = match plan {
            Plan::Fresh(response) => {
                let total = content_length(&response);
                let writer = open_part(part, false)?;
                (
                    total,
                    Some(response.into_body().into_reader()),
                    Some(writer),
                )
            }
            Plan::Resume(response, total) => {
                let writer = open_part(part, true)?;
                (
                    total,
                    Some(response.into_body().into_reader()),
                    Some(writer),
                )
            }
            Plan::Complete => (Some(offset), None, None),
        };
        let existing = if offset > 0 {
            let file = File::open(part).map_err(FilesError::io("open", part))?;
            Some(file.take(offset))
        } else {
            None
        };
        Ok(Download {
            url: url.to_string(),
            part: part.to_path_buf(),
            existing,
            body,
            writer,
            received: offset,
            hasher: Hasher::new(algorithm),
            progress: progress_bar(url, total, quiet),
            server_sha256,
            failure: None,
        })
    }

    /// The error that made a read fail, when it came from the network or the
    /// `.part` file rather than from whoever consumes the bytes.
    pub fn take_failure(&mut self) -> Option<FilesError> {
        self.failure.take()
    }

    /// Reads the rest of the file (checksumming it) and returns the checksums.
    pub fn finish(mut self) -> Result<Finished, FilesError> {
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match self.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(error) => {
                    self.progress.abandon();
                    return Err(self
                        .failure
                        .take()
                        .unwrap_or_else(|| FilesError::Interrupted {
                            url: self.url.clone(),
                            part: self.part.clone(),
                            received: self.received,
                            source: error,
                        }));
                }
            }
        }
        if let Some(writer) = self.writer.take() {
            writer
                .sync_all()
                .map_err(FilesError::io("flush", &self.part))?;
        }
        self.progress.finish_and_clear();
        Ok(Finished {
            digest: self.hasher.hex(),
            server_sha256: self.server_sha256,
        })
    }

    /// Records `error` as the cause of the failed read and returns a stand-in
    /// for the readers wrapped around this one.
    fn fail(&mut self, error: FilesError) -> io::Error {
        let stand_in = io::Error::other(error.to_string());
        self.failure = Some(error);
        stand_in
    }
}

impl Read for Download {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(existing) = &mut self.existing {
            let n = match existing.read(buf) {
                Ok(n) => n,
                Err(source) => {
                    let part = self.part.clone();
                    return Err(self.fail(FilesError::Io {
                        action: "read",
                        path: part,
                        source,
                    }));
                }
            };
            if n > 0 {
                self.hasher.update(&buf[..n]);
                self.progress.inc(n as u64);
                return Ok(n);
            }
            self.existing = None;
        }
        let Some(body) = &mut self.body else {
            return Ok(0);
        };
        let n = match body.read(buf) {
            Ok(n) => n,
            Err(source) => {
                let error = FilesError::Interrupted {
                    url: self.url.clone(),
                    part: self.part.clone(),
                    received: self.received,
                    source,
                };
                return Err(self.fail(error));
            }
        };
        if n == 0 {
            self.body = None;
            return Ok(0);
        }
        if let Some(writer) = &mut self.writer {
            if let Err(source) = writer.write_all(&buf[..n]) {
                let part = self.part.clone();
                return Err(self.fail(FilesError::Io {
                    action: "write",
                    path: part,
                    source,
                }));
            }
        }
        self.received += n as u64;
        self.hasher.update(&buf[..n]);
        self.progress.inc(n as u64);
        Ok(n)
    }
}

/// Refuses a symlink at `path`: a download never writes through one.
pub(crate) fn refuse_symlink(path: &Path) -> Result<(), FilesError> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => Err(FilesError::Symlink {
            path: path.to_path_buf(),
        }),
        _ => Ok(()),
    }
}

/// Opens the partial download for appending, or creates it afresh,
/// without following a symlink planted there.
fn open_part(part: &Path, append: bool) -> Result<File, FilesError> {
    let mut options = OpenOptions::new();
    if append {
        options.append(true);
    } else {
        options.write(true).create(true).truncate(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW);
    }
    options.open(part).map_err(|source| {
        if fs::symlink_metadata(part).is_ok_and(|m| m.file_type().is_symlink()) {
            FilesError::Symlink {
                path: part.to_path_buf(),
            }
        } else {
            FilesError::io(if append { "open" } else { "create" }, part)(source)
        }
    })
}

fn agent(read_timeout: Duration) -> Agent {
    let config = Agent::config_builder()
        // A server that stalls mid-body fails the read instead of hanging;
        // the bytes so far stay in the .part file.
        .timeout_per_read(Some(read_timeout))
        // Statuses are interpreted here: 206 and 416 matter for resuming.
        .http_status_as_error(false)
        // Redirects are followed by hand so the first hop's headers (Hugging
        // Face states the file's sha256 there) can be read.
        .max_redirects(0)
        .timeout_resolve(Some(CONNECT_TIMEOUT))
        .timeout_connect(Some(CONNECT_TIMEOUT))
        .timeout_send_request(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .user_agent(concat!("finetune/", env!("CARGO_PKG_VERSION")))
        .build();
    Agent::new_with_config(config)
}

/// GETs `url` from byte `offset` on, following redirects; also returns the
/// sha256 stated by the servers of the URL's own origin (see [`stated_sha256`]).
fn request(
    agent: &Agent,
    url: &str,
    offset: u64,
    hint: &'static str,
) -> Result<(Response<Body>, Option<String>), FilesError> {
    let first_origin = origin(url);
    let mut current = url.to_string();
    let mut sha256 = None;
    for _ in 0..=MAX_REDIRECTS {
        // Identity encoding: the byte ranges and checksums are those of the file itself.
        let mut builder = agent.get(&current).header("Accept-Encoding", "identity");
        if offset > 0 {
            builder = builder.header("Range", format!("bytes={offset}-"));
        }
        let response = builder.call().map_err(|source| FilesError::Unreachable {
            url: current.clone(),
            source: Box::new(source),
            hint,
        })?;
        // The CDN that Hugging Face redirects to has ETags of its own (not
        // sha256), so only the hub's own answers count, as in huggingface_hub.
        if sha256.is_none() && origin(&current) == first_origin {
            sha256 = stated_sha256(&response);
        }
        if !response.status().is_redirection() {
            return Ok((response, sha256));
        }
        let location = response
            .headers()
            .get(header::LOCATION)
            .and_then(|value| value.to_str().ok())
            .ok_or_else(|| FilesError::BadRedirect {
                url: current.clone(),
                reason: format!(
                    "HTTP {} without a Location header",
                    response.status().as_u16()
                ),
            })?;
        current = resolve(&current, location);
    }
    Err(FilesError::BadRedirect {
        url: url.to_string(),
        reason: format!("more than {MAX_REDIRECTS} redirects"),
    })
}

/// The sha256 a server states for the file: Hugging Face puts the LFS
/// object's sha256 in `X-Linked-Etag` (else `ETag`), quoted; anything that is
/// not 64 hex digits (a git sha1, an nginx ETag) states nothing.
fn stated_sha256(response: &Response<Body>) -> Option<String> {
    let headers = response.headers();
    let value = headers
        .get("x-linked-etag")
        .or_else(|| headers.get(header::ETAG))?
        .to_str()
        .ok()?;
    let tag = value.trim().trim_start_matches("W/").trim_matches('"');
    parse_checksum(Algorithm::Sha256, "ETag", tag).ok()
}

/// `(first byte, total length)` of a `Content-Range: bytes A-B/N` or `bytes */N` header.
fn content_range(response: &Response<Body>) -> Option<(Option<u64>, Option<u64>)> {
    let value = response
        .headers()
        .get(header::CONTENT_RANGE)?
        .to_str()
        .ok()?;
    let spec = value.trim().strip_prefix("bytes")?.trim();
    let (range, total) = spec.split_once('/')?;
    let start = range
        .split_once('-')
        .and_then(|(a, _)| a.trim().parse().ok());
    Some((start, total.trim().parse().ok()))
}

fn content_length(response: &Response<Body>) -> Option<u64> {
    response
        .headers()
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// `scheme://authority` of a URL (the whole URL if it has no path).
fn origin(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find(['/', '?', '#']) {
        Some(i) => &url[..after_scheme + i],
        None => url,
    }
}

/// Resolves a `Location` header against the URL that sent it.
fn resolve(base: &str, location: &str) -> String {
    if location.contains("://") {
        location.to_string()
    } else if let Some(rest) = location.strip_prefix("//") {
        let scheme = base.split("://").next().unwrap_or("https");
        format!("{scheme}://{rest}")
    } else if location.starts_with('/') {
        format!("{}{location}", origin(base))
    } else {
        let path_end = base.find(['?', '#']).unwrap_or(base.len());
        let dir_end = base[..path_end]
            .rfind('/')
            .filter(|&i| i >= origin(base).len())
            .map_or(path_end, |i| i + 1);
        let sep = if dir_end == path_end { "/" } else { "" };
        format!("{}{sep}{location}", &base[..dir_end])
    }
}

fn progress_bar(url: &str, total: Option<u64>, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    // indicatif draws nothing when stderr is not a terminal (logs, CI).
    let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
    let template = if total.is_some() {
        "{msg}\n[{bar:40}] {bytes}/{total_bytes} {bytes_per_sec}, {eta} left"
    } else {
        "{msg}\n{spinner} {bytes} {bytes_per_sec}"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    let name = url.rsplit('/').next().unwrap_or(url);
    bar.set_message(format!("downloading {name}"));
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_and_resolve_follow_url_rules() {
        assert_eq!(origin("https://hf.co/a/b?x"), "https://hf.co");
        assert_eq!(origin("http://h:1"), "http://h:1");
        let base = "https://hf.co/timm/m/resolve/main/model.safetensors";
        assert_eq!(resolve(base, "https://cdn/x"), "https://cdn/x");
        assert_eq!(resolve(base, "//cdn/x"), "https://cdn/x");
        assert_eq!(resolve(base, "/api/x"), "https://hf.co/api/x");
        assert_eq!(
            resolve(base, "other"),
            "https://hf.co/timm/m/resolve/main/other"
        );
        assert_eq!(resolve("http://h:1", "x"), "http://h:1/x");
    }

    #[test]
    fn checksums_are_checked_and_lowercased() {
        let md5 = "91F7769DF0F17E558F3565BFFB0C7DFB";
        assert_eq!(
            parse_checksum(Algorithm::Md5, "--md5", md5).unwrap(),
            md5.to_ascii_lowercase()
        );
        let err = parse_checksum(Algorithm::Md5, "--md5", "abc").unwrap_err();
        assert!(err.to_string().contains("--md5 must be 32"), "{err}");
        assert!(parse_checksum(Algorithm::Sha256, "x", md5).is_err());
    }

    #[test]
    fn hashers_match_known_digests() {
        let mut md5 = Hasher::new(Algorithm::Md5);
        md5.update(b"abc");
        assert_eq!(md5.hex(), "900150983cd24fb0d6963f7d28e17f72");
        let mut sha = Hasher::new(Algorithm::Sha256);
        sha.update(b"abc");
        assert_eq!(
            sha.hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
