//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong while opening a data set, transforming an image
/// or producing batches. Each variant names the file or index at fault and says
/// what was expected and what was found.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file or directory the data set needs does not exist.
    #[error("missing file {path}: expected {expected}")]
    MissingFile {
        /// The path that was looked for.
        path: PathBuf,
        /// What the file should have held.
        expected: String,
    },
    /// An I/O error other than "not found" while reading a file.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file being read.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// An STL10 `*_X.bin` file whose size is not a whole number of images.
    #[error(
        "{path}: size {found} bytes is not a multiple of {expected} bytes (one 3x96x96 STL10 image)"
    )]
    ImageFileSize {
        /// The `*_X.bin` file.
        path: PathBuf,
        /// Bytes per image.
        expected: u64,
        /// The file's size in bytes.
        found: u64,
    },
    /// A data set (or the selected part of it) holds no image.
    #[error("{path}: empty data set (expected at least one image, found none)")]
    Empty {
        /// The file or directory that turned out empty.
        path: PathBuf,
    },
    /// An STL10 label file whose length differs from its image count.
    #[error("{path}: expected {expected} labels (one per image in {images}), found {found}")]
    LabelCount {
        /// The `*_y.bin` file.
        path: PathBuf,
        /// The matching `*_X.bin` file.
        images: PathBuf,
        /// Number of images.
        expected: usize,
        /// Number of label bytes.
        found: usize,
    },
    /// An STL10 label byte outside 1..=10.
    #[error("{path}: byte {offset} is label {found}, expected 1..=10")]
    LabelRange {
        /// The `*_y.bin` file.
        path: PathBuf,
        /// Byte offset (= image index) of the bad label.
        offset: usize,
        /// The label found.
        found: u8,
    },
    /// A `class_names.txt` with the wrong number of names.
    #[error("{path}: expected {expected} class names (one per line), found {found}")]
    ClassNames {
        /// The class-names file.
        path: PathBuf,
        /// Names expected.
        expected: usize,
        /// Non-empty lines found.
        found: usize,
    },
    /// A fold number outside the folds `fold_indices.txt` holds.
    #[error("{path}: fold {fold} out of range, expected 0..{count}")]
    FoldOutOfRange {
        /// The fold file.
        path: PathBuf,
        /// The fold asked for.
        fold: usize,
        /// Folds in the file.
        count: usize,
    },
    /// A `fold_indices.txt` line that is not a list of train indices.
    #[error("{path} line {line}: {problem}")]
    MalformedFolds {
        /// The fold file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What was expected and found.
        problem: String,
    },
    /// A fold was requested for a split that has none.
    #[error("fold {fold} requested for the {split} split: expected the train split (folds index into train)")]
    FoldNotTrain {
        /// The fold asked for.
        fold: usize,
        /// The split it was asked for.
        split: String,
    },
    /// An image in a folder that could not be opened or decoded.
    #[error("cannot read image {path}: {reason}")]
    UnreadableImage {
        /// The image file.
        path: PathBuf,
        /// The decoder's message.
        reason: String,
    },
    /// A class folder without any image file.
    #[error("class folder {path} holds no image (expected files ending in {extensions})")]
    EmptyClass {
        /// The class folder.
        path: PathBuf,
        /// The extensions looked for.
        extensions: String,
    },
    /// A data directory that does not exist.
    #[error("{path}: no such directory (expected the folder holding stl10_binary/, or an image folder root/<class>/<image>)")]
    NoDataDir {
        /// The directory given.
        path: PathBuf,
    },
    /// The unlabeled split asked of an image folder.
    #[error(
        "{path}: image folders have no unlabeled split (only STL10 has one): use train or test"
    )]
    NoUnlabeledSplit {
        /// The folder.
        path: PathBuf,
    },
    /// An image-folder root without class sub-folders.
    #[error("{path}: expected one sub-folder per class (root/<class>/<image>), found none")]
    NoClasses {
        /// The root folder.
        path: PathBuf,
    },
    /// A split name other than `train`, `test` or `unlabeled`.
    #[error("unknown split {found:?}: expected train, test or unlabeled")]
    UnknownSplit {
        /// The name given.
        found: String,
    },
    /// An index past the end of a data set.
    #[error("index {index} out of range: expected less than {len} (the data set's size)")]
    IndexOutOfRange {
        /// The index asked for.
        index: usize,
        /// The data set's size.
        len: usize,
    },
    /// A buffer of the wrong length handed to a reader or transform.
    #[error("{what}: expected a buffer of {expected} elements, found {found}")]
    BufferSize {
        /// Which buffer (names the image index when there is one).
        what: String,
        /// Required length.
        expected: usize,
        /// Given length.
        found: usize,
    },
    /// A transform description that cannot be parsed or built.
    #[error("transform description {description:?}: {problem}")]
    BadPipeline {
        /// The description (or step) at fault.
        description: String,
        /// What was expected and found.
        problem: String,
    },
    /// A transform applied to an image it cannot handle (e.g. a crop larger
    /// than the padded image).
    #[error("{transform}: expected {expected}, found an image of {found_height}x{found_width}")]
    TransformInput {
        /// The transform.
        transform: String,
        /// What it needs.
        expected: String,
        /// Input height.
        found_height: usize,
        /// Input width.
        found_width: usize,
    },
    /// A loader configuration that cannot produce batches.
    #[error("loader configuration: {problem}")]
    LoaderConfig {
        /// What was expected and found.
        problem: String,
    },
    /// A seeded folder split left one side without images.
    #[error("{path}: the {split} split is empty: holding out {test_fraction} of each class leaves no {split} image (expected a fraction strictly between 0 and 1 for a folder without train/ and test/)")]
    EmptySplit {
        /// The image folder.
        path: PathBuf,
        /// The empty side.
        split: crate::Split,
        /// The share held out for testing.
        test_fraction: f32,
    },
    /// A fold was asked of a data set that has none.
    #[error(
        "{path}: folds are STL10's (its 10 predefined training subsets); an image folder has none"
    )]
    FoldNotStl10 {
        /// The data directory.
        path: PathBuf,
    },
    /// `train/` and `test/` of an image folder hold different classes.
    #[error("{train} and {test} hold different classes, so their labels would not line up: only in train: [{only_train}]; only in test: [{only_test}]")]
    ClassMismatch {
        /// The training folder.
        train: PathBuf,
        /// The test folder.
        test: PathBuf,
        /// Classes found only in `train`, comma-separated.
        only_train: String,
        /// Classes found only in `test`, comma-separated.
        only_test: String,
    },
    /// A memory-mapped file got shorter while it was read.
    #[error("{path} shrank to {found} bytes while in use (it was {expected}): was it overwritten or truncated? Reading on would crash")]
    FileShrank {
        /// The file.
        path: PathBuf,
        /// Its size when opened.
        expected: u64,
        /// Its size now.
        found: u64,
    },
    /// The loader's background producer died (panicked) before the epoch ended.
    #[error("the loader's producer thread stopped before the epoch ended: {message}")]
    ProducerStopped {
        /// The panic message, when there was one.
        message: String,
    },
}

impl DataError {
    /// Wraps an I/O error, turning "not found" into [`DataError::MissingFile`].
    pub(crate) fn io(path: impl Into<PathBuf>, expected: &str, source: std::io::Error) -> Self {
        let path = path.into();
        if source.kind() == std::io::ErrorKind::NotFound {
            DataError::MissingFile {
                path,
                expected: expected.to_string(),
            }
        } else {
            DataError::Io { path, source }
        }
    }
}
