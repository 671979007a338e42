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

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use autoseg_preprocessing::{write_atomic, write_atomic_with, Geometry, GeometryRecord};
use ndarray::{Array4, ArrayView4, IxDyn, ShapeBuilder};
use serde::{Deserialize, Serialize};
use zip::write::FileOptions;
use zip::{CompressionMethod, ZipArchive, ZipWriter};

use crate::SegmentationRule;

/// The array name nnU-Net stores probabilities under (`np.load(f)['probabilities']`).
pub const PROBABILITIES_KEY: &str = "probabilities";

/// The sidecar schema this crate writes and reads.
const PROPERTIES_SCHEMA_VERSION: u32 = 1;
/// numpy `format.MAGIC_PREFIX`.
const NPY_MAGIC: &[u8; 6] = b"\x93NUMPY";
/// numpy `format.ARRAY_ALIGN`: the header is padded so that the data starts at a multiple.
const NPY_ALIGN: usize = 64;
/// numpy `format.GROWTH_AXIS_MAX_DIGITS`: spare header space for in-place shape growth.
const NPY_GROWTH_DIGITS: usize = 21;
/// Bytes converted per read or write call (a multiple of every item size).
const CHUNK_BYTES: usize = 1 << 20;
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
        fault: String,
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
    read: impl FnOnce(&mut zip::read::ZipFile<'_>, u64) -> Result<T, String>,
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

/// The element types the reader converts to float32.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dtype {
    F32 { little_endian: bool },
    F64 { little_endian: bool },
}

impl Dtype {
    fn parse(descr: &str) -> Result<Dtype, String> {
        match descr {
            "<f4" => Ok(Dtype::F32 {
                little_endian: true,
            }),
            ">f4" => Ok(Dtype::F32 {
                little_endian: false,
            }),
            "<f8" => Ok(Dtype::F64 {
                little_endian: true,
            }),
            ">f8" => Ok(Dtype::F64 {
                little_endian: false,
            }),
            _ => Err(format!("dtype '{descr}' is not float32 or float64")),
        }
    }

    fn size(self) -> usize {
        match self {
            Dtype::F32 { .. } => 4,
            Dtype::F64 { .. } => 8,
        }
    }

    /// One value from exactly [`Dtype::size`] bytes.
    fn decode(self, bytes: &[u8]) -> f32 {
        match self {
            Dtype::F32 { little_endian } => {
                let b: [u8; 4] = bytes.try_into().expect("chunks_exact yields 4 bytes");
                if little_endian {
                    f32::from_le_bytes(b)
                } else {
                    f32::from_be_bytes(b)
                }
            }
            Dtype::F64 { little_endian } => {
                let b: [u8; 8] = bytes.try_into().expect("chunks_exact yields 8 bytes");
                let v = if little_endian {
                    f64::from_le_bytes(b)
                } else {
                    f64::from_be_bytes(b)
                };
                v as f32
            }
        }
    }
}

/// The dictionary of a `.npy` header.
#[derive(Clone, Debug, PartialEq, Eq)]
struct NpyHeader {
    descr: String,
    fortran_order: bool,
    shape: Vec<usize>,
}

/// Reads one `.npy` stream (header and data); `limit` bounds the bytes it may hold.
fn read_npy(reader: &mut impl Read, limit: u64) -> Result<ndarray::ArrayD<f32>, String> {
    let (header, header_len) = read_npy_header(reader)?;
    let dtype = Dtype::parse(&header.descr)?;
    let n_values = header
        .shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| format!("shape {:?} is too large", header.shape))?;
    let needed = (n_values as u64)
        .checked_mul(dtype.size() as u64)
        .and_then(|n| n.checked_add(header_len as u64))
        .ok_or_else(|| format!("shape {:?} is too large", header.shape))?;
    if needed > limit {
        return Err(format!(
            "shape {:?} needs {needed} bytes but the member holds at most {limit}",
            header.shape
        ));
    }
    let values = read_values(reader, dtype, n_values)
        .map_err(|e| format!("data shorter than shape {:?} needs: {e}", header.shape))?;
    let shape = IxDyn(&header.shape);
    let array = if header.fortran_order {
        let f = ndarray::ArrayD::from_shape_vec(shape.f(), values);
        f.map(|a| a.as_standard_layout().into_owned())
    } else {
        ndarray::ArrayD::from_shape_vec(shape, values)
    };
    array.map_err(|e| format!("shape {:?}: {e}", header.shape))
}

/// Reads magic, version and header; returns the header and its total length in bytes.
fn read_npy_header(reader: &mut impl Read) -> Result<(NpyHeader, usize), String> {
    let mut prefix = [0u8; 8];
    reader
        .read_exact(&mut prefix)
        .map_err(|e| format!("no .npy header: {e}"))?;
    if &prefix[..6] != NPY_MAGIC {
        return Err("not a .npy array (wrong magic bytes)".to_string());
    }
    let (major, minor) = (prefix[6], prefix[7]);
    let len_bytes = match major {
        1 => 2,
        2 | 3 => 4,
        _ => return Err(format!(".npy version {major}.{minor} is not supported")),
    };
    let mut len_buf = [0u8; 4];
    reader
        .read_exact(&mut len_buf[..len_bytes])
        .map_err(|e| format!("truncated .npy header: {e}"))?;
    let dict_len = u32::from_le_bytes(len_buf) as usize;
    let mut dict = vec![0u8; dict_len];
    reader
        .read_exact(&mut dict)
        .map_err(|e| format!("truncated .npy header: {e}"))?;
    // Versions 1 and 2 are latin-1, version 3 UTF-8; a valid header dict is ASCII either way.
    let text = String::from_utf8(dict).map_err(|_| "header is not ASCII".to_string())?;
    let header = parse_header_dict(&text)?;
    Ok((header, 8 + len_bytes + dict_len))
}

/// Reads `n` values of `dtype`, converting chunk by chunk.
fn read_values(reader: &mut impl Read, dtype: Dtype, n: usize) -> io::Result<Vec<f32>> {
    let size = dtype.size();
    let mut values = Vec::with_capacity(n);
    let mut buf = vec![0u8; CHUNK_BYTES];
    while values.len() < n {
        let take = ((n - values.len()) * size).min(CHUNK_BYTES);
        reader.read_exact(&mut buf[..take])?;
        values.extend(buf[..take].chunks_exact(size).map(|b| dtype.decode(b)));
    }
    Ok(values)
}

/// Writes the values of `array` in C order as little-endian float32.
fn write_f32_le(out: &mut impl Write, array: ArrayView4<'_, f32>) -> io::Result<()> {
    let mut buf = Vec::with_capacity(CHUNK_BYTES);
    for &v in array.iter() {
        buf.extend_from_slice(&v.to_le_bytes());
        if buf.len() == CHUNK_BYTES {
            out.write_all(&buf)?;
            buf.clear();
        }
    }
    out.write_all(&buf)
}

/// The `.npy` v1.0 header numpy (`format.write_array_header_1_0`) writes for a C-order array:
/// magic, version, length, the dict, spare space and padding to 64 bytes, then a newline.
fn npy_header(descr: &str, shape: &[usize]) -> Vec<u8> {
    let shape_repr = match shape {
        [n] => format!("({n},)"),
        _ => {
            let parts: Vec<String> = shape.iter().map(usize::to_string).collect();
            format!("({})", parts.join(", "))
        }
    };
    let mut dict =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_repr}, }}");
    if let Some(first) = shape.first() {
        let digits = first.to_string().len();
        dict.push_str(&" ".repeat(NPY_GROWTH_DIGITS.saturating_sub(digits)));
    }
    // numpy `_wrap_header`: the dict, `padlen` spaces and a newline fill the header to 64 bytes.
    let dict_with_newline = dict.len() + 1;
    let padding = NPY_ALIGN - (NPY_MAGIC.len() + 2 + 2 + dict_with_newline) % NPY_ALIGN;
    let header_len = dict_with_newline + padding;
    let mut out = Vec::with_capacity(10 + header_len);
    out.extend_from_slice(NPY_MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(
        &u16::try_from(header_len)
            .expect("a 4-D header is far below 65536 bytes")
            .to_le_bytes(),
    );
    out.extend_from_slice(dict.as_bytes());
    out.extend(std::iter::repeat_n(b' ', padding));
    out.push(b'\n');
    out
}

/// Parses the Python dict literal of a `.npy` header: `'descr'`, `'fortran_order'` and
/// `'shape'`, in any order.
fn parse_header_dict(text: &str) -> Result<NpyHeader, String> {
    let bad = |what: &str| format!("malformed header {what}: {}", text.trim_end());
    let inner = text
        .trim()
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .ok_or_else(|| bad("(not a dict)"))?;
    let (mut descr, mut fortran_order, mut shape) = (None, None, None);
    let mut rest = inner.trim_start();
    while !rest.is_empty() {
        let (key, after_key) = quoted(rest).ok_or_else(|| bad("(key)"))?;
        let after_colon = after_key
            .trim_start()
            .strip_prefix(':')
            .ok_or_else(|| bad("(missing ':')"))?
            .trim_start();
        let after_value = match key {
            "descr" => {
                let (value, after) = quoted(after_colon).ok_or_else(|| bad("(descr)"))?;
                descr = Some(value.to_string());
                after
            }
            "fortran_order" => {
                let (value, after) = boolean(after_colon).ok_or_else(|| bad("(fortran_order)"))?;
                fortran_order = Some(value);
                after
            }
            "shape" => {
                let (value, after) = tuple(after_colon).ok_or_else(|| bad("(shape)"))?;
                shape = Some(value);
                after
            }
            _ => return Err(bad(&format!("(unknown key '{key}')"))),
        };
        let after_value = after_value.trim_start();
        rest = after_value
            .strip_prefix(',')
            .unwrap_or(after_value)
            .trim_start();
        if rest.len() == after_value.len() && !rest.is_empty() {
            return Err(bad("(missing ',')"));
        }
    }
    match (descr, fortran_order, shape) {
        (Some(descr), Some(fortran_order), Some(shape)) => Ok(NpyHeader {
            descr,
            fortran_order,
            shape,
        }),
        _ => Err(bad("(needs descr, fortran_order and shape)")),
    }
}

/// A `'...'` or `"..."` literal at the start of `s`, and what follows it.
fn quoted(s: &str) -> Option<(&str, &str)> {
    let quote = s.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let body = &s[1..];
    let end = body.find(quote)?;
    Some((&body[..end], &body[end + 1..]))
}

/// `True` or `False` at the start of `s`, and what follows it.
fn boolean(s: &str) -> Option<(bool, &str)> {
    if let Some(rest) = s.strip_prefix("True") {
        Some((true, rest))
    } else {
        s.strip_prefix("False").map(|rest| (false, rest))
    }
}

/// A tuple of non-negative integers such as `()`, `(5,)` or `(2, 3)` (Python 2 longs `3L` too)
/// at the start of `s`, and what follows it.
fn tuple(s: &str) -> Option<(Vec<usize>, &str)> {
    let body = s.strip_prefix('(')?;
    let end = body.find(')')?;
    let dims = body[..end]
        .split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(|part| part.trim_end_matches('L').parse::<usize>().ok())
        .collect::<Option<Vec<usize>>>()?;
    Some((dims, &body[end + 1..]))
}

/// What a probability file needs besides its voxels to become a mask (the `<case>.props.toml`
/// sidecar; format in the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct ProbabilityProperties {
    /// Geometry of the input image; the probabilities' last three axes have its shape.
    pub geometry: Geometry,
    /// Extension of masks written from these probabilities, e.g. `.nii.gz`.
    pub file_ending: String,
    /// For region-based datasets, nnU-Net's `regions_class_order` (one output label per
    /// channel); `None` for label-based datasets (argmax).
    pub regions_class_order: Option<Vec<u16>>,
}

/// The sidecar as written: [`ProbabilityProperties`] with a schema version.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PropertiesFile {
    schema_version: u32,
    file_ending: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    regions_class_order: Option<Vec<u16>>,
    geometry: GeometryRecord,
}

impl ProbabilityProperties {
    /// How these probabilities become labels: argmax, or thresholded regions.
    pub fn segmentation_rule(&self) -> SegmentationRule {
        match &self.regions_class_order {
            Some(order) => SegmentationRule::Regions {
                regions_class_order: order.clone(),
            },
            None => SegmentationRule::Argmax,
        }
    }

    /// Writes the sidecar atomically.
    ///
    /// # Errors
    /// [`NpzError::PropertiesRender`] or [`NpzError::Io`], naming `path`.
    pub fn write(&self, path: &Path) -> Result<(), NpzError> {
        let file = PropertiesFile {
            schema_version: PROPERTIES_SCHEMA_VERSION,
            file_ending: self.file_ending.clone(),
            regions_class_order: self.regions_class_order.clone(),
            geometry: GeometryRecord::from(&self.geometry),
        };
        let text = toml::to_string(&file).map_err(|source| NpzError::PropertiesRender {
            path: path.to_path_buf(),
            source: Box::new(source),
        })?;
        write_atomic(path, text.as_bytes()).map_err(|source| NpzError::Io {
            path: path.to_path_buf(),
            action: "write",
            source,
        })
    }

    /// Reads a sidecar.
    ///
    /// # Errors
    /// [`NpzError::Io`], [`NpzError::PropertiesToml`] (naming the bad key) or
    /// [`NpzError::PropertiesVersion`], each naming `path`.
    pub fn read(path: &Path) -> Result<ProbabilityProperties, NpzError> {
        let text = std::fs::read_to_string(path).map_err(|source| NpzError::Io {
            path: path.to_path_buf(),
            action: "read",
            source,
        })?;
        let file: PropertiesFile =
            toml::from_str(&text).map_err(|source| NpzError::PropertiesToml {
                path: path.to_path_buf(),
                source: Box::new(source),
            })?;
        if file.schema_version != PROPERTIES_SCHEMA_VERSION {
            return Err(NpzError::PropertiesVersion {
                path: path.to_path_buf(),
                found: file.schema_version,
                supported: PROPERTIES_SCHEMA_VERSION,
            });
        }
        Ok(ProbabilityProperties {
            geometry: file.geometry.into(),
            file_ending: file.file_ending,
            regions_class_order: file.regions_class_order,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use autoseg_preprocessing::{HeaderGeometry, Shape3, Spacing};
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
    fn reads_fortran_order_big_endian_float64() {
        let values = [1.5f64, 2.5, 3.5, 4.5, 5.5, 6.5];
        let dict = "{'descr': '>f8', 'fortran_order': True, 'shape': (1, 1, 2, 3), }\n";
        let mut bytes = b"\x93NUMPY\x02\x00".to_vec();
        bytes.extend_from_slice(&(dict.len() as u32).to_le_bytes());
        bytes.extend_from_slice(dict.as_bytes());
        for v in values {
            bytes.extend_from_slice(&v.to_be_bytes());
        }
        let array = read_npy(&mut bytes.as_slice(), u64::MAX).unwrap();
        // Fortran order: x varies slowest, so [y][x] = values[x * 2 + y].
        let expected =
            Array::from_shape_vec(IxDyn(&[1, 1, 2, 3]), vec![1.5, 3.5, 5.5, 2.5, 4.5, 6.5]);
        assert_eq!(array, expected.unwrap());
    }

    #[test]
    fn rejects_bad_members_naming_the_fault() {
        let header = npy_header("<i8", &[2]);
        let err = read_npy(&mut header.as_slice(), u64::MAX).unwrap_err();
        assert!(err.contains("'<i8' is not float32"), "{err}");
        let mut short = npy_header("<f4", &[4]);
        short.extend_from_slice(&[0; 8]);
        let err = read_npy(&mut short.as_slice(), u64::MAX).unwrap_err();
        assert!(err.contains("data shorter"), "{err}");
        let forged = npy_header("<f4", &[1 << 40]);
        let err = read_npy(&mut forged.as_slice(), 4096).unwrap_err();
        assert!(err.contains("at most 4096"), "{err}");
        assert!(parse_header_dict("{'descr': '<f4', 'shape': (2,)}").is_err());
        assert!(read_npy(&mut &b"PK\x03\x04 not npy"[..], 100).is_err());
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

    #[test]
    fn properties_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = properties_file(dir.path(), "case_000");
        let mut header = HeaderGeometry::axis_aligned(Spacing([2.5, 0.8, 0.8]), [1.0, -2.0, 3.5]);
        header.quatern = [0.0, 0.0, 1.0];
        header.srow[0][1] = 0.125;
        let props = ProbabilityProperties {
            geometry: Geometry::new(Shape3([4, 5, 6]), header),
            file_ending: ".nii.gz".to_string(),
            regions_class_order: Some(vec![1, 2]),
        };
        props.write(&path).unwrap();
        assert_eq!(ProbabilityProperties::read(&path).unwrap(), props);
        assert_eq!(
            props.segmentation_rule(),
            SegmentationRule::Regions {
                regions_class_order: vec![1, 2]
            }
        );
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(
            &path,
            text.replace("schema_version = 1", "schema_version = 9"),
        )
        .unwrap();
        assert!(matches!(
            ProbabilityProperties::read(&path),
            Err(NpzError::PropertiesVersion { found: 9, .. })
        ));
        std::fs::write(&path, text.replace("xyzt_units", "units")).unwrap();
        let err = ProbabilityProperties::read(&path).unwrap_err();
        assert!(matches!(err, NpzError::PropertiesToml { .. }));
    }
}
