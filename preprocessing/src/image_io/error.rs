//! The error of the image I/O interface: a codec's own error, or what the interface itself
//! refuses; every variant names the file.

use std::path::PathBuf;

use crate::formats::FormatError;
use crate::limits::OverCeiling;
use crate::nifti_io::NiftiIoError;

/// An image could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImageError {
    /// The NIfTI codec's error (it names the file).
    #[error(transparent)]
    Nifti(#[from] NiftiIoError),
    /// The NRRD, MetaImage or natural-image codecs' error (it names the file). Boxed to keep
    /// `ImageError` small.
    #[error(transparent)]
    Format(Box<FormatError>),
    /// The file's name does not end in an ending autoseg reads.
    #[error("{}: not a file ending autoseg reads or writes (it reads {supported})", path.display())]
    Ending {
        /// The file.
        path: PathBuf,
        /// The endings autoseg reads.
        supported: String,
    },
    /// A vector image (several components per voxel, e.g. RGB).
    #[error("{}: {components} components per voxel; only scalar images are supported: store each channel as its own file (`_0000`, `_0001`, ...)", path.display())]
    Components {
        /// The file.
        path: PathBuf,
        /// Components per voxel.
        components: usize,
    },
    /// Other than 2 or 3 spatial dimensions.
    #[error("{}: {dims:?} is a {}-D image; only 2-D and 3-D images are supported (store each channel of a 4-D image as its own file)", path.display(), dims.len())]
    Dims {
        /// The file.
        path: PathBuf,
        /// Voxels per axis, fastest first.
        dims: Vec<usize>,
    },
    /// A label map holds a value that is not a label.
    #[error("{}: label maps hold non-negative integers below 65536; found {value}", path.display())]
    BadLabel {
        /// The file.
        path: PathBuf,
        /// The first offending value.
        value: f64,
    },
    /// The decoded volume would need more memory than the ceiling allows.
    #[error("{}: {memory}", path.display())]
    OverCeiling {
        /// The file.
        path: PathBuf,
        /// What it needs and the ceiling.
        memory: OverCeiling,
    },
    /// Natural-image formats hold segmentations only (nnU-Net writes no images to them).
    #[error("{}: PNG, BMP and TIFF files are written as segmentations only; write images as NIfTI, NRRD or MetaImage", path.display())]
    SegmentationOnly {
        /// The file.
        path: PathBuf,
    },
    /// The volume to write does not match its geometry, or has more than one channel.
    #[error("{}: cannot write data of shape {data:?} (c, z, y, x) with geometry shape {geometry:?}: need one channel and the geometry's shape", path.display())]
    ShapeMismatch {
        /// The file.
        path: PathBuf,
        /// The data's shape.
        data: [usize; 4],
        /// The geometry's shape.
        geometry: [usize; 3],
    },
}

impl From<FormatError> for ImageError {
    fn from(err: FormatError) -> Self {
        ImageError::Format(Box::new(err))
    }
}

impl ImageError {
    /// The operating system's error when the file could not be opened or read at all (so
    /// callers can tell a missing file from a corrupt one).
    pub fn io_error(&self) -> Option<&std::io::Error> {
        match self {
            ImageError::Nifti(NiftiIoError::Io { source, .. }) => Some(source),
            ImageError::Format(err) => match err.as_ref() {
                FormatError::Io { source, .. } => Some(source),
                _ => None,
            },
            _ => None,
        }
    }
}
