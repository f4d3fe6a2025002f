//! A data set's identity: a hash of every byte a loader would read from it,
//! to tell whether two data sets are the same (a resumed run's, a feature
//! cache's) without keeping a copy.

use crate::{DataError, Dataset};

/// The blake3 hash, as 64 hex digits, of everything `dataset` yields: its
/// length, image size and class names, and every image's pixels and label,
/// in index order. Two data sets with the same fingerprint feed a loader the
/// same bytes. Reads the whole data set (STL10's 5 000 training images: a
/// fraction of a second).
pub fn fingerprint(dataset: &dyn Dataset) -> Result<String, DataError> {
    let mut hasher = blake3::Hasher::new();
    let (height, width) = dataset.image_dims();
    for value in [dataset.len(), height, width, dataset.num_classes()] {
        hasher.update(&(value as u64).to_le_bytes());
    }
    for name in dataset.class_names() {
        hasher.update(&(name.len() as u64).to_le_bytes());
        hasher.update(name.as_bytes());
    }
    let mut pixels = vec![0u8; 3 * height * width];
    for index in 0..dataset.len() {
        hasher.update(&dataset.label(index).to_le_bytes());
        dataset.read_image(index, &mut pixels)?;
        hasher.update(&pixels);
    }
    Ok(hasher.finalize().to_hex().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{synthetic, Split, Stl10};

    #[test]
    fn any_changed_byte_changes_the_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        let root = synthetic::write_stl10(dir.path(), 30, 0, 0).unwrap();
        let before = fingerprint(&Stl10::open(dir.path(), Split::Train, None).unwrap()).unwrap();
        assert_eq!(
            before,
            fingerprint(&Stl10::open(dir.path(), Split::Train, None).unwrap()).unwrap()
        );
        // One byte of image 23, which no sampling of a few images would see.
        let file = root.join("train_X.bin");
        let mut bytes = std::fs::read(&file).unwrap();
        bytes[23 * crate::STL10_IMAGE_BYTES + 5] ^= 1;
        std::fs::write(&file, bytes).unwrap();
        let after = fingerprint(&Stl10::open(dir.path(), Split::Train, None).unwrap()).unwrap();
        assert_ne!(before, after);
        assert_eq!(after.len(), 64);
    }
}
