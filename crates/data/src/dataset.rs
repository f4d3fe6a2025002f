//! The one trait every data set implements, so that the loader and the
//! training code do not care where images come from.

use std::fmt;
use std::str::FromStr;

use crate::transforms::ImageRef;
use crate::DataError;

/// A 0-based class index, the one label type of every crate of finetune:
/// what [`Dataset::label`] returns, what a [`Batch`](crate::Batch) carries
/// and what candle's `cross_entropy` takes as targets.
pub type Label = u32;

/// Label of an image that has none (STL10's `unlabeled` split). torchvision
/// uses -1 there; an unsigned label cannot, so the largest value stands in.
pub const UNLABELED: Label = Label::MAX;

/// A finite, indexable set of same-sized RGB images with class labels.
pub trait Dataset: Send + Sync {
    /// Number of images.
    fn len(&self) -> usize;

    /// Whether the data set holds no image (never true for a successfully
    /// opened [`Stl10`](crate::Stl10) or [`ImageFolder`](crate::ImageFolder)).
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Class names, index = label.
    fn class_names(&self) -> &[String];

    /// Number of classes.
    fn num_classes(&self) -> usize {
        self.class_names().len()
    }

    /// 0-based class of image `index`, or [`UNLABELED`]. Panics if `index >= len()`.
    fn label(&self, index: usize) -> Label;

    /// (height, width) of every image [`read_image`](Dataset::read_image) yields.
    fn image_dims(&self) -> (usize, usize);

    /// Writes image `index` into `out` as HWC u8 RGB, row-major, in the
    /// orientation torchvision shows (`out.len()` must be `3 * h * w`).
    fn read_image(&self, index: usize, out: &mut [u8]) -> Result<(), DataError>;

    /// Image `index` borrowed in its stored layout, when the data set holds it
    /// in memory (`None` otherwise, or when `index` is out of range). Lets the
    /// loader skip the copy [`read_image`](Dataset::read_image) makes.
    fn image_ref(&self, index: usize) -> Option<ImageRef<'_>> {
        let _ = index;
        None
    }

    /// Confirms the data can still be read: a memory-mapped file that was
    /// truncated since it was opened is an error here, where reading it would
    /// kill the process with SIGBUS. The loader calls it before each batch.
    fn check(&self) -> Result<(), DataError> {
        Ok(())
    }

    /// A short name for image `index` in prediction files: the file path
    /// relative to the root for folders, the index otherwise.
    fn item_name(&self, index: usize) -> String {
        index.to_string()
    }
}

/// Which part of a data set to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    /// The training images.
    Train,
    /// The held-out test images.
    Test,
    /// STL10's 100 000 unlabeled images.
    Unlabeled,
}

impl Split {
    /// The lower-case name torchvision uses (`"train"`, `"test"`, `"unlabeled"`).
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "test",
            Split::Unlabeled => "unlabeled",
        }
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Split {
    type Err = DataError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "train" => Ok(Split::Train),
            "test" => Ok(Split::Test),
            "unlabeled" => Ok(Split::Unlabeled),
            other => Err(DataError::UnknownSplit {
                found: other.to_string(),
            }),
        }
    }
}

/// Checks `out` has room for one image of `dims`.
pub(crate) fn check_image_buffer(
    index: usize,
    dims: (usize, usize),
    out: &[u8],
) -> Result<(), DataError> {
    let expected = 3 * dims.0 * dims.1;
    if out.len() != expected {
        return Err(DataError::BufferSize {
            what: format!("HWC image buffer for index {index}"),
            expected,
            found: out.len(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_parses_and_prints_torchvision_names() {
        for split in [Split::Train, Split::Test, Split::Unlabeled] {
            assert_eq!(split.to_string().parse::<Split>().unwrap(), split);
        }
        let err = "val".parse::<Split>().unwrap_err().to_string();
        assert!(err.contains("\"val\""), "{err}");
    }
}
