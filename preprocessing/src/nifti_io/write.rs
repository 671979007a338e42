//! Atomic NIfTI-1 writing: float32 images, u8/u16 label maps, geometry copied unchanged.

use std::io::{self, BufWriter, Write};
use std::path::Path;

use flate2::write::GzEncoder;
use flate2::Compression;

use super::error::NiftiIoError;
use super::header::{encode_nifti1, WriteSpec};
use crate::volume::{Image, LabelMap, Volume};

/// Write buffer between the encoder and the file.
const WRITE_BUFFER: usize = 1 << 20;
/// Voxels converted to bytes per write call.
const CHUNK_VOXELS: usize = 1 << 16;

/// Writes `image` as a float32 NIfTI-1 file (`.nii`, or gzip at `level` 0..=9 for `.nii.gz`)
/// whose header carries `image.geometry`'s fields unchanged.
///
/// Atomic: the data goes to a temporary file in the same folder, which replaces `path` only when
/// complete, so a failure (e.g. a full disk) leaves any existing `path` as it was.
///
/// # Errors
/// [`NiftiIoError::ShapeMismatch`] unless the data is `(1, z, y, x)` with the geometry's shape;
/// `TooLarge`, `Extension`, `GzipLevel`, and `Write` for I/O failures.
pub fn write_image(path: &Path, image: &Image, level: u32) -> Result<(), NiftiIoError> {
    write_volume(path, image, level, (16, 32), |v: f32| v.to_le_bytes())
}

/// Writes `labels` as a NIfTI-1 label map: `u8` when its maximum is below 255, else `u16`
/// (nnU-Net: `SimpleITKIO.write_seg`), geometry unchanged. Atomic as [`write_image`].
///
/// # Errors
/// As [`write_image`].
pub fn write_label_map(path: &Path, labels: &LabelMap, level: u32) -> Result<(), NiftiIoError> {
    let max = labels.data.iter().copied().max().unwrap_or(0);
    if max < 255 {
        write_volume(path, labels, level, (2, 8), |v: u16| [v as u8])
    } else {
        write_volume(path, labels, level, (512, 16), |v: u16| v.to_le_bytes())
    }
}

/// Validates, then writes header and voxels (converted by `to_bytes`) atomically.
fn write_volume<T: Copy, const N: usize>(
    path: &Path,
    volume: &Volume<T>,
    level: u32,
    (datatype, bitpix): (i16, i16),
    to_bytes: impl Fn(T) -> [u8; N],
) -> Result<(), NiftiIoError> {
    let spec = write_spec(path, volume, datatype, bitpix)?;
    let gzip = gzip_by_extension(path)?;
    if level > 9 {
        return Err(NiftiIoError::GzipLevel {
            path: path.to_path_buf(),
            level,
        });
    }
    let header = encode_nifti1(&spec, &volume.geometry.header());
    let write_err = |source| NiftiIoError::Write {
        path: path.to_path_buf(),
        source,
    };
    let encode = |w: &mut dyn Write| -> io::Result<()> {
        w.write_all(&header)?;
        write_voxels(w, volume, &to_bytes)
    };
    // The project's one atomic writer: a temp file named after this process (so stale-temp
    // clean-up knows whose it is), created with the umask's permissions, synced, renamed.
    crate::write_atomic_with(path, |file| {
        let mut out = BufWriter::with_capacity(WRITE_BUFFER, file);
        if gzip {
            let mut gz = GzEncoder::new(&mut out, Compression::new(level));
            encode(&mut gz)?;
            gz.try_finish()?;
        } else {
            encode(&mut out)?;
        }
        out.flush()
    })
    .map_err(write_err)
}

/// Header dims for `volume`, checking it has one channel and its geometry's shape.
fn write_spec<T>(
    path: &Path,
    volume: &Volume<T>,
    datatype: i16,
    bitpix: i16,
) -> Result<WriteSpec, NiftiIoError> {
    let shape = volume.geometry.shape();
    if volume.n_channels() != 1 || volume.data_shape() != shape {
        let s = volume.data.shape();
        return Err(NiftiIoError::ShapeMismatch {
            path: path.to_path_buf(),
            data: [s[0], s[1], s[2], s[3]],
            geometry: shape,
        });
    }
    let [z, y, x] = shape.0;
    let dim = |n: usize| {
        i16::try_from(n).map_err(|_| NiftiIoError::TooLarge {
            path: path.to_path_buf(),
            shape,
        })
    };
    Ok(WriteSpec {
        dims_xyz: [dim(x)?, dim(y)?, dim(z)?],
        datatype,
        bitpix,
    })
}

/// `.nii.gz` → gzip, `.nii` → plain, anything else refused.
fn gzip_by_extension(path: &Path) -> Result<bool, NiftiIoError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    if name.ends_with(".nii.gz") {
        Ok(true)
    } else if name.ends_with(".nii") {
        Ok(false)
    } else {
        Err(NiftiIoError::Extension {
            path: path.to_path_buf(),
        })
    }
}

/// Streams the voxels in C order (x fastest, the NIfTI order) through a small byte buffer.
fn write_voxels<T: Copy, const N: usize>(
    w: &mut dyn Write,
    volume: &Volume<T>,
    to_bytes: &impl Fn(T) -> [u8; N],
) -> io::Result<()> {
    let mut bytes = vec![0u8; CHUNK_VOXELS * N];
    let mut put = |values: &[T]| -> io::Result<()> {
        for (dst, &v) in bytes.chunks_exact_mut(N).zip(values) {
            dst.copy_from_slice(&to_bytes(v));
        }
        w.write_all(&bytes[..values.len() * N])
    };
    if let Some(flat) = volume.data.as_slice() {
        return flat.chunks(CHUNK_VOXELS).try_for_each(put);
    }
    // Not in standard layout (e.g. a view turned into an owned array with other strides).
    let mut chunk = Vec::with_capacity(CHUNK_VOXELS);
    for &v in volume.data.iter() {
        chunk.push(v);
        if chunk.len() == CHUNK_VOXELS {
            put(&chunk)?;
            chunk.clear();
        }
    }
    put(&chunk)
}
