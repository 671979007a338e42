//! Probability files: `<case>.npz` as numpy's `savez_compressed` writes it, and the
//! `<case>.props.toml` sidecar that says where its voxels lie in the world.
//!
//! # `<case>.npz`
//! A zip archive (deflate) with one member, `probabilities.npy`: a `.npy` version 1.0 array of
//! little-endian float32, shape `(c, z, y, x)`, in the geometry of the input image (nnU-Net:
//! `export_prediction.py`, `np.savez_compressed(case.npz, probabilities=...)`). The `.npy`
//! header is byte for byte the one numpy writes. The reader also accepts `.npy` versions 2 and
//! 3, big-endian and float64 data (converted to float32, as nnU-Net's ensembling does) and
//! Fortran order.
//!
//! # `<case>.props.toml`
//! nnU-Net pickles the case's properties beside the `.npz`; autoseg writes a self-contained TOML
//! file with what is needed to turn the probabilities into a mask that overlays the input:
//! ```toml
//! schema_version = 1
//! file_ending = ".nii.gz"          # extension of masks written from these probabilities
//! regions_class_order = [1, 2, 3]  # only for region-based datasets; absent: argmax over labels
//!
//! [geometry]                       # autoseg_preprocessing::GeometryRecord of the input image
//! shape = [40, 64, 56]             # (z, y, x) voxels; equals the probabilities' last 3 axes
//! spacing = [2.5, 0.8, 0.8]        # (z, y, x) mm
//!
//! [geometry.header]                # autoseg_preprocessing::HeaderGeometry, unchanged
//! pixdim = [1.0, 0.8, 0.8, 2.5, 0.0, 0.0, 0.0, 0.0]   # NIfTI pixdim[0..8], unchanged
//! xyzt_units = 2
//! qform_code = 1
//! sform_code = 1
//! quatern = [0.0, 0.0, 0.0]        # quatern_b, quatern_c, quatern_d
//! qoffset = [0.0, 0.0, 0.0]        # qoffset_x, qoffset_y, qoffset_z
//! srow = [[0.8, 0.0, 0.0, 0.0], [0.0, 0.8, 0.0, 0.0], [0.0, 0.0, 2.5, 0.0]]
//! ```
//! The `[geometry]` table is the same [`GeometryRecord`] the preprocessed cache stores. Write it
//! with [`ProbabilityProperties::write`].

mod npy;
mod properties;

use std::fs::File;
use std::io::{self, BufReader, Write};
use std::path::{Path, PathBuf};

use autoseg_preprocessing::write_atomic_with;
use ndarray::{Array4, ArrayView4};
use zip::write::FileOptions;
use zip::{CompressionMethod, ZipArchive, ZipWriter};

pub use properties::ProbabilityProperties;

pub use npy::NpyFault;

use npy::{npy_header, read_npy, read_npy_header, write_f32_le};

/// The array name nnU-Net stores probabilities under (`np.load(f)['probabilities']`).
pub const PROBABILITIES_KEY: &str = "probabilities";

/// The largest expansion a deflate stream can achieve (1032:1), plus slack; a forged size cannot
/// make the reader allocate more than the member could ever hold.
const MAX_DEFLATE_RATIO: u64 = 1032;

/// Why a probability file or its sidecar cannot be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NpzError {
    /// Opening, reading or writing the file failed.
    #[error("{}: {action} failed", path.display())]
    Io {
        /// The file involved.
        path: PathBuf,
        /// "read" or "write".
        action: &'static str,
        /// The operating system's (or the zip writer's) error.
        #[source]
        source: io::Error,
    },
    /// The file is not a zip archive numpy could have written.
    #[error("{}: not a readable .npz (zip) archive", path.display())]
    Zip {
        /// The file.
        path: PathBuf,
        /// The zip reader's complaint.
        #[source]
        source: zip::result::ZipError,
    },
    /// The archive has no member for the requested array.
    #[error("{}: has no array '{name}' (arrays: {members:?})", path.display())]
    MissingArray {
        /// The file.
        path: PathBuf,
        /// The array asked for.
        name: String,
        /// The members the archive does have.
        members: Vec<String>,
    },
    /// The member is not a `.npy` array this reader supports.
    #[error("{}: array '{name}': {fault}", path.display())]
    Npy {
        /// The file.
        path: PathBuf,
        /// The array.
        name: String,
        /// What is wrong with its header or data.
        fault: NpyFault,
    },
    /// The array does not have the 4 axes `(c, z, y, x)` of a probability map.
    #[error("{}: array '{name}' has shape {shape:?}; probabilities are (c, z, y, x)", path.display())]
    Dimensions {
        /// The file.
        path: PathBuf,
        /// The array.
        name: String,
        /// Its shape.
        shape: Vec<usize>,
    },
    /// The sidecar is not valid TOML or does not follow the schema of this module.
    #[error("{}: not a valid probability properties file", path.display())]
    PropertiesToml {
        /// The sidecar.
        path: PathBuf,
        /// The parser's complaint, naming the key (boxed: it is large).
        #[source]
        source: Box<toml::de::Error>,
    },
    /// The sidecar could not be rendered as TOML.
    #[error("{}: cannot render probability properties as TOML", path.display())]
    PropertiesRender {
        /// The sidecar.
        path: PathBuf,
        /// The serializer's complaint (boxed: it is large).
        #[source]
        source: Box<toml::ser::Error>,
    },
    /// The sidecar was written by an incompatible version.
    #[error("{}: schema_version {found} is not supported (this autoseg reads {supported})", path.display())]
    PropertiesVersion {
        /// The sidecar.
        path: PathBuf,
        /// The version in the file.
        found: u32,
        /// The version this crate reads.
        supported: u32,
    },
}

/// `dir/<case>.npz`.
pub fn probabilities_file(dir: &Path, case: &str) -> PathBuf {
    dir.join(format!("{case}.npz"))
}

/// `dir/<case>.props.toml`.
pub fn properties_file(dir: &Path, case: &str) -> PathBuf {
    dir.join(format!("{case}.props.toml"))
}

/// Writes `probabilities` as `path` (`.npz` with one deflated member `probabilities.npy`,
/// float32), as `np.savez_compressed(path, probabilities=...)` does. Atomic: a temporary file
/// beside `path` is renamed over it when complete.
///
/// # Shapes
/// `probabilities`: `(c, z, y, x)`, any memory layout (written in C order).
///
/// # Errors
/// [`NpzError::Io`] naming `path`.
pub fn write_probabilities(
    path: &Path,
    probabilities: ArrayView4<'_, f32>,
) -> Result<(), NpzError> {
    let header = npy_header("<f4", probabilities.shape());
    let n_bytes = header.len() as u64 + 4 * probabilities.len() as u64;
    let options = FileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .large_file(n_bytes >= u64::from(u32::MAX));
    write_atomic_with(path, |file| {
        let mut zip = ZipWriter::new(file);
        zip.start_file(format!("{PROBABILITIES_KEY}.npy"), options)?;
        zip.write_all(&header)?;
        write_f32_le(&mut zip, probabilities)?;
        zip.finish()?;
        Ok(())
    })
    .map_err(|source| NpzError::Io {
        path: path.to_path_buf(),
        action: "write",
        source,
    })
}

/// Reads the `probabilities` array of an `.npz` file as float32 `(c, z, y, x)` in standard
/// layout (nnU-Net: `np.load(f)['probabilities']`, cast to float32).
///
/// # Errors
/// [`NpzError::Io`], [`NpzError::Zip`], [`NpzError::MissingArray`], [`NpzError::Npy`] (bad
/// header, unsupported dtype, truncated data) or [`NpzError::Dimensions`]; each names `path`.
pub fn read_probabilities(path: &Path) -> Result<Array4<f32>, NpzError> {
    let array = read_npz_array(path, PROBABILITIES_KEY)?;
    let shape = array.shape().to_vec();
    array
        .into_dimensionality()
        .map_err(|_| NpzError::Dimensions {
            path: path.to_path_buf(),
            name: PROBABILITIES_KEY.to_string(),
            shape,
        })
}

/// The shape of the `probabilities` array of an `.npz` file, from its header alone (cheap: it
/// decompresses only the first bytes).
///
/// # Errors
/// As [`read_probabilities`], except for the data.
pub fn read_probabilities_shape(path: &Path) -> Result<Vec<usize>, NpzError> {
    with_member(path, PROBABILITIES_KEY, |member, _| {
        read_npy_header(member).map(|(header, _)| header.shape)
    })
}

/// Reads array `name` of an `.npz` file as float32 of any dimension, standard layout.
fn read_npz_array(path: &Path, name: &str) -> Result<ndarray::ArrayD<f32>, NpzError> {
    with_member(path, name, |member, limit| read_npy(member, limit))
}

/// Opens member `<name>.npy` of the archive at `path` and hands it to `read` with the most bytes
/// it can hold; a fault `read` reports becomes [`NpzError::Npy`].
fn with_member<T>(
    path: &Path,
    name: &str,
    read: impl FnOnce(&mut zip::read::ZipFile<'_>, u64) -> Result<T, NpyFault>,
) -> Result<T, NpzError> {
    let file = File::open(path).map_err(|source| NpzError::Io {
        path: path.to_path_buf(),
        action: "read",
        source,
    })?;
    let zip_err = |source| NpzError::Zip {
        path: path.to_path_buf(),
        source,
    };
    let mut archive = ZipArchive::new(BufReader::new(file)).map_err(zip_err)?;
    let members: Vec<String> = archive.file_names().map(str::to_string).collect();
    let member_name = format!("{name}.npy");
    if !members.contains(&member_name) {
        return Err(NpzError::MissingArray {
            path: path.to_path_buf(),
            name: name.to_string(),
            members,
        });
    }
    let mut member = archive.by_name(&member_name).map_err(zip_err)?;
    let limit = member
        .size()
        .min(member.compressed_size().saturating_mul(MAX_DEFLATE_RATIO) + 1024);
    read(&mut member, limit).map_err(|fault| NpzError::Npy {
        path: path.to_path_buf(),
        name: name.to_string(),
        fault,
    })
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;
    use ndarray::Array;

    /// `tests/data/numpy_probabilities.npz`, written by numpy 2.4.6 with:
    /// ```text
    /// p = (np.arange(2*3*4*5, dtype=np.float32).reshape(2, 3, 4, 5) / 7).astype(np.float32)
    /// np.savez_compressed('numpy_probabilities.npz', probabilities=p)
    /// ```
    fn numpy_file() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/numpy_probabilities.npz")
    }

    fn ramp() -> Array4<f32> {
        Array::from_shape_fn((2, 3, 4, 5), |(c, z, y, x)| {
            ((((c * 3 + z) * 4 + y) * 5 + x) as f32) / 7.0
        })
    }

    #[test]
    fn reads_what_numpy_wrote() {
        let read = read_probabilities(&numpy_file()).unwrap();
        assert_eq!(read, ramp());
    }

    #[test]
    fn header_is_byte_for_byte_numpys() {
        // The first 128 bytes of `probabilities.npy` inside the numpy-written file.
        let file = File::open(numpy_file()).unwrap();
        let mut archive = ZipArchive::new(file).unwrap();
        let mut member = archive.by_name("probabilities.npy").unwrap();
        let mut numpy = vec![0u8; 128];
        member.read_exact(&mut numpy).unwrap();
        assert_eq!(npy_header("<f4", &[2, 3, 4, 5]), numpy);
    }

    #[test]
    fn round_trips_any_layout() {
        let dir = tempfile::tempdir().unwrap();
        let path = probabilities_file(dir.path(), "case_000");
        let mut permuted = ramp();
        permuted.swap_axes(2, 3);
        write_probabilities(&path, permuted.view()).unwrap();
        assert_eq!(read_probabilities(&path).unwrap(), permuted);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.npz");
        std::fs::write(&path, b"not a zip").unwrap();
        let err = read_probabilities(&path).unwrap_err();
        assert!(matches!(err, NpzError::Zip { .. }));
        assert!(err.to_string().contains("a.npz"), "{err}");
        let voxel = Array::from_shape_vec((3, 1, 1, 1), vec![0.1f32, 0.2, 0.7]).unwrap();
        write_probabilities(&path, voxel.view()).unwrap();
        assert!(matches!(
            read_npz_array(&path, "logits"),
            Err(NpzError::MissingArray { members, .. }) if members == ["probabilities.npy"]
        ));
    }
}
