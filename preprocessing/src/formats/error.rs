//! The one error type of NRRD, MetaImage, GIPL, natural-image and TIFF reading and writing and of
//! DICOM series reading; every variant names the file and the fault.

use std::io;
use std::path::{Path, PathBuf};

/// An NRRD, MetaImage, GIPL, PNG, BMP or TIFF file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// The file could not be opened or read.
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// Writing failed (e.g. a full disk); the target file, if it existed, is unchanged.
    #[error("{}: cannot write: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The file does not start as the format requires (NRRD's `NRRD000x` magic), or does not
    /// hold GIPL's magic number.
    #[error("{}: not a {format} file: {reason}", path.display())]
    NotFormat {
        /// The file.
        path: PathBuf,
        /// `NRRD`, `MetaImage` or `GIPL`.
        format: &'static str,
        /// What was found instead.
        reason: String,
    },
    /// The header does not end within the first `limit` bytes (or the file ends inside it).
    #[error("{}: {reason}", path.display())]
    BadHeader {
        /// The file.
        path: PathBuf,
        /// What is wrong with the header's structure.
        reason: String,
    },
    /// A required field is absent.
    #[error("{}: missing required field {field:?}", path.display())]
    MissingField {
        /// The file.
        path: PathBuf,
        /// The field's name.
        field: &'static str,
    },
    /// A field's value cannot be parsed or is out of range.
    #[error("{}: bad {field:?} value {value:?}: {reason}", path.display())]
    BadField {
        /// The file.
        path: PathBuf,
        /// The field's name.
        field: String,
        /// The value as written (shortened when long).
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A field given twice where the format allows it once.
    #[error("{}: field {field:?} is given twice", path.display())]
    DuplicateField {
        /// The file.
        path: PathBuf,
        /// The field's name.
        field: String,
    },
    /// The file uses a feature these codecs do not read (an encoding, type, space, the
    /// multi-file `LIST` form, ...).
    #[error("{}: unsupported: {what}", path.display())]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// What is not supported, in words.
        what: String,
    },
    /// The sizes multiply past what can be addressed; the header is corrupt.
    #[error("{}: sizes {sizes:?} (with {element_bytes}-byte components) describe more data than can be addressed; the header is corrupt", path.display())]
    TooManyVoxels {
        /// The file.
        path: PathBuf,
        /// The sizes of every axis (components included).
        sizes: Vec<usize>,
        /// Bytes per component.
        element_bytes: usize,
    },
    /// The data is shorter than the header promises.
    #[error("{}: header/data size mismatch: the header needs {expected} bytes of voxel data, the file has {found}", path.display())]
    DataTooShort {
        /// The file holding the data.
        path: PathBuf,
        /// Bytes the header requires.
        expected: u128,
        /// Bytes present.
        found: u128,
    },
    /// A compressed stream holds more data than the header promises (a decompression bomb or a
    /// wrong header).
    #[error("{}: the compressed stream holds more than the {expected} bytes the header promises", path.display())]
    DataTooLong {
        /// The file holding the data.
        path: PathBuf,
        /// Bytes the header promises.
        expected: u128,
    },
    /// A compressed payload too small to expand to the data the header promises.
    #[error("{}: header/data size mismatch: the header needs {expected} bytes of voxel data, but {compressed} compressed bytes can expand to at most {most} (deflate expands at most 1032:1)", path.display())]
    CompressedTooSmall {
        /// The file holding the data.
        path: PathBuf,
        /// Bytes the header requires.
        expected: u128,
        /// The compressed size.
        compressed: u64,
        /// The most bytes that size can decompress to.
        most: u128,
    },
    /// The compressed stream is corrupt (bad deflate data, header or checksum).
    #[error("{}: truncated or corrupt compressed data: {source}", path.display())]
    Corrupt {
        /// The file holding the data.
        path: PathBuf,
        /// flate2's description of the fault.
        #[source]
        source: io::Error,
    },
    /// A text (ascii) value cannot be read as the header's type.
    #[error("{}: text value {index} ({token:?}) is not a valid {element}", path.display())]
    BadText {
        /// The file holding the data.
        path: PathBuf,
        /// The value's index.
        index: usize,
        /// The value as written (shortened when long).
        token: String,
        /// The element type's name.
        element: &'static str,
    },
    /// Text (ascii) data with fewer values than the header promises.
    #[error("{}: the header promises {expected} text values, the data holds {found}", path.display())]
    TooFewValues {
        /// The file holding the data.
        path: PathBuf,
        /// Values the header promises.
        expected: usize,
        /// Values present.
        found: usize,
    },
    /// The geometry the header describes is unusable (zero spacing, singular direction, ...).
    #[error("{}: {source}", path.display())]
    BadGeometry {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: InvalidImage,
    },
    /// What the file would hold (the data and the bytes kept to write it back) passes the
    /// memory ceiling.
    #[error("{}: the header claims {dims:?} voxels of {components} component(s): reading them {memory}", path.display())]
    OverCeiling {
        /// The file.
        path: PathBuf,
        /// The spatial sizes.
        dims: Vec<usize>,
        /// Components per voxel.
        components: usize,
        /// The memory needed and the ceiling.
        memory: crate::limits::OverCeiling,
    },
    /// Memory could not be reserved although the ceiling allowed it.
    #[error("{}: cannot reserve {} of memory; free memory or lower the ceiling (--max-volume-gb)", path.display(), crate::limits::gb(*bytes))]
    OutOfMemory {
        /// The file.
        path: PathBuf,
        /// Bytes asked for.
        bytes: u128,
    },
    /// The detached data file named by a header cannot be used.
    #[error("{}: data file {data_file:?}: {reason}", path.display())]
    DataFile {
        /// The header.
        path: PathBuf,
        /// The data file as the header names it.
        data_file: String,
        /// What is wrong.
        reason: String,
    },
    /// The image to write is inconsistent.
    #[error("{}: cannot write: {source}", path.display())]
    InvalidImage {
        /// The target file.
        path: PathBuf,
        /// What is wrong with the image.
        #[source]
        source: InvalidImage,
    },
    /// A PNG, BMP or TIFF file the decoder cannot read (truncated, bad checksum, corrupt
    /// compressed data, inconsistent tags, ...).
    #[error("{}: corrupt or unreadable {format} file: {reason}", path.display())]
    Decode {
        /// The file.
        path: PathBuf,
        /// `PNG`, `BMP` or `TIFF`.
        format: &'static str,
        /// The decoder's description of the fault.
        reason: String,
    },
    /// The file decodes, but nnU-Net's reader refuses the array (a natural image that is not
    /// 2-D grey, RGB or RGBA; a TIFF stack that is not 3-D).
    #[error("{}: nnU-Net's {reader} does not read this file: {reason}", path.display())]
    NotAccepted {
        /// The file.
        path: PathBuf,
        /// `NaturalImage2DIO` or `Tiff3DIO`.
        reader: &'static str,
        /// Why, in nnU-Net's words where it has them.
        reason: String,
    },
    /// A 3-D TIFF's spacing sidecar (`.json`) exists but cannot be used.
    #[error("{}: spacing file {}: {reason}", path.display(), sidecar.display())]
    Sidecar {
        /// The image.
        path: PathBuf,
        /// The sidecar.
        sidecar: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The files of a folder do not make one readable DICOM series.
    #[error("{}: not one readable DICOM series: {fault}", path.display())]
    Series {
        /// The folder.
        path: PathBuf,
        /// What is wrong with the series.
        fault: Box<super::dicom::SeriesFault>,
    },
    /// The file name ends in none of `.nrrd`, `.nhdr`, `.mha`, `.mhd`, `.gipl` (as the function
    /// needs).
    #[error("{}: unknown image format: the name must end in {expected}", path.display())]
    Extension {
        /// The file.
        path: PathBuf,
        /// The extensions allowed here.
        expected: &'static str,
    },
}

/// An image whose parts do not fit together (see [`super::RawImage::new`]).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid image: {reason}")]
pub struct InvalidImage {
    /// What is wrong, in words.
    pub reason: String,
}

impl InvalidImage {
    pub(crate) fn new(reason: impl Into<String>) -> InvalidImage {
        InvalidImage {
            reason: reason.into(),
        }
    }
}

/// `text` shortened to at most 80 characters for an error message.
pub(crate) fn shorten(text: &str) -> String {
    const MAX: usize = 80;
    if text.chars().count() <= MAX {
        return text.to_string();
    }
    let cut: String = text.chars().take(MAX).collect();
    format!("{cut}...")
}

impl FormatError {
    /// [`FormatError::BadField`]: `field` of `path` holds `value`, wrong for `reason`.
    pub(crate) fn bad_field(path: &Path, field: &str, value: String, reason: &str) -> FormatError {
        FormatError::BadField {
            path: path.to_path_buf(),
            field: field.to_string(),
            value,
            reason: reason.to_string(),
        }
    }
}
