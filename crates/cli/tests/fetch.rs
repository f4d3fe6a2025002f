//! The fetch module against a local HTTP server: download, checksum,
//! resume, extraction limits, Hugging Face conventions, offline failure.

mod support;

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use finetune_cli::fetch::{self, FetchError, Stl10Fetch, WeightsFetch, STL10_FILES};
use support::{
    breaking_server, md5_hex, sha256_hex, tar_gz, tiny_stl10_files, unreachable_url, Route,
    TestServer,
};

fn stl10_request(dir: &Path, url: String, md5: String) -> Stl10Fetch {
    Stl10Fetch {
        dir: dir.to_path_buf(),
        url,
        md5,
        unlabeled: false,
        quiet: true,
    }
}

fn weights_request(dir: &Path, url: String) -> WeightsFetch {
    WeightsFetch {
        dir: dir.to_path_buf(),
        url,
        sha256: None,
        hf_hub_cache: None,
        quiet: true,
    }
}

/// Every file below `root`, relative to it, sorted.
fn tree(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                found.push(path.strip_prefix(root).unwrap().to_path_buf());
            }
        }
    }
    found.sort();
    found
}

fn assert_extracted(dir: &Path, names: &[&str]) {
    let files: HashMap<String, Vec<u8>> = tiny_stl10_files().into_iter().collect();
    for name in names {
        let got = fs::read(dir.join("stl10_binary").join(name)).unwrap();
        assert_eq!(got, files[&format!("stl10_binary/{name}")], "{name}");
    }
}

#[test]
fn stl10_downloads_checks_md5_and_extracts_only_needed_files() {
    let archive = tar_gz(&tiny_stl10_files());
    let server = TestServer::file("/stl10.tar.gz", archive.clone(), &[], true);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("stl10");
    let request = stl10_request(&dir, server.url("/stl10.tar.gz"), md5_hex(&archive));

    let root = fetch::stl10(&request).unwrap();

    assert_eq!(root, dir);
    assert_extracted(&dir, &STL10_FILES);
    let mut expected: Vec<PathBuf> = STL10_FILES
        .iter()
        .map(|name| Path::new("stl10_binary").join(name))
        .collect();
    expected.push(Path::new("stl10_binary").join(".finetune-fetch"));
    expected.sort();
    // No unlabeled_X.bin, no README, no archive, no temporary files.
    assert_eq!(tree(&dir), expected);

    // A second run finds the files and does not touch the network.
    let requests = server.ranges().len();
    fetch::stl10(&request).unwrap();
    assert_eq!(server.ranges().len(), requests);
}

#[test]
fn stl10_extracts_unlabeled_only_on_request() {
    let archive = tar_gz(&tiny_stl10_files());
    let server = TestServer::file("/s.tgz", archive.clone(), &[], true);
    let tmp = tempfile::tempdir().unwrap();
    let mut request = stl10_request(tmp.path(), server.url("/s.tgz"), md5_hex(&archive));
    fetch::stl10(&request).unwrap();
    assert!(!tmp.path().join("stl10_binary/unlabeled_X.bin").exists());

    // Asking for it later is not "already there": it is fetched again.
    request.unlabeled = true;
    fetch::stl10(&request).unwrap();
    assert_extracted(tmp.path(), &["unlabeled_X.bin", "train_X.bin"]);
    assert_eq!(server.ranges().len(), 2);
}

#[test]
fn stl10_wrong_md5_fails_clearly_and_leaves_nothing() {
    let archive = tar_gz(&tiny_stl10_files());
    let server = TestServer::file("/s.tgz", archive.clone(), &[], true);
    let tmp = tempfile::tempdir().unwrap();
    let url = server.url("/s.tgz");
    let wrong = "0123456789abcdef0123456789abcdef".to_string();
    let error = fetch::stl10(&stl10_request(tmp.path(), url.clone(), wrong.clone())).unwrap_err();

    assert!(
        matches!(error, FetchError::ChecksumMismatch { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains(&url), "{message}");
    assert!(message.contains(&wrong), "{message}");
    assert!(message.contains(&md5_hex(&archive)), "{message}");
    // Neither the archive (nor its .part) nor any extracted file survives.
    assert_eq!(tree(tmp.path()), Vec::<PathBuf>::new());
}

#[test]
fn stl10_resumes_a_partial_download_with_a_range_request() {
    let archive = tar_gz(&tiny_stl10_files());
    let half = archive.len() / 2;
    let server = TestServer::file("/s.tgz", archive.clone(), &[], true);
    let tmp = tempfile::tempdir().unwrap();
    fs::write(
        tmp.path().join("stl10_binary.tar.gz.part"),
        &archive[..half],
    )
    .unwrap();

    fetch::stl10(&stl10_request(
        tmp.path(),
        server.url("/s.tgz"),
        md5_hex(&archive),
    ))
    .unwrap();

    assert_eq!(server.ranges(), vec![Some(format!("bytes={half}-"))]);
    assert_extracted(tmp.path(), &STL10_FILES);
    assert!(!tmp.path().join("stl10_binary.tar.gz.part").exists());
}

#[test]
fn stl10_broken_connection_keeps_the_partial_file_and_the_next_run_resumes() {
    let archive = tar_gz(&tiny_stl10_files());
    let cut = archive.len() * 2 / 3;
    let tmp = tempfile::tempdir().unwrap();
    let md5 = md5_hex(&archive);
    let broken = stl10_request(
        tmp.path(),
        breaking_server(archive.clone(), cut),
        md5.clone(),
    );

    let error = fetch::stl10(&broken).unwrap_err();

    assert!(matches!(error, FetchError::Interrupted { .. }), "{error:?}");
    assert!(error.to_string().contains("again to resume"), "{error}");
    // Only the partial archive is left: no staged or final dataset files.
    assert_eq!(
        tree(tmp.path()),
        vec![PathBuf::from("stl10_binary.tar.gz.part")]
    );
    let part = fs::read(tmp.path().join("stl10_binary.tar.gz.part")).unwrap();
    assert_eq!(part, archive[..cut]);

    let server = TestServer::file("/s.tgz", archive.clone(), &[], true);
    fetch::stl10(&stl10_request(tmp.path(), server.url("/s.tgz"), md5)).unwrap();
    assert_eq!(server.ranges(), vec![Some(format!("bytes={cut}-"))]);
    assert_extracted(tmp.path(), &STL10_FILES);
}

#[test]
fn stl10_restarts_cleanly_when_the_server_ignores_range() {
    let archive = tar_gz(&tiny_stl10_files());
    let server = TestServer::file("/s.tgz", archive.clone(), &[], false);
    let tmp = tempfile::tempdir().unwrap();
    // A partial file that is not a prefix of the archive: appending to it
    // instead of starting over would fail the md5.
    let bogus = vec![0xAB; archive.len() / 2];
    fs::write(tmp.path().join("stl10_binary.tar.gz.part"), bogus).unwrap();

    fetch::stl10(&stl10_request(
        tmp.path(),
        server.url("/s.tgz"),
        md5_hex(&archive),
    ))
    .unwrap();

    assert_eq!(server.ranges().len(), 1);
    assert!(server.ranges()[0].is_some(), "a resume was attempted");
    assert_extracted(tmp.path(), &STL10_FILES);
}

#[test]
fn stl10_complete_partial_file_needs_no_more_bytes() {
    let archive = tar_gz(&tiny_stl10_files());
    let server = TestServer::file("/s.tgz", archive.clone(), &[], true);
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("stl10_binary.tar.gz.part"), &archive).unwrap();

    fetch::stl10(&stl10_request(
        tmp.path(),
        server.url("/s.tgz"),
        md5_hex(&archive),
    ))
    .unwrap();

    assert_eq!(
        server.ranges(),
        vec![Some(format!("bytes={}-", archive.len()))]
    );
    assert_extracted(tmp.path(), &STL10_FILES);
}

#[test]
fn stl10_refuses_an_entry_outside_the_target_and_writes_nothing() {
    let mut files = tiny_stl10_files();
    files.insert(1, ("../evil".to_string(), b"pwned".to_vec()));
    let archive = tar_gz(&files);
    let server = TestServer::file("/s.tgz", archive.clone(), &[], true);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cache").join("stl10");

    let error = fetch::stl10(&stl10_request(
        &dir,
        server.url("/s.tgz"),
        md5_hex(&archive),
    ))
    .unwrap_err();

    assert!(matches!(error, FetchError::UnsafeEntry { .. }), "{error:?}");
    assert!(error.to_string().contains("../evil"), "{error}");
    // Nothing anywhere: no evil file, no half-extracted dataset, no archive.
    assert_eq!(tree(tmp.path()), Vec::<PathBuf>::new());
}

#[test]
fn stl10_archive_without_needed_files_is_an_error() {
    let files: Vec<_> = tiny_stl10_files()
        .into_iter()
        .filter(|(name, _)| !name.ends_with("test_y.bin"))
        .collect();
    let archive = tar_gz(&files);
    let server = TestServer::file("/s.tgz", archive.clone(), &[], true);
    let tmp = tempfile::tempdir().unwrap();
    let error = fetch::stl10(&stl10_request(
        tmp.path(),
        server.url("/s.tgz"),
        md5_hex(&archive),
    ))
    .unwrap_err();
    assert!(
        error.to_string().contains("stl10_binary/test_y.bin"),
        "{error}"
    );
    assert_eq!(tree(tmp.path()), Vec::<PathBuf>::new());
}

#[test]
fn unreachable_url_fails_fast_naming_the_url_and_the_way_out() {
    let tmp = tempfile::tempdir().unwrap();
    let url = unreachable_url();
    let error = fetch::stl10(&stl10_request(
        tmp.path(),
        url.clone(),
        fetch::STL10_MD5.to_string(),
    ))
    .unwrap_err();
    assert!(matches!(error, FetchError::Unreachable { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains(&url), "{message}");
    assert!(message.contains("FINETUNE_STL10_URL"), "{message}");
    assert!(message.contains("--data"), "{message}");
}

#[test]
fn http_error_status_names_the_url() {
    let server = TestServer::file("/other", Vec::new(), &[], true);
    let tmp = tempfile::tempdir().unwrap();
    let url = server.url("/missing.safetensors");
    let error = fetch::vgg16(&weights_request(tmp.path(), url.clone())).unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains(&url) && message.contains("404"),
        "{message}"
    );
    assert!(message.contains("FINETUNE_VGG16_URL"), "{message}");
}

#[test]
fn weights_are_checked_against_the_etag_sha256() {
    let weights = support::bytes(100_000, 7);
    let etag = format!("\"{}\"", sha256_hex(&weights));
    let server = TestServer::file(
        "/model.safetensors",
        weights.clone(),
        &[("ETag", &etag)],
        true,
    );
    let tmp = tempfile::tempdir().unwrap();

    let path = fetch::vgg16(&weights_request(
        tmp.path(),
        server.url("/model.safetensors"),
    ))
    .unwrap();

    assert_eq!(path, tmp.path().join(fetch::VGG16_FILE_NAME));
    assert_eq!(fs::read(&path).unwrap(), weights);
    assert_eq!(
        tree(tmp.path()),
        vec![PathBuf::from(fetch::VGG16_FILE_NAME)]
    );
}

#[test]
fn weights_with_a_mismatching_etag_are_rejected_and_deleted() {
    let weights = support::bytes(100_000, 7);
    let wrong = sha256_hex(b"something else");
    let etag = format!("\"{wrong}\"");
    let server = TestServer::file(
        "/model.safetensors",
        weights.clone(),
        &[("ETag", &etag)],
        true,
    );
    let tmp = tempfile::tempdir().unwrap();
    let url = server.url("/model.safetensors");

    let error = fetch::vgg16(&weights_request(tmp.path(), url.clone())).unwrap_err();

    let message = error.to_string();
    assert!(
        message.contains("sha256") && message.contains(&url),
        "{message}"
    );
    assert!(
        message.contains(&wrong) && message.contains(&sha256_hex(&weights)),
        "{message}"
    );
    assert_eq!(tree(tmp.path()), Vec::<PathBuf>::new());
}

#[test]
fn an_explicit_sha256_wins_over_the_server() {
    let weights = support::bytes(5_000, 9);
    let server = TestServer::file("/w", weights.clone(), &[], true);
    let tmp = tempfile::tempdir().unwrap();
    let mut request = weights_request(tmp.path(), server.url("/w"));
    request.sha256 = Some(sha256_hex(b"not these bytes"));
    assert!(matches!(
        fetch::vgg16(&request),
        Err(FetchError::ChecksumMismatch { .. })
    ));
    request.sha256 = Some("not hex".to_string());
    assert!(matches!(
        fetch::vgg16(&request),
        Err(FetchError::BadChecksum { .. })
    ));
}

#[test]
fn weights_follow_hf_redirects_and_trust_only_the_hub_linked_etag() {
    // Like huggingface.co: the hub answers 302 with X-Linked-Etag = sha256 of
    // the LFS file; the CDN it points to has an unrelated 64-hex ETag.
    let weights = support::bytes(50_000, 11);
    let cdn = TestServer::file(
        "/blob",
        weights.clone(),
        &[("ETag", &format!("\"{}\"", sha256_hex(b"cdn's own tag")))],
        true,
    );
    let hub_routes = HashMap::from([(
        "/timm/vgg16.tv_in1k/resolve/main/model.safetensors".to_string(),
        Route::Redirect {
            location: cdn.url("/blob"),
            headers: vec![
                (
                    "X-Linked-Etag".into(),
                    format!("\"{}\"", sha256_hex(&weights)),
                ),
                ("ETag".into(), "\"0123abcd\"".into()),
            ],
        },
    )]);
    let hub = TestServer::start(hub_routes, true);
    let tmp = tempfile::tempdir().unwrap();
    let url = fetch::hf_url(&hub.base);

    let path = fetch::vgg16(&weights_request(tmp.path(), url)).unwrap();
    assert_eq!(fs::read(path).unwrap(), weights);
}

#[test]
fn weights_resume_from_a_partial_file() {
    let weights = support::bytes(80_000, 13);
    let etag = format!("\"{}\"", sha256_hex(&weights));
    let server = TestServer::file("/w", weights.clone(), &[("ETag", &etag)], true);
    let tmp = tempfile::tempdir().unwrap();
    let part = tmp.path().join(format!("{}.part", fetch::VGG16_FILE_NAME));
    fs::write(&part, &weights[..30_000]).unwrap();

    let path = fetch::vgg16(&weights_request(tmp.path(), server.url("/w"))).unwrap();

    assert_eq!(server.ranges(), vec![Some("bytes=30000-".to_string())]);
    assert_eq!(fs::read(path).unwrap(), weights);
    assert!(!part.exists());
}

#[test]
fn weights_broken_connection_then_resume() {
    let weights = support::bytes(70_000, 17);
    let tmp = tempfile::tempdir().unwrap();
    let error = fetch::vgg16(&weights_request(
        tmp.path(),
        breaking_server(weights.clone(), 20_000),
    ))
    .unwrap_err();
    assert!(matches!(error, FetchError::Interrupted { .. }), "{error:?}");
    let part = tmp.path().join(format!("{}.part", fetch::VGG16_FILE_NAME));
    assert_eq!(fs::read(&part).unwrap(), weights[..20_000]);

    let etag = format!("\"{}\"", sha256_hex(&weights));
    let server = TestServer::file("/w", weights.clone(), &[("ETag", &etag)], true);
    let path = fetch::vgg16(&weights_request(tmp.path(), server.url("/w"))).unwrap();
    assert_eq!(server.ranges(), vec![Some("bytes=20000-".to_string())]);
    assert_eq!(fs::read(path).unwrap(), weights);
}

#[test]
fn an_existing_hugging_face_cache_is_used_without_network() {
    let hub = tempfile::tempdir().unwrap();
    let snapshot = hub
        .path()
        .join("models--timm--vgg16.tv_in1k/snapshots/0123abc");
    fs::create_dir_all(&snapshot).unwrap();
    fs::write(snapshot.join("model.safetensors"), b"weights").unwrap();
    let tmp = tempfile::tempdir().unwrap();

    // The environment as a user would have it; the URL points nowhere.
    let env = |key: &str| match key {
        "HF_HUB_CACHE" => Some(hub.path().display().to_string()),
        "HF_ENDPOINT" => Some(unreachable_url()),
        _ => None,
    };
    let mut request = WeightsFetch::from_env(Some(tmp.path().to_path_buf()), env).unwrap();
    request.quiet = true;

    let path = fetch::vgg16(&request).unwrap();
    assert_eq!(path, snapshot.join("model.safetensors"));
    assert_eq!(
        tree(tmp.path()),
        Vec::<PathBuf>::new(),
        "nothing copied or downloaded"
    );
}
