//! NIfTI-1/NIfTI-2 reading and NIfTI-1 writing with geometry (`.nii` and `.nii.gz`).
//!
//! Reading detects gzip by its magic bytes, parses the header in either byte order, and streams
//! the voxel data in chunks straight into one preallocated buffer, converting datatype, byte
//! order and `scl_slope`/`scl_inter` in the same pass. NIfTI stores x fastest, which is C order
//! for `(z, y, x)`, so the buffer becomes the array without a transpose.
//!
//! Writing copies the geometry header fields unchanged (so viewers overlay the result on its
//! source) and is atomic: a temporary file in the target folder is renamed over the target only
//! once it is complete.

mod decode;
mod error;
mod header;
mod write;

use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use flate2::bufread::MultiGzDecoder;
use ndarray::Array4;

pub use decode::{DataType, Scaling};
pub use error::NiftiIoError;
pub use write::{write_image, write_label_map};

use crate::limits;
use crate::volume::{Geometry, Image, LabelMap, Shape3, Spacing, Volume};
use decode::{DataLayout, DecodeFault};
use header::{HeaderFault, RawHeader, Version, NIFTI1_HEADER_LEN, NIFTI2_HEADER_LEN};

/// What a NIfTI header says, without the voxels.
#[derive(Debug, Clone, PartialEq)]
pub struct NiftiInfo {
    /// Shape, spacing, affine and the header's geometry fields.
    pub geometry: Geometry,
    /// The stored voxel datatype.
    pub datatype: DataType,
    /// Intensity scaling, `None` when unset (`scl_slope` 0 or NaN) or the identity.
    pub scaling: Option<Scaling>,
    /// True for a NIfTI-2 (540-byte) header.
    pub nifti2: bool,
}

/// Read buffer for files (compressed or not).
const READ_BUFFER: usize = 256 * 1024;
/// The largest expansion a deflate stream can achieve (1032:1), plus slack for the gzip header;
/// bounds how much voxel data a gzip file of a given size can hold, so a forged header cannot
/// make us allocate more than the file could ever fill.
const MAX_DEFLATE_RATIO: u128 = 1032;

/// Reads only the header of a `.nii`/`.nii.gz` file (fast: decompresses just its first bytes).
///
/// # Errors
/// I/O, gzip and header faults as [`crate::read_image`] on NIfTI; for uncompressed files also a data block
/// shorter than the header requires.
pub fn read_header(path: &Path) -> Result<NiftiInfo, NiftiIoError> {
    let (src, len) = open(path)?;
    with_reader(src, len, path, |_, parsed, _| Ok(parsed.info.clone()))
}

/// Reads an intensity image as `f32`, shape `(1, z, y, x)`, with scaling applied.
///
/// 2-D files get `z = 1` and, as nnU-Net's SimpleITK reader gives them, z spacing
/// `999 * max(y, x spacing)`.
///
/// # Errors
/// [`NiftiIoError`] naming the file and the fault: I/O, truncated/corrupt gzip, wrong
/// `sizeof_hdr` or magic, bad or 4-D dims, unsupported datatype, header/data size mismatch.
pub fn read_image(path: &Path) -> Result<Image, NiftiIoError> {
    let (src, len) = open(path)?;
    read_volume(src, len, path, decode::decode_image)
}

/// Reads a label map as `u16`, shape `(1, z, y, x)`.
///
/// # Errors
/// As [`read_image`], and [`NiftiIoError::BadLabel`] for a negative, fractional, NaN or
/// too-large value.
pub fn read_label_map(path: &Path) -> Result<LabelMap, NiftiIoError> {
    let (src, len) = open(path)?;
    read_volume(src, len, path, decode::decode_labels)
}

/// [`crate::read_image`] from the bytes of a `.nii` or `.nii.gz` file; `name` is used in errors
/// only.
///
/// # Errors
/// As [`crate::read_image`].
pub fn read_image_from_bytes(bytes: &[u8], name: &Path) -> Result<Image, NiftiIoError> {
    read_volume(bytes, bytes.len() as u64, name, decode::decode_image)
}

/// [`crate::read_label_map`] from the bytes of a `.nii` or `.nii.gz` file; `name` is used in
/// errors only.
///
/// # Errors
/// As [`crate::read_label_map`].
pub fn read_label_map_from_bytes(bytes: &[u8], name: &Path) -> Result<LabelMap, NiftiIoError> {
    read_volume(bytes, bytes.len() as u64, name, decode::decode_labels)
}

/// Opens `path` buffered and returns it with its length.
fn open(path: &Path) -> Result<(BufReader<std::fs::File>, u64), NiftiIoError> {
    let io_err = |source| NiftiIoError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io_err)?;
    let len = file.metadata().map_err(io_err)?.len();
    Ok((BufReader::with_capacity(READ_BUFFER, file), len))
}

/// A header interpreted: what the caller sees and how the data block is laid out.
struct Parsed {
    info: NiftiInfo,
    layout: DataLayout,
    /// Byte offset of the voxel data.
    data_offset: u64,
    /// Header bytes already consumed.
    header_len: usize,
}

/// A refused voxel value, turned into the error for `path`.
trait ValueFault {
    fn into_error(self, path: &Path) -> NiftiIoError;
}

impl ValueFault for std::convert::Infallible {
    fn into_error(self, _path: &Path) -> NiftiIoError {
        match self {}
    }
}

impl ValueFault for f64 {
    fn into_error(self, path: &Path) -> NiftiIoError {
        NiftiIoError::BadLabel {
            path: path.to_path_buf(),
            value: self,
        }
    }
}

/// A streaming decoder from `decode` (image or label flavour).
type DecodeFn<T, E> = fn(&mut dyn Read, &DataLayout) -> Result<Vec<T>, DecodeFault<E>>;

/// Reads header and voxels and assembles the volume (no copy: the decoded buffer becomes the
/// array).
fn read_volume<T, E: ValueFault>(
    src: impl BufRead,
    len: u64,
    path: &Path,
    decode_fn: DecodeFn<T, E>,
) -> Result<Volume<T>, NiftiIoError> {
    let (geometry, voxels) = with_reader(src, len, path, |reader, parsed, gzip| {
        check_memory::<T>(parsed, path)?;
        skip_extensions(reader, parsed, gzip, path)?;
        let voxels = decode_fn(reader, &parsed.layout)
            .map_err(|fault| decode_error::<T, E>(fault, parsed, gzip, path))?;
        if gzip {
            // Read to the end so that flate2 checks the CRC and length trailer.
            io::copy(reader, &mut io::sink()).map_err(|e| stream_error(e, true, path))?;
        }
        Ok((parsed.info.geometry.clone(), voxels))
    })?;
    let [z, y, x] = geometry.shape().0;
    let data = Array4::from_shape_vec((1, z, y, x), voxels)
        .expect("the decoder returns exactly n_voxels = z * y * x values");
    Ok(Volume { data, geometry })
}

/// Sniffs gzip, parses and checks the header, then hands the positioned stream to `body`.
fn with_reader<R: BufRead, O>(
    mut src: R,
    len: u64,
    path: &Path,
    body: impl FnOnce(&mut dyn Read, &Parsed, bool) -> Result<O, NiftiIoError>,
) -> Result<O, NiftiIoError> {
    let head = src.fill_buf().map_err(|e| stream_error(e, false, path))?;
    let gzip = head.starts_with(&[0x1f, 0x8b]);
    let mut reader: Box<dyn Read> = if gzip {
        Box::new(MultiGzDecoder::new(src))
    } else {
        Box::new(src)
    };
    let parsed = parse_header(&mut reader, gzip, path)?;
    check_size(&parsed, len, gzip, path)?;
    body(&mut reader, &parsed, gzip)
}

/// Maps a read error: inside a gzip stream it is a gzip fault, else an I/O fault.
fn stream_error(source: io::Error, gzip: bool, path: &Path) -> NiftiIoError {
    let path = path.to_path_buf();
    if gzip {
        NiftiIoError::Gzip { path, source }
    } else {
        NiftiIoError::Io { path, source }
    }
}

/// Reads and interprets the 348- or 540-byte header.
fn parse_header(reader: &mut dyn Read, gzip: bool, path: &Path) -> Result<Parsed, NiftiIoError> {
    let mut block = [0u8; NIFTI2_HEADER_LEN];
    let got = decode::fill(reader, &mut block[..4]).map_err(|e| stream_error(e, gzip, path))?;
    let truncated = |len, expected| NiftiIoError::TruncatedHeader {
        path: path.to_path_buf(),
        len,
        expected,
    };
    if got < 4 {
        return Err(truncated(got, NIFTI1_HEADER_LEN));
    }
    let first4 = block[..4].try_into().expect("slice of 4 bytes");
    let (version, big_endian) = header::detect(first4).map_err(|f| header_error(f, path))?;
    let header_len = match version {
        Version::Nifti1 => NIFTI1_HEADER_LEN,
        Version::Nifti2 => NIFTI2_HEADER_LEN,
    };
    let got = 4 + decode::fill(reader, &mut block[4..header_len])
        .map_err(|e| stream_error(e, gzip, path))?;
    if got < header_len {
        return Err(truncated(got, header_len));
    }
    let raw = header::parse(&block[..header_len], version, big_endian)
        .map_err(|f| header_error(f, path))?;
    interpret(&raw, header_len, path)
}

fn header_error(fault: HeaderFault, path: &Path) -> NiftiIoError {
    let path = path.to_path_buf();
    match fault {
        HeaderFault::NotNifti { sizeof_hdr } => NiftiIoError::NotNifti { path, sizeof_hdr },
        HeaderFault::BadMagic { found } => NiftiIoError::BadMagic {
            path,
            found: found.escape_ascii().to_string(),
        },
    }
}

/// Turns raw header fields into geometry and data layout, refusing what we cannot read.
fn interpret(raw: &RawHeader, header_len: usize, path: &Path) -> Result<Parsed, NiftiIoError> {
    let shape = spatial_shape(&raw.dim, path)?;
    let datatype =
        DataType::from_code(raw.datatype).ok_or_else(|| NiftiIoError::UnsupportedDatatype {
            path: path.to_path_buf(),
            code: raw.datatype,
        })?;
    let scaling = scaling(raw, path)?;
    let pixdim = [
        raw.geometry.pixdim[1],
        raw.geometry.pixdim[2],
        raw.geometry.pixdim[3],
    ];
    if pixdim.iter().any(|p| !p.is_finite()) {
        return Err(NiftiIoError::BadSpacing {
            path: path.to_path_buf(),
            pixdim,
        });
    }
    let geometry = if raw.dim[0] == 2 {
        // nnU-Net: simpleitk_reader_writer.py gives 2-D images z spacing 999 * max spacing.
        let [_, sy, sx] = raw.geometry.spacing_mm().0;
        Geometry::with_spacing(shape, raw.geometry, Spacing([999.0 * sy.max(sx), sy, sx]))
    } else {
        Geometry::new(shape, raw.geometry)
    };
    // nibabel moves a data offset inside the header (invalid) to just after it.
    let min_offset = header_len as f64 + 4.0;
    let data_offset = if raw.vox_offset.is_finite() && raw.vox_offset >= min_offset {
        raw.vox_offset as u64
    } else {
        min_offset as u64
    };
    let layout = DataLayout {
        datatype,
        big_endian: raw.big_endian,
        n_voxels: shape.n_voxels(),
        scaling,
    };
    let info = NiftiInfo {
        geometry,
        datatype,
        scaling,
        nifti2: raw.version == Version::Nifti2,
    };
    Ok(Parsed {
        info,
        layout,
        data_offset,
        header_len,
    })
}

/// `(z, y, x)` from `dim`, refusing bad, 1-D, 4-D and higher data.
fn spatial_shape(dim: &[i64; 8], path: &Path) -> Result<Shape3, NiftiIoError> {
    let ndim = dim[0];
    let dims = || dim.to_vec();
    if !(1..=7).contains(&ndim) || dim[1..=ndim as usize].iter().any(|&d| d < 1) {
        return Err(NiftiIoError::BadDims {
            path: path.to_path_buf(),
            dims: dims(),
        });
    }
    let used = &dim[1..=ndim as usize];
    if ndim >= 4 && used[3] > 1 {
        return Err(NiftiIoError::FourD {
            path: path.to_path_buf(),
            volumes: used[3],
        });
    }
    if ndim == 1 || used.iter().skip(4).any(|&d| d > 1) {
        return Err(NiftiIoError::UnsupportedDims {
            path: path.to_path_buf(),
            dims: dims(),
        });
    }
    let size = |i: usize| used.get(i).map_or(1, |&d| d as u128);
    let voxels = [size(0), size(1), size(2)]
        .into_iter()
        .try_fold(1u128, u128::checked_mul)
        .filter(|&n| n <= isize::MAX as u128);
    let Some(voxels) = voxels else {
        return Err(NiftiIoError::TooManyVoxels {
            path: path.to_path_buf(),
            dims: dims(),
        });
    };
    debug_assert!(voxels <= usize::MAX as u128);
    // Each size divides a product that fits isize, so each fits usize.
    Ok(Shape3([size(2), size(1), size(0)].map(|s| s as usize)))
}

/// nibabel's `get_slope_inter`: slope 0 or non-finite means no scaling; a valid slope with a
/// non-finite intercept is an error; `(1, 0)` is no scaling.
fn scaling(raw: &RawHeader, path: &Path) -> Result<Option<decode::Scaling>, NiftiIoError> {
    let (slope, inter) = (raw.scl_slope, raw.scl_inter);
    if slope == 0.0 || !slope.is_finite() {
        return Ok(None);
    }
    if !inter.is_finite() {
        return Err(NiftiIoError::BadScaling {
            path: path.to_path_buf(),
            slope,
            inter,
        });
    }
    Ok((slope != 1.0 || inter != 0.0).then_some(decode::Scaling { slope, inter }))
}

/// Refuses headers whose data cannot fit the file, before anything is allocated. Uncompressed:
/// exact. Gzip: the file cannot expand beyond [`MAX_DEFLATE_RATIO`].
fn check_size(parsed: &Parsed, len: u64, gzip: bool, path: &Path) -> Result<(), NiftiIoError> {
    let expected = parsed.layout.n_voxels as u128 * parsed.layout.datatype.size() as u128;
    if gzip {
        let most = u128::from(len) * MAX_DEFLATE_RATIO;
        if expected > most {
            return Err(NiftiIoError::GzipTooSmall {
                path: path.to_path_buf(),
                expected,
                compressed: len,
                most,
            });
        }
        return Ok(());
    }
    let available = u128::from(len.saturating_sub(parsed.data_offset));
    if expected > available {
        return Err(NiftiIoError::DataSizeMismatch {
            path: path.to_path_buf(),
            expected,
            found: available,
        });
    }
    Ok(())
}

/// Refuses a volume whose decoded voxels (`T` each) would pass the memory ceiling, before
/// anything is allocated.
fn check_memory<T>(parsed: &Parsed, path: &Path) -> Result<(), NiftiIoError> {
    let shape = parsed.info.geometry.shape().0;
    let bytes = limits::volume_bytes(1, shape, std::mem::size_of::<T>());
    limits::check_volume_bytes(bytes).map_err(|memory| NiftiIoError::OverCeiling {
        path: path.to_path_buf(),
        shape,
        memory,
    })
}

/// Skips header extensions up to the data offset.
fn skip_extensions(
    reader: &mut dyn Read,
    parsed: &Parsed,
    gzip: bool,
    path: &Path,
) -> Result<(), NiftiIoError> {
    let skip = parsed.data_offset - parsed.header_len as u64;
    let skipped = io::copy(&mut reader.take(skip), &mut io::sink())
        .map_err(|e| stream_error(e, gzip, path))?;
    if skipped < skip {
        let expected = parsed.layout.n_voxels as u128 * parsed.layout.datatype.size() as u128;
        return Err(NiftiIoError::DataSizeMismatch {
            path: path.to_path_buf(),
            expected,
            found: 0,
        });
    }
    Ok(())
}

fn decode_error<T, E: ValueFault>(
    fault: DecodeFault<E>,
    parsed: &Parsed,
    gzip: bool,
    path: &Path,
) -> NiftiIoError {
    match fault {
        DecodeFault::Short { got } => NiftiIoError::DataSizeMismatch {
            path: path.to_path_buf(),
            expected: parsed.layout.n_voxels as u128 * parsed.layout.datatype.size() as u128,
            found: u128::from(got),
        },
        DecodeFault::Io(e) => stream_error(e, gzip, path),
        DecodeFault::Value(v) => v.into_error(path),
        DecodeFault::OutOfMemory => NiftiIoError::OutOfMemory {
            path: path.to_path_buf(),
            bytes: parsed.layout.n_voxels as u128 * std::mem::size_of::<T>() as u128,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dimensions_that_overflow_or_wrap_are_refused() {
        let path = Path::new("forged.nii");
        let big = 1i64 << 32;
        // 2^65 overflows u64; 2^64 wraps to 0; 2^63 + 2^63 - 2 passes isize::MAX.
        for dim in [
            [3, big, big, 2, 1, 1, 1, 1],
            [3, big, big, 1, 1, 1, 1, 1],
            [3, i64::MAX, 2, 1, 1, 1, 1, 1],
        ] {
            let err = spatial_shape(&dim, path).unwrap_err();
            assert!(
                matches!(&err, NiftiIoError::TooManyVoxels { dims, .. } if dims == &dim),
                "{err}"
            );
        }
        let ok = spatial_shape(&[3, 4, 3, 2, 1, 1, 1, 1], path).unwrap();
        assert_eq!(ok, Shape3([2, 3, 4]));
    }
}
