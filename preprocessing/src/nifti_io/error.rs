//! The one error type of NIfTI reading and writing; every variant names the file and the fault.

use std::io;
use std::path::PathBuf;

use crate::volume::Shape3;

/// A NIfTI file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NiftiIoError {
    /// The file could not be opened or read.
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The gzip stream is truncated or corrupt (bad deflate data or checksum).
    #[error("{}: truncated or corrupt gzip stream: {source}", path.display())]
    Gzip {
        /// The file.
        path: PathBuf,
        /// flate2's description of the fault.
        #[source]
        source: io::Error,
    },
    /// The first four bytes (`sizeof_hdr`) are neither 348 (NIfTI-1) nor 540 (NIfTI-2).
    #[error("{}: not a NIfTI file (sizeof_hdr is {sizeof_hdr}, expected 348 or 540)", path.display())]
    NotNifti {
        /// The file.
        path: PathBuf,
        /// The value found.
        sizeof_hdr: i32,
    },
    /// The magic string is wrong (`ni1` marks a .hdr/.img pair, which is not supported).
    #[error("{}: wrong NIfTI magic {found:?} (expected \"n+1\" or \"n+2\" for a single .nii file)", path.display())]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// The magic bytes found, escaped.
        found: String,
    },
    /// The file ends inside the header.
    #[error("{}: file ends inside the NIfTI header ({len} of {expected} bytes)", path.display())]
    TruncatedHeader {
        /// The file.
        path: PathBuf,
        /// Bytes present.
        len: usize,
        /// Header size.
        expected: usize,
    },
    /// `dim[0]` is outside 1..=7 or a used dimension is zero or negative.
    #[error("{}: invalid dimensions {dims:?} (dim[0] must be 1..7 and every used dim >= 1)", path.display())]
    BadDims {
        /// The file.
        path: PathBuf,
        /// `dim[0..8]`.
        dims: Vec<i64>,
    },
    /// A 4-D file with more than one volume along the 4th axis.
    #[error("{}: 4-D image with {volumes} volumes along the 4th axis; only 3-D images (or 4-D with one volume) are supported: store each channel as its own file", path.display())]
    FourD {
        /// The file.
        path: PathBuf,
        /// `dim[4]`.
        volumes: i64,
    },
    /// 1-D data, or a 5-D+ file with a non-singleton axis beyond the 4th.
    #[error("{}: unsupported dimensionality {dims:?}; only 2-D and 3-D images are supported", path.display())]
    UnsupportedDims {
        /// The file.
        path: PathBuf,
        /// `dim[0..8]`.
        dims: Vec<i64>,
    },
    /// The datatype code is not one we read.
    #[error("{}: unsupported NIfTI datatype code {code} (supported: u8, i8, i16, u16, i32, u32, i64, u64, f32, f64)", path.display())]
    UnsupportedDatatype {
        /// The file.
        path: PathBuf,
        /// `datatype`.
        code: i16,
    },
    /// A valid `scl_slope` with a non-finite `scl_inter` (nibabel refuses these too).
    #[error("{}: invalid intensity scaling: scl_slope {slope} with non-finite scl_inter {inter}", path.display())]
    BadScaling {
        /// The file.
        path: PathBuf,
        /// `scl_slope`.
        slope: f64,
        /// `scl_inter`.
        inter: f64,
    },
    /// `pixdim[1..4]` holds NaN or infinity.
    #[error("{}: non-finite voxel size pixdim[1..4] = {pixdim:?}", path.display())]
    BadSpacing {
        /// The file.
        path: PathBuf,
        /// `pixdim[1..4]`.
        pixdim: [f64; 3],
    },
    /// The data block is shorter than the header's dims and datatype require.
    #[error("{}: header/data size mismatch: the header needs {expected} bytes of voxel data, the file has {found}", path.display())]
    DataSizeMismatch {
        /// The file.
        path: PathBuf,
        /// Bytes the header requires.
        expected: u128,
        /// Bytes present.
        found: u128,
    },
    /// The dimensions multiply past what any machine can address (or wrap around in 64 bits).
    #[error("{}: dimensions {dims:?} describe more voxels than can be addressed; the header is corrupt", path.display())]
    TooManyVoxels {
        /// The file.
        path: PathBuf,
        /// `dim[0..8]`.
        dims: Vec<i64>,
    },
    /// A gzip file too small to hold the voxel data its header asks for.
    #[error("{}: header/data size mismatch: the header needs {expected} bytes of voxel data, but a gzip file of {compressed} bytes can hold at most {most} (deflate expands at most 1032:1)", path.display())]
    GzipTooSmall {
        /// The file.
        path: PathBuf,
        /// Bytes the header requires.
        expected: u128,
        /// The file's (compressed) size.
        compressed: u64,
        /// The most bytes that size can decompress to.
        most: u128,
    },
    /// The voxels the header claims would take more memory than the ceiling allows.
    #[error("{}: the header claims {shape:?} (z, y, x) voxels: reading them {memory}", path.display())]
    OverCeiling {
        /// The file.
        path: PathBuf,
        /// The claimed shape `(z, y, x)`.
        shape: [usize; 3],
        /// The memory needed and the ceiling.
        memory: crate::limits::OverCeiling,
    },
    /// Memory for the voxels could not be reserved although the ceiling allowed it.
    #[error("{}: cannot reserve {} of memory for the voxels; free memory or lower the ceiling (--max-volume-gb)", path.display(), crate::limits::gb(*bytes))]
    OutOfMemory {
        /// The file.
        path: PathBuf,
        /// Bytes asked for.
        bytes: u128,
    },
    /// A label map holds a value that is not an integer in `0..=65535`.
    #[error("{}: label map holds value {value}; labels must be non-negative integers up to 65535", path.display())]
    BadLabel {
        /// The file.
        path: PathBuf,
        /// The first offending value (after scaling).
        value: f64,
    },
    /// The volume to write does not match its geometry, or has more than one channel.
    #[error("{}: cannot write data of shape {data:?} (c, z, y, x) with geometry shape {geometry:?}: need one channel and the geometry's shape", path.display())]
    ShapeMismatch {
        /// The file.
        path: PathBuf,
        /// The data's shape.
        data: [usize; 4],
        /// The geometry's shape.
        geometry: Shape3,
    },
    /// The volume is too large for a NIfTI-1 header (a dim above 32767).
    #[error("{}: shape {shape:?} does not fit a NIfTI-1 header (each dim at most 32767)", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The spatial shape.
        shape: Shape3,
    },
    /// The output name ends neither in `.nii` nor in `.nii.gz`.
    #[error("{}: output file must end in .nii or .nii.gz", path.display())]
    Extension {
        /// The file.
        path: PathBuf,
    },
    /// gzip levels are 0..=9.
    #[error("{}: gzip level {level} is outside 0..=9", path.display())]
    GzipLevel {
        /// The file.
        path: PathBuf,
        /// The level asked for.
        level: u32,
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
}
