//! `Stl10Download` against a local HTTP server: download, md5, resume,
//! extraction limits, offline failure. Nothing here touches the network.
#![cfg(feature = "download")]

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use finetune_data::download::{stl10_files, FilesError, Stl10Download, STL10_MD5};
use finetune_files::testing::{
    breaking_server, gzip, md5_hex, stalling_server, tar_gz, tree, unreachable_url, TestServer,
};

fn stl10_request(dir: &Path, url: String, md5: String) -> Stl10Download {
    Stl10Download {
        dir: dir.to_path_buf(),
        url,
        md5,
        unlabeled: false,
        quiet: true,
        read_timeout: Duration::from_secs(5),
    }
}

/// The members of a tiny STL10 archive (3 train, 2 test, 1 unlabeled
/// image), and a README the extraction must skip.
fn tiny_stl10_files() -> Vec<(String, Vec<u8>)> {
    let mut files = finetune_data::synthetic::stl10_members(3, 2, 1);
    files.push(("stl10_binary/README".into(), b"not needed\n".to_vec()));
    files
}

fn assert_extracted<S: AsRef<str>>(dir: &Path, names: &[S]) {
    let files: HashMap<String, Vec<u8>> = tiny_stl10_files().into_iter().collect();
    for name in names.iter().map(AsRef::as_ref) {
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

    let root = request.fetch().unwrap();

    assert_eq!(root, dir);
    assert_extracted(&dir, &stl10_files());
    let mut expected: Vec<PathBuf> = stl10_files()
        .iter()
        .map(|name| Path::new("stl10_binary").join(name))
        .collect();
    expected.push(Path::new("stl10_binary").join(".finetune-fetch"));
    expected.sort();
    // No unlabeled_X.bin, no README, no archive, no temporary files.
    assert_eq!(tree(&dir), expected);

    // A second run finds the files and does not touch the network.
    let requests = server.ranges().len();
    request.fetch().unwrap();
    assert_eq!(server.ranges().len(), requests);
}

#[test]
fn stl10_extracts_unlabeled_only_on_request() {
    let archive = tar_gz(&tiny_stl10_files());
    let server = TestServer::file("/s.tgz", archive.clone(), &[], true);
    let tmp = tempfile::tempdir().unwrap();
    let mut request = stl10_request(tmp.path(), server.url("/s.tgz"), md5_hex(&archive));
    request.fetch().unwrap();
    assert!(!tmp.path().join("stl10_binary/unlabeled_X.bin").exists());

    // Asking for it later is not "already there": it is fetched again.
    request.unlabeled = true;
    request.fetch().unwrap();
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
    let error = stl10_request(tmp.path(), url.clone(), wrong.clone())
        .fetch()
        .unwrap_err();

    assert!(
        matches!(error, FilesError::ChecksumMismatch { .. }),
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

    stl10_request(tmp.path(), server.url("/s.tgz"), md5_hex(&archive))
        .fetch()
        .unwrap();

    assert_eq!(server.ranges(), vec![Some(format!("bytes={half}-"))]);
    assert_extracted(tmp.path(), &stl10_files());
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

    let error = broken.fetch().unwrap_err();

    assert!(matches!(error, FilesError::Interrupted { .. }), "{error:?}");
    assert!(error.to_string().contains("again to resume"), "{error}");
    // Only the partial archive is left: no staged or final dataset files.
    assert_eq!(
        tree(tmp.path()),
        vec![PathBuf::from("stl10_binary.tar.gz.part")]
    );
    let part = fs::read(tmp.path().join("stl10_binary.tar.gz.part")).unwrap();
    assert_eq!(part, archive[..cut]);

    let server = TestServer::file("/s.tgz", archive.clone(), &[], true);
    stl10_request(tmp.path(), server.url("/s.tgz"), md5)
        .fetch()
        .unwrap();
    assert_eq!(server.ranges(), vec![Some(format!("bytes={cut}-"))]);
    assert_extracted(tmp.path(), &stl10_files());
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

    stl10_request(tmp.path(), server.url("/s.tgz"), md5_hex(&archive))
        .fetch()
        .unwrap();

    assert_eq!(server.ranges().len(), 1);
    assert!(server.ranges()[0].is_some(), "a resume was attempted");
    assert_extracted(tmp.path(), &stl10_files());
}

#[test]
fn stl10_complete_partial_file_needs_no_more_bytes() {
    let archive = tar_gz(&tiny_stl10_files());
    let server = TestServer::file("/s.tgz", archive.clone(), &[], true);
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("stl10_binary.tar.gz.part"), &archive).unwrap();

    stl10_request(tmp.path(), server.url("/s.tgz"), md5_hex(&archive))
        .fetch()
        .unwrap();

    assert_eq!(
        server.ranges(),
        vec![Some(format!("bytes={}-", archive.len()))]
    );
    assert_extracted(tmp.path(), &stl10_files());
}

#[test]
fn stl10_refuses_an_entry_outside_the_target_and_writes_nothing() {
    let mut files = tiny_stl10_files();
    files.insert(1, ("../evil".to_string(), b"pwned".to_vec()));
    let archive = tar_gz(&files);
    let server = TestServer::file("/s.tgz", archive.clone(), &[], true);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cache").join("stl10");

    let error = stl10_request(&dir, server.url("/s.tgz"), md5_hex(&archive))
        .fetch()
        .unwrap_err();

    assert!(matches!(error, FilesError::UnsafeEntry { .. }), "{error:?}");
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
    let error = stl10_request(tmp.path(), server.url("/s.tgz"), md5_hex(&archive))
        .fetch()
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
    let error = stl10_request(tmp.path(), url.clone(), STL10_MD5.to_string())
        .fetch()
        .unwrap_err();
    assert!(matches!(error, FilesError::Unreachable { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains(&url), "{message}");
    assert!(message.contains("FINETUNE_STL10_URL"), "{message}");
    assert!(message.contains("--data"), "{message}");
}

#[test]
fn a_gzip_that_is_not_a_tar_is_named_without_raw_bytes() {
    let archive = gzip(&[0xAB; 4096]);
    let server = TestServer::file("/s.tgz", archive.clone(), &[], true);
    let tmp = tempfile::tempdir().unwrap();
    let error = stl10_request(tmp.path(), server.url("/s.tgz"), md5_hex(&archive))
        .fetch()
        .unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(error, FilesError::CorruptArchive { .. }),
        "{error:?}"
    );
    assert!(message.contains("not a readable tar.gz"), "{message}");
    assert!(
        message.is_ascii() && !message.contains('\u{fffd}'),
        "{message}"
    );
    assert!(message.len() < 400, "{message}");
    assert_eq!(tree(tmp.path()), Vec::<PathBuf>::new());
}

#[test]
fn a_stalled_server_times_out_and_the_partial_file_is_kept() {
    let archive = tar_gz(&tiny_stl10_files());
    let url = stalling_server(archive.clone(), 1_000, Duration::from_secs(30));
    let tmp = tempfile::tempdir().unwrap();
    let mut request = stl10_request(tmp.path(), url, md5_hex(&archive));
    request.read_timeout = Duration::from_millis(500);
    let started = std::time::Instant::now();
    let error = request.fetch().unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(10), "it hung");
    assert!(matches!(error, FilesError::Interrupted { .. }), "{error:?}");
    let part = tmp.path().join("stl10_binary.tar.gz.part");
    assert_eq!(fs::read(part).unwrap(), archive[..1_000]);
}

#[cfg(unix)]
#[test]
fn symlinks_planted_in_the_cache_are_not_followed() {
    let archive = tar_gz(&tiny_stl10_files());
    let server = TestServer::file("/s.tgz", archive.clone(), &[], true);
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    fs::write(&outside, b"keep me").unwrap();
    let cache = tmp.path().join("cache");
    fs::create_dir_all(cache.join("stl10_binary")).unwrap();
    // At the partial download: refused.
    let part = cache.join("stl10_binary.tar.gz.part");
    std::os::unix::fs::symlink(&outside, &part).unwrap();
    let error = stl10_request(&cache, server.url("/s.tgz"), md5_hex(&archive))
        .fetch()
        .unwrap_err();
    assert!(error.to_string().contains("symbolic link"), "{error}");
    fs::remove_file(&part).unwrap();
    // At an old fixed temporary name and at a final name: replaced, not written through.
    fs::create_dir_all(cache.join("stl10_binary")).unwrap();
    for name in [".train_X.bin.tmp", "train_X.bin"] {
        std::os::unix::fs::symlink(&outside, cache.join("stl10_binary").join(name)).unwrap();
    }
    stl10_request(&cache, server.url("/s.tgz"), md5_hex(&archive))
        .fetch()
        .unwrap();
    assert_eq!(fs::read(&outside).unwrap(), b"keep me");
    let extracted = fs::symlink_metadata(cache.join("stl10_binary/train_X.bin")).unwrap();
    assert!(extracted.is_file());
}
