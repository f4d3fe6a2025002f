//! `Vgg16Download` against a local HTTP server: sha256 from the server or
//! the caller, Hugging Face's redirects and cache, resume. Nothing here
//! touches the network.
#![cfg(feature = "download")]

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use finetune_files::testing::{
    breaking_server, bytes, sha256_hex, tree, unreachable_url, Route, TestServer,
};
use finetune_model::download::{vgg16_url, FilesError, Vgg16Download, VGG16_FILE_NAME};

fn weights_request(dir: &Path, url: String) -> Vgg16Download {
    Vgg16Download {
        dir: dir.to_path_buf(),
        url,
        sha256: None,
        hf_hub_cache: None,
        quiet: true,
    }
}
#[test]
fn http_error_status_names_the_url() {
    let server = TestServer::file("/other", Vec::new(), &[], true);
    let tmp = tempfile::tempdir().unwrap();
    let url = server.url("/missing.safetensors");
    let error = weights_request(tmp.path(), url.clone())
        .fetch()
        .unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains(&url) && message.contains("404"),
        "{message}"
    );
    assert!(message.contains("FINETUNE_VGG16_URL"), "{message}");
}

#[test]
fn weights_are_checked_against_the_etag_sha256() {
    let weights = bytes(100_000, 7);
    let etag = format!("\"{}\"", sha256_hex(&weights));
    let server = TestServer::file(
        "/model.safetensors",
        weights.clone(),
        &[("ETag", &etag)],
        true,
    );
    let tmp = tempfile::tempdir().unwrap();

    let path = weights_request(tmp.path(), server.url("/model.safetensors"))
        .fetch()
        .unwrap();

    assert_eq!(path, tmp.path().join(VGG16_FILE_NAME));
    assert_eq!(fs::read(&path).unwrap(), weights);
    assert_eq!(tree(tmp.path()), vec![PathBuf::from(VGG16_FILE_NAME)]);
}

#[test]
fn weights_with_a_mismatching_etag_are_rejected_and_deleted() {
    let weights = bytes(100_000, 7);
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

    let error = weights_request(tmp.path(), url.clone())
        .fetch()
        .unwrap_err();

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
    let weights = bytes(5_000, 9);
    let server = TestServer::file("/w", weights.clone(), &[], true);
    let tmp = tempfile::tempdir().unwrap();
    let mut request = weights_request(tmp.path(), server.url("/w"));
    request.sha256 = Some(sha256_hex(b"not these bytes"));
    assert!(matches!(
        request.fetch(),
        Err(FilesError::ChecksumMismatch { .. })
    ));
    request.sha256 = Some("not hex".to_string());
    assert!(matches!(
        request.fetch(),
        Err(FilesError::BadChecksum { .. })
    ));
}

#[test]
fn weights_follow_hf_redirects_and_trust_only_the_hub_linked_etag() {
    // Like huggingface.co: the hub answers 302 with X-Linked-Etag = sha256 of
    // the LFS file; the CDN it points to has an unrelated 64-hex ETag.
    let weights = bytes(50_000, 11);
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
    let url = vgg16_url(&hub.base);

    let path = weights_request(tmp.path(), url).fetch().unwrap();
    assert_eq!(fs::read(path).unwrap(), weights);
}

#[test]
fn weights_resume_from_a_partial_file() {
    let weights = bytes(80_000, 13);
    let etag = format!("\"{}\"", sha256_hex(&weights));
    let server = TestServer::file("/w", weights.clone(), &[("ETag", &etag)], true);
    let tmp = tempfile::tempdir().unwrap();
    let part = tmp.path().join(format!("{}.part", VGG16_FILE_NAME));
    fs::write(&part, &weights[..30_000]).unwrap();

    let path = weights_request(tmp.path(), server.url("/w"))
        .fetch()
        .unwrap();

    assert_eq!(server.ranges(), vec![Some("bytes=30000-".to_string())]);
    assert_eq!(fs::read(path).unwrap(), weights);
    assert!(!part.exists());
}

#[test]
fn weights_broken_connection_then_resume() {
    let weights = bytes(70_000, 17);
    let tmp = tempfile::tempdir().unwrap();
    let error = weights_request(tmp.path(), breaking_server(weights.clone(), 20_000))
        .fetch()
        .unwrap_err();
    assert!(matches!(error, FilesError::Interrupted { .. }), "{error:?}");
    let part = tmp.path().join(format!("{}.part", VGG16_FILE_NAME));
    assert_eq!(fs::read(&part).unwrap(), weights[..20_000]);

    let etag = format!("\"{}\"", sha256_hex(&weights));
    let server = TestServer::file("/w", weights.clone(), &[("ETag", &etag)], true);
    let path = weights_request(tmp.path(), server.url("/w"))
        .fetch()
        .unwrap();
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
    let mut request = Vgg16Download::from_env(Some(tmp.path().to_path_buf()), env).unwrap();
    request.quiet = true;

    let path = request.fetch().unwrap();
    assert_eq!(path, snapshot.join("model.safetensors"));
    assert_eq!(
        tree(tmp.path()),
        Vec::<PathBuf>::new(),
        "nothing copied or downloaded"
    );
}
