//! The STL10 archive: download, md5 check and selective, contained extraction.
//!
//! The tar.gz is extracted while it streams in, into hidden temporary files
//! beside the final ones; only once the md5 of the whole archive matches are
//! they renamed into place, so a bad download never leaves a file that looks
//! usable. The archive itself is deleted after a successful extraction.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

use flate2::read::GzDecoder;

use super::download::{parse_checksum, Algorithm, Download};
use super::{say, FetchError, Stl10Fetch, STL10_HINT, STL10_MD5};

/// The files training and evaluation need, inside `stl10_binary/`.
pub const STL10_FILES: [&str; 6] = [
    "train_X.bin",
    "train_y.bin",
    "test_X.bin",
    "test_y.bin",
    "class_names.txt",
    "fold_indices.txt",
];

/// The 2.7 GB unlabeled split, extracted only on request.
pub const STL10_UNLABELED: &str = "unlabeled_X.bin";

/// The directory the archive unpacks to (torchvision `base_folder`).
const ARCHIVE_DIR: &str = "stl10_binary";

/// Records the archive md5 and the extracted sizes, so a later run can tell
/// the files are complete without the network.
const MANIFEST: &str = ".finetune-fetch";

/// Sizes of the official files (recipe-facts.md: 27 648 bytes per image,
/// one label byte per image); the text files' sizes are not pinned.
fn official_size(name: &str) -> Option<u64> {
    match name {
        "train_X.bin" => Some(5_000 * 27_648),
        "train_y.bin" => Some(5_000),
        "test_X.bin" => Some(8_000 * 27_648),
        "test_y.bin" => Some(8_000),
        "unlabeled_X.bin" => Some(100_000 * 27_648),
        _ => None,
    }
}

/// Downloads and extracts STL10 as `fetch` says; returns the directory holding
/// `stl10_binary/` (`fetch.dir`). Does nothing if the files are already there.
pub fn stl10(fetch: &Stl10Fetch) -> Result<PathBuf, FetchError> {
    let md5 = parse_checksum(
        Algorithm::Md5,
        "the STL10 md5 (--md5 or FINETUNE_STL10_MD5)",
        &fetch.md5,
    )?;
    let out = fetch.dir.join(ARCHIVE_DIR);
    let mut wanted: Vec<&str> = STL10_FILES.to_vec();
    if fetch.unlabeled {
        wanted.push(STL10_UNLABELED);
    }
    if already_there(&out, &wanted, &md5) {
        say(
            fetch.quiet,
            &format!("STL10 is already in {}", out.display()),
        );
        return Ok(fetch.dir.clone());
    }
    fs::create_dir_all(&out).map_err(FetchError::io("create", &out))?;
    say(
        fetch.quiet,
        &format!("fetching STL10 from {} into {}", fetch.url, out.display()),
    );
    if let Err(error) = download_and_extract(fetch, &out, &wanted, md5) {
        // Leave no empty stl10_binary/ that looks like a dataset (fails, as
        // it should, when the directory holds anything).
        let _ = fs::remove_dir(&out);
        return Err(error);
    }
    say(fetch.quiet, &format!("STL10 is in {}", out.display()));
    Ok(fetch.dir.clone())
}

/// Streams the archive into `out`'s staged files and commits them once the
/// md5 matches.
fn download_and_extract(
    fetch: &Stl10Fetch,
    out: &Path,
    wanted: &[&str],
    md5: String,
) -> Result<(), FetchError> {
    let part = fetch.dir.join("stl10_binary.tar.gz.part");

    let mut download = Download::start(&fetch.url, &part, Algorithm::Md5, STL10_HINT, fetch.quiet)?;
    let mut staged = Staged::new(out);
    let extraction = extract(&mut download, wanted, &fetch.url, &mut staged);
    if let Some(failure) = download.take_failure() {
        // The network or the .part file failed, not the archive: keep the
        // .part file so the next run resumes.
        return Err(failure);
    }
    if let Err(Extraction::Write(error)) = extraction {
        return Err(error);
    }
    let finished = download.finish()?;
    if finished.digest != md5 {
        remove_quietly(&part);
        return Err(FetchError::ChecksumMismatch {
            url: fetch.url.clone(),
            algorithm: Algorithm::Md5.name(),
            expected: md5,
            found: finished.digest,
        });
    }
    // The archive is the one asked for, so whatever is wrong with it will not
    // improve by downloading it again: drop it rather than keep a bad file.
    if let Err(Extraction::Archive(error)) = extraction {
        remove_quietly(&part);
        return Err(error);
    }
    let missing: Vec<String> = wanted
        .iter()
        .filter(|name| !staged.has(name))
        .map(|name| format!("{ARCHIVE_DIR}/{name}"))
        .collect();
    if !missing.is_empty() {
        remove_quietly(&part);
        return Err(FetchError::MissingEntries {
            url: fetch.url.clone(),
            missing,
        });
    }
    staged.commit(&md5)?;
    remove_quietly(&part);
    Ok(())
}

/// Whether every wanted file exists with the size recorded for `md5`'s
/// archive (or, for the official archive, its known size).
fn already_there(out: &Path, wanted: &[&str], md5: &str) -> bool {
    let recorded = read_manifest(out, md5);
    wanted.iter().all(|name| {
        let expected = match recorded.get(*name) {
            Some(&size) => Some(size),
            None if md5 == STL10_MD5 => official_size(name),
            None => return false,
        };
        match fs::metadata(out.join(name)) {
            Ok(meta) => meta.is_file() && expected.is_none_or(|size| size == meta.len()),
            Err(_) => false,
        }
    })
}

/// File sizes from the manifest, if it was written for `md5`'s archive.
fn read_manifest(out: &Path, md5: &str) -> HashMap<String, u64> {
    let Ok(text) = fs::read_to_string(out.join(MANIFEST)) else {
        return HashMap::new();
    };
    let mut lines = text.lines();
    if lines.next() != Some(&format!("md5 {md5}")) {
        return HashMap::new();
    }
    lines
        .filter_map(|line| {
            let (name, size) = line.rsplit_once(' ')?;
            Some((name.to_string(), size.parse().ok()?))
        })
        .collect()
}

/// Why extraction stopped.
enum Extraction {
    /// Writing an extracted file failed (disk full, permissions).
    Write(FetchError),
    /// The archive itself is unreadable or refused.
    Archive(FetchError),
}

/// Reads the tar.gz from `source`, staging each wanted `stl10_binary/` file.
fn extract(
    source: impl Read,
    wanted: &[&str],
    url: &str,
    staged: &mut Staged,
) -> Result<(), Extraction> {
    let corrupt = |source: io::Error| {
        Extraction::Archive(FetchError::CorruptArchive {
            url: url.to_string(),
            source,
        })
    };
    let mut archive = tar::Archive::new(GzDecoder::new(source));
    for entry in archive.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        let path = entry.path().map_err(corrupt)?.into_owned();
        if let Some(reason) = refusal(&path, entry.header().entry_type()) {
            return Err(Extraction::Archive(FetchError::UnsafeEntry {
                url: url.to_string(),
                entry: path.display().to_string(),
                reason,
            }));
        }
        let Some(name) = wanted_name(&path, wanted) else {
            continue;
        };
        if !entry.header().entry_type().is_file() {
            return Err(Extraction::Archive(FetchError::UnsafeEntry {
                url: url.to_string(),
                entry: path.display().to_string(),
                reason: "is not a regular file",
            }));
        }
        staged.write(name, &mut entry, corrupt)?;
    }
    Ok(())
}

/// Why an entry must not be extracted, if it must not: links could point
/// anywhere, and `..` or absolute paths would land outside the target.
fn refusal(path: &Path, kind: tar::EntryType) -> Option<&'static str> {
    if kind.is_symlink() || kind.is_hard_link() {
        return Some("is a link, which could point outside the target directory");
    }
    for component in path.components() {
        match component {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => {
                return Some("contains `..`, which would land outside the target directory")
            }
            Component::RootDir | Component::Prefix(_) => {
                return Some("is an absolute path, which would land outside the target directory")
            }
        }
    }
    None
}

/// The wanted file name an archive path stands for (`stl10_binary/NAME`, any `./` ignored).
fn wanted_name<'a>(path: &Path, wanted: &[&'a str]) -> Option<&'a str> {
    let parts: Vec<_> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(part) => Some(part),
            _ => None,
        })
        .collect();
    match parts.as_slice() {
        [dir, file] if *dir == ARCHIVE_DIR => wanted.iter().copied().find(|name| *file == *name),
        _ => None,
    }
}

/// Extracted files waiting for the checksum verdict; dropped uncommitted,
/// their temporary files are removed.
struct Staged {
    out: PathBuf,
    files: Vec<(String, PathBuf, u64)>,
}

impl Staged {
    fn new(out: &Path) -> Self {
        Staged {
            out: out.to_path_buf(),
            files: Vec::new(),
        }
    }

    fn has(&self, name: &str) -> bool {
        self.files.iter().any(|(staged, _, _)| staged == name)
    }

    fn temp_path(&self, name: &str) -> PathBuf {
        self.out.join(format!(".{name}.tmp"))
    }

    /// Copies `entry` into the temporary file for `name`.
    fn write(
        &mut self,
        name: &str,
        entry: &mut impl Read,
        corrupt: impl Fn(io::Error) -> Extraction,
    ) -> Result<(), Extraction> {
        let temp = self.temp_path(name);
        let write_error = |source| {
            Extraction::Write(FetchError::Io {
                action: "write",
                path: temp.clone(),
                source,
            })
        };
        let mut file = File::create(&temp).map_err(write_error)?;
        // Registered before writing so a failure below still removes it.
        self.files.retain(|(staged, _, _)| staged != name);
        self.files.push((name.to_string(), temp.clone(), 0));
        let mut buf = vec![0u8; 1 << 16];
        let mut size = 0u64;
        loop {
            // Read errors are the archive's (or the download's, which the
            // caller checks first); write errors are the disk's.
            let n = entry.read(&mut buf).map_err(&corrupt)?;
            if n == 0 {
                break;
            }
            file.write_all(&buf[..n]).map_err(write_error)?;
            size += n as u64;
        }
        file.sync_all().map_err(write_error)?;
        if let Some(last) = self.files.last_mut() {
            last.2 = size;
        }
        Ok(())
    }

    /// Renames every staged file into place, then records the manifest.
    fn commit(mut self, md5: &str) -> Result<(), FetchError> {
        let mut manifest = format!("md5 {md5}\n");
        for (name, temp, size) in std::mem::take(&mut self.files) {
            let target = self.out.join(&name);
            // Kept in the list until renamed, so Drop cleans up after a failure.
            self.files.push((name.clone(), temp.clone(), size));
            fs::rename(&temp, &target).map_err(FetchError::io("rename into place", &target))?;
            self.files.pop();
            manifest.push_str(&format!("{name} {size}\n"));
        }
        let temp = self.out.join(format!("{MANIFEST}.tmp"));
        fs::write(&temp, manifest).map_err(FetchError::io("write", &temp))?;
        let target = self.out.join(MANIFEST);
        fs::rename(&temp, &target).map_err(FetchError::io("rename into place", &target))
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        for (_, temp, _) in &self.files {
            remove_quietly(temp);
        }
    }
}

/// Removes a file whose removal is cleanup: a failure there must not hide the
/// error being reported.
fn remove_quietly(path: &Path) {
    let _ = fs::remove_file(path);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_parent_absolute_and_links() {
        let file = tar::EntryType::Regular;
        assert!(refusal(Path::new("stl10_binary/train_X.bin"), file).is_none());
        assert!(refusal(Path::new("./stl10_binary/x"), file).is_none());
        assert!(refusal(Path::new("../evil"), file).is_some());
        assert!(refusal(Path::new("stl10_binary/../../evil"), file).is_some());
        assert!(refusal(Path::new("/etc/evil"), file).is_some());
        assert!(refusal(Path::new("stl10_binary/a"), tar::EntryType::Symlink).is_some());
        assert!(refusal(Path::new("stl10_binary/a"), tar::EntryType::Link).is_some());
    }

    #[test]
    fn only_wanted_names_under_stl10_binary_are_picked() {
        let wanted = STL10_FILES;
        let name = |p: &str| wanted_name(Path::new(p), &wanted);
        assert_eq!(name("stl10_binary/train_X.bin"), Some("train_X.bin"));
        assert_eq!(name("./stl10_binary/test_y.bin"), Some("test_y.bin"));
        assert_eq!(name("stl10_binary/unlabeled_X.bin"), None);
        assert_eq!(name("train_X.bin"), None);
        assert_eq!(name("other/stl10_binary/train_X.bin"), None);
    }

    #[test]
    fn official_sizes_follow_the_byte_layout() {
        assert_eq!(official_size("train_X.bin"), Some(138_240_000));
        assert_eq!(official_size("test_X.bin"), Some(221_184_000));
        assert_eq!(official_size("unlabeled_X.bin"), Some(2_764_800_000));
        assert_eq!(official_size("class_names.txt"), None);
    }
}
