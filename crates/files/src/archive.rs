//! A tar.gz archive downloaded and extracted in one pass, contained and
//! checked: only the wanted members of one directory are extracted, while the
//! bytes stream in, into hidden temporary files beside the final ones; only
//! once the checksum of the whole archive matches are they renamed into
//! place, so a bad download never leaves a file that looks usable. Links,
//! `..` and absolute paths are refused. The archive itself is deleted after
//! a successful extraction, and a manifest records what was extracted so a
//! later run can tell, without the network, that the files are complete.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

use flate2::read::GzDecoder;

use crate::atomic::{create_new, fresh_tmp_path, persist, write_file_atomic};
use crate::http::{Algorithm, Download, Transfer};
use crate::FilesError;

/// Records the archive's checksum and the extracted sizes (in the target directory).
const MANIFEST: &str = ".finetune-fetch";

/// The size a member of a known archive has (`None`: any size will do).
pub type KnownSize<'a> = &'a dyn Fn(&str) -> Option<u64>;

/// One archive to download and extract.
#[derive(Debug, Clone)]
pub struct Archive<'a> {
    /// Where the `.tar.gz` comes from.
    pub url: &'a str,
    /// Its checksum and the checksum's algorithm (lower-case hex).
    pub checksum: (Algorithm, &'a str),
    /// The directory inside the archive whose members are wanted (e.g. `stl10_binary`).
    pub member_dir: &'a str,
    /// The file names wanted from `member_dir`; each must be there.
    pub wanted: &'a [&'a str],
    /// The directory the wanted files end up in.
    pub out: &'a Path,
    /// The partial download, kept between runs to resume from.
    pub part: &'a Path,
    /// How to talk to the server and the user.
    pub transfer: Transfer,
}

impl Archive<'_> {
    /// Whether every wanted file is already in [`Archive::out`] with the size
    /// a previous extraction of this archive (same checksum) recorded. For a
    /// file without a record, `known_size` decides: `None` means it does not
    /// count, `Some(f)` checks the size `f` gives (`f` returning `None`: any
    /// size will do), for archives whose members are known (e.g. an official
    /// data set's). Needs no network.
    pub fn already_extracted(&self, known_size: Option<KnownSize<'_>>) -> bool {
        let recorded = read_manifest(self.out, self.checksum.1);
        self.wanted.iter().all(|name| {
            let expected = match (recorded.get(*name), known_size) {
                (Some(&size), _) => Some(size),
                (None, Some(size_of)) => size_of(name),
                (None, None) => return false,
            };
            // symlink_metadata: a symlink planted in the cache is not our file.
            match fs::symlink_metadata(self.out.join(name)) {
                Ok(meta) => meta.is_file() && expected.is_none_or(|size| size == meta.len()),
                Err(_) => false,
            }
        })
    }

    /// Downloads the archive (resuming [`Archive::part`]), extracts the
    /// wanted members while the bytes stream in, and commits them into
    /// [`Archive::out`] once the checksum matches. A network failure keeps
    /// the partial download for the next run; a checksum mismatch, a refused
    /// member or a missing one deletes it and leaves nothing behind.
    pub fn fetch(&self) -> Result<(), FilesError> {
        let (algorithm, expected) = self.checksum;
        let mut download = Download::start(self.url, self.part, algorithm, &self.transfer)?;
        let mut staged = Staged::new(self.out);
        let extraction = extract(
            &mut download,
            self.member_dir,
            self.wanted,
            self.url,
            &mut staged,
        );
        if let Some(failure) = download.take_failure() {
            // The network or the .part file failed, not the archive: keep the
            // .part file so the next run resumes.
            return Err(failure);
        }
        if let Err(Extraction::Write(error)) = extraction {
            return Err(error);
        }
        let finished = download.finish()?;
        if finished.digest != expected {
            remove_quietly(self.part);
            return Err(FilesError::ChecksumMismatch {
                url: self.url.to_string(),
                algorithm: algorithm.name(),
                expected: expected.to_string(),
                found: finished.digest,
            });
        }
        // The archive is the one asked for, so whatever is wrong with it will not
        // improve by downloading it again: drop it rather than keep a bad file.
        if let Err(Extraction::Archive(error)) = extraction {
            remove_quietly(self.part);
            return Err(error);
        }
        let missing: Vec<String> = self
            .wanted
            .iter()
            .filter(|name| !staged.has(name))
            .map(|name| format!("{}/{name}", self.member_dir))
            .collect();
        if !missing.is_empty() {
            remove_quietly(self.part);
            return Err(FilesError::MissingEntries {
                url: self.url.to_string(),
                missing,
            });
        }
        staged.commit(algorithm, expected)?;
        remove_quietly(self.part);
        Ok(())
    }
}

/// File sizes from the manifest, if it was written for the archive with `checksum`.
fn read_manifest(out: &Path, checksum: &str) -> HashMap<String, u64> {
    let Ok(text) = fs::read_to_string(out.join(MANIFEST)) else {
        return HashMap::new();
    };
    let mut lines = text.lines();
    // The manifest's first line names the checksum; older ones wrote `md5 HEX`.
    let matches = lines
        .next()
        .and_then(|line| line.split_once(' '))
        .is_some_and(|(_, hex)| hex == checksum);
    if !matches {
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
    Write(FilesError),
    /// The archive itself is unreadable or refused.
    Archive(FilesError),
}

/// Reads the tar.gz from `source`, staging each wanted `member_dir/` file.
fn extract(
    source: impl Read,
    member_dir: &str,
    wanted: &[&str],
    url: &str,
    staged: &mut Staged,
) -> Result<(), Extraction> {
    let corrupt = |source: io::Error| {
        Extraction::Archive(FilesError::CorruptArchive {
            url: url.to_string(),
            reason: printable(&source.to_string()),
        })
    };
    let mut archive = tar::Archive::new(GzDecoder::new(source));
    for entry in archive.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        let path = entry.path().map_err(corrupt)?.into_owned();
        if let Some(reason) = refusal(&path, entry.header().entry_type()) {
            return Err(Extraction::Archive(FilesError::UnsafeEntry {
                url: url.to_string(),
                entry: path.display().to_string(),
                reason,
            }));
        }
        let Some(name) = wanted_name(&path, member_dir, wanted) else {
            continue;
        };
        if !entry.header().entry_type().is_file() {
            return Err(Extraction::Archive(FilesError::UnsafeEntry {
                url: url.to_string(),
                entry: path.display().to_string(),
                reason: "is not a regular file",
            }));
        }
        staged.write(name, &mut entry, corrupt)?;
    }
    Ok(())
}

/// A decoder's message fit for a terminal: `tar` quotes the header bytes it
/// could not parse, which for a file that is no tar are arbitrary bytes.
fn printable(message: &str) -> String {
    let cut: String = message
        .split(':')
        .next()
        .unwrap_or(message)
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .take(120)
        .collect();
    format!("{} (not a tar archive inside the gzip?)", cut.trim())
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

/// The wanted file name an archive path stands for (`member_dir/NAME`, any `./` ignored).
fn wanted_name<'a>(path: &Path, member_dir: &str, wanted: &[&'a str]) -> Option<&'a str> {
    let parts: Vec<_> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(part) => Some(part),
            _ => None,
        })
        .collect();
    match parts.as_slice() {
        [dir, file] if *dir == member_dir => wanted.iter().copied().find(|name| *file == *name),
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

    /// Copies `entry` into the temporary file for `name`.
    fn write(
        &mut self,
        name: &str,
        entry: &mut impl Read,
        corrupt: impl Fn(io::Error) -> Extraction,
    ) -> Result<(), Extraction> {
        // An unpredictable name, created exclusively: nothing planted there is followed.
        let temp = fresh_tmp_path(&self.out.join(name));
        let write_error = |source| {
            Extraction::Write(FilesError::Io {
                action: "write",
                path: temp.clone(),
                source,
            })
        };
        let mut file = create_new(&temp).map_err(Extraction::Write)?;
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
    fn commit(mut self, algorithm: Algorithm, checksum: &str) -> Result<(), FilesError> {
        let mut manifest = format!("{} {checksum}\n", algorithm.name());
        for (name, temp, size) in std::mem::take(&mut self.files) {
            let target = self.out.join(&name);
            // Kept in the list until renamed, so Drop cleans up after a failure.
            self.files.push((name.clone(), temp.clone(), size));
            persist(&temp, &target)?;
            self.files.pop();
            manifest.push_str(&format!("{name} {size}\n"));
        }
        write_file_atomic(&self.out.join(MANIFEST), manifest.as_bytes())
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
    fn only_wanted_names_under_the_member_dir_are_picked() {
        let wanted = ["train_X.bin", "test_y.bin"];
        let name = |p: &str| wanted_name(Path::new(p), "stl10_binary", &wanted);
        assert_eq!(name("stl10_binary/train_X.bin"), Some("train_X.bin"));
        assert_eq!(name("./stl10_binary/test_y.bin"), Some("test_y.bin"));
        assert_eq!(name("stl10_binary/unlabeled_X.bin"), None);
        assert_eq!(name("train_X.bin"), None);
        assert_eq!(name("other/stl10_binary/train_X.bin"), None);
    }

    #[test]
    fn the_manifest_is_read_for_its_own_checksum_only() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(MANIFEST), "md5 abc\na.bin 3\nb.txt 10\n").unwrap();
        let sizes = read_manifest(dir.path(), "abc");
        assert_eq!(sizes.get("a.bin"), Some(&3));
        assert_eq!(sizes.len(), 2);
        assert!(read_manifest(dir.path(), "def").is_empty());
    }
}
