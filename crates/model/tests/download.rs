//! `Vgg16Download` against a local HTTP server: sha256 from the server or
//! the caller, the file checked to be VGG16 weights, Hugging Face's redirects
//! and cache, resume, stalls. Nothing here touches the network.
#![cfg(feature = "download")]

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use candle_core::Device;
use finetune_files::testing::{
    breaking_server, bytes, sha256_hex, stalling_server, tree, unreachable_url, Route, TestServer,
};
use finetune_model::download::{vgg16_url, FilesError, Vgg16Download, VGG16_FILE_NAME};
use finetune_model::{ModelError, Vgg, VggConfig};

fn weights_request(dir: &Path, url: String) -> Vgg16Download {
    Vgg16Download {
        dir: dir.to_path_buf(),
        url,
        sha256: None,
        hf_hub_cache: None,
        quiet: true,
        read_timeout: Duration::from_secs(5),
    }
}

/// A narrow VGG16 with ImageNet's 1000-class head as safetensors bytes:
/// what the mirror serves (tens of kB instead of 528 MB).
fn vgg16_bytes(seed: u64) -> Vec<u8> {
    let config = VggConfig {
        width_divisor: 64,
        classifier_hidden: 8,
        ..VggConfig::vgg16(1000)
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    Vgg::new_random(config, seed, &Device::Cpu)
        .unwrap()
        .save_safetensors(&path)
        .unwrap();
    fs::read(path).unwrap()
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
    let weights = vgg16_bytes(7);
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
    let weights = vgg16_bytes(7);
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
        Err(ModelError::File(FilesError::ChecksumMismatch { .. }))
    ));
    request.sha256 = Some("not hex".to_string());
    assert!(matches!(
        request.fetch(),
        Err(ModelError::File(FilesError::BadChecksum { .. }))
    ));
}

#[test]
fn weights_follow_hf_redirects_and_trust_only_the_hub_linked_etag() {
    // Like huggingface.co: the hub answers 302 with X-Linked-Etag = sha256 of
    // the LFS file; the CDN it points to has an unrelated 64-hex ETag.
    let weights = vgg16_bytes(11);
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
    let weights = vgg16_bytes(13);
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
    let weights = vgg16_bytes(17);
    let tmp = tempfile::tempdir().unwrap();
    let error = weights_request(tmp.path(), breaking_server(weights.clone(), 20_000))
        .fetch()
        .unwrap_err();
    assert!(
        matches!(error, ModelError::File(FilesError::Interrupted { .. })),
        "{error:?}"
    );
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

#[test]
fn a_body_that_is_not_vgg16_is_refused_when_the_server_states_no_checksum() {
    for (what, body) in [
        (
            "an HTML page",
            b"<html><body>Service unavailable</body></html>".to_vec(),
        ),
        ("half a file", vgg16_bytes(19)[..30_000].to_vec()),
        ("another network", {
            let config = VggConfig {
                width_divisor: 64,
                classifier_hidden: 8,
                ..VggConfig::new(finetune_model::VggVariant::Vgg11, false, 1000)
            };
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("w.safetensors");
            Vgg::new_random(config, 1, &Device::Cpu)
                .unwrap()
                .save_safetensors(&path)
                .unwrap();
            fs::read(path).unwrap()
        }),
    ] {
        let server = TestServer::file("/w", body, &[], true);
        let tmp = tempfile::tempdir().unwrap();
        let error = weights_request(tmp.path(), server.url("/w"))
            .fetch()
            .unwrap_err();
        assert!(
            matches!(error, ModelError::NotVgg16 { .. }),
            "{what}: {error:?}"
        );
        assert!(
            error.to_string().contains("not VGG16 weights"),
            "{what}: {error}"
        );
        assert_eq!(
            tree(tmp.path()),
            Vec::<PathBuf>::new(),
            "{what}: nothing installed"
        );
    }
}

#[test]
fn a_bad_file_already_in_the_cache_is_not_reported_as_cached() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join(VGG16_FILE_NAME), b"<html>").unwrap();
    let error = weights_request(tmp.path(), unreachable_url())
        .fetch()
        .unwrap_err();
    assert!(error.to_string().contains(VGG16_FILE_NAME), "{error}");
}

#[test]
fn a_stalled_server_times_out_and_the_partial_file_is_kept() {
    let weights = vgg16_bytes(23);
    let url = stalling_server(weights.clone(), 20_000, Duration::from_secs(30));
    let tmp = tempfile::tempdir().unwrap();
    let mut request = weights_request(tmp.path(), url.clone());
    request.read_timeout = Duration::from_millis(500);
    let started = std::time::Instant::now();
    let error = request.fetch().unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(10), "it hung");
    assert!(
        matches!(error, ModelError::File(FilesError::Interrupted { .. })),
        "{error:?}"
    );
    let part = tmp.path().join(format!("{VGG16_FILE_NAME}.part"));
    assert_eq!(fs::read(&part).unwrap(), weights[..20_000]);
}

#[cfg(unix)]
#[test]
fn a_symlink_at_the_partial_or_final_path_is_not_followed() {
    let weights = vgg16_bytes(29);
    let server = TestServer::file("/w", weights, &[], true);
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    fs::write(&outside, b"keep me").unwrap();
    let cache = tmp.path().join("cache");
    fs::create_dir(&cache).unwrap();
    for name in [
        format!("{VGG16_FILE_NAME}.part"),
        VGG16_FILE_NAME.to_string(),
    ] {
        let link = cache.join(&name);
        std::os::unix::fs::symlink(&outside, &link).unwrap();
        let error = weights_request(&cache, server.url("/w"))
            .fetch()
            .unwrap_err();
        assert!(
            error.to_string().contains("symbolic link"),
            "{name}: {error}"
        );
        assert_eq!(fs::read(&outside).unwrap(), b"keep me");
        fs::remove_file(link).unwrap();
    }
}
