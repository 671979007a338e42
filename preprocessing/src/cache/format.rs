//! The byte layout of a case file, writing it atomically and reading it back whole or by patch.
//!
//! ```text
//! offset  size  field (all little-endian)
//!      0     8  magic b"ASEGCASE"
//!      8     4  format version (u32, CACHE_FORMAT_VERSION)
//!     12     4  channels c (u32)
//!     16    24  shape z, y, x (u64 each)
//!     40     8  stamp key (u64): the key of the stamp the file was made under
//!     48     8  source key (u64): size and mtime of the raw files it was made from
//!     56     8  properties length p (u64)
//!     64    16  reserved, zero
//!     80     p  properties, JSON (see properties.rs)
//!      …        zero padding to a multiple of 64
//!      D  4czyx image, f32 (c, z, y, x), C order
//!  D+4czyx 2zyx segmentation, i16 (1, z, y, x), C order
//! ```

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use ndarray::{Array4, ArrayView4};

use super::properties::PropertiesFile;
use super::CacheError;
use crate::foreground::ClassLocations;
use crate::pipeline::{CaseProperties, PreprocessedCase};
use crate::write_atomic_with;

/// Version of the case-file layout written by this build.
pub const CACHE_FORMAT_VERSION: u32 = 2;

const MAGIC: [u8; 8] = *b"ASEGCASE";
const HEADER_LEN: u64 = 80;
const ALIGN: u64 = 64;
/// Values converted per write call.
const CHUNK: usize = 1 << 16;

/// The keys a case file records, to tell later runs whether it is still current.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CaseKeys {
    /// The stamp key of the configuration ([`super::StampFields::key`]).
    pub stamp: u64,
    /// The key of the raw files ([`super::source_key`]).
    pub source: u64,
}

/// The fixed-size header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Header {
    n_channels: usize,
    shape: [usize; 3],
    keys: CaseKeys,
    props_len: u64,
}

impl Header {
    fn encode(&self) -> [u8; HEADER_LEN as usize] {
        let mut out = [0u8; HEADER_LEN as usize];
        out[0..8].copy_from_slice(&MAGIC);
        out[8..12].copy_from_slice(&CACHE_FORMAT_VERSION.to_le_bytes());
        out[12..16].copy_from_slice(&(self.n_channels as u32).to_le_bytes());
        for (i, n) in self.shape.iter().enumerate() {
            out[16 + 8 * i..24 + 8 * i].copy_from_slice(&(*n as u64).to_le_bytes());
        }
        out[40..48].copy_from_slice(&self.keys.stamp.to_le_bytes());
        out[48..56].copy_from_slice(&self.keys.source.to_le_bytes());
        out[56..64].copy_from_slice(&self.props_len.to_le_bytes());
        out
    }

    fn decode(bytes: &[u8; HEADER_LEN as usize], path: &Path) -> Result<Header, CacheError> {
        if bytes[0..8] != MAGIC {
            return Err(CacheError::NotACaseFile {
                path: path.to_path_buf(),
            });
        }
        let u32_at = |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().expect("4 bytes"));
        let u64_at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().expect("8 bytes"));
        let version = u32_at(8);
        if version != CACHE_FORMAT_VERSION {
            return Err(CacheError::UnsupportedVersion {
                path: path.to_path_buf(),
                found: version,
                supported: CACHE_FORMAT_VERSION,
            });
        }
        let to_usize = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        Ok(Header {
            n_channels: u32_at(12) as usize,
            shape: std::array::from_fn(|i| to_usize(u64_at(16 + 8 * i))),
            keys: CaseKeys {
                stamp: u64_at(40),
                source: u64_at(48),
            },
            props_len: u64_at(56),
        })
    }

    /// `(data offset, seg offset, file length)`, or `None` on overflow.
    fn layout(&self) -> Option<(u64, u64, u64)> {
        let n_voxels = self
            .shape
            .iter()
            .try_fold(1u64, |acc, &n| acc.checked_mul(n as u64))?;
        let data = (HEADER_LEN.checked_add(self.props_len)?).checked_next_multiple_of(ALIGN)?;
        let data_len = n_voxels
            .checked_mul(self.n_channels as u64)?
            .checked_mul(4)?;
        let seg = data.checked_add(data_len)?;
        let end = seg.checked_add(n_voxels.checked_mul(2)?)?;
        Some((data, seg, end))
    }
}

/// A little-endian scalar stored in case files.
trait LeScalar: Copy + Default {
    const SIZE: usize;
    fn put(self, out: &mut [u8]);
    fn get(bytes: &[u8]) -> Self;
}

impl LeScalar for f32 {
    const SIZE: usize = 4;
    fn put(self, out: &mut [u8]) {
        out.copy_from_slice(&self.to_le_bytes());
    }
    fn get(bytes: &[u8]) -> f32 {
        f32::from_le_bytes(bytes.try_into().expect("chunks_exact(4) yields 4 bytes"))
    }
}

impl LeScalar for i16 {
    const SIZE: usize = 2;
    fn put(self, out: &mut [u8]) {
        out.copy_from_slice(&self.to_le_bytes());
    }
    fn get(bytes: &[u8]) -> i16 {
        i16::from_le_bytes(bytes.try_into().expect("chunks_exact(2) yields 2 bytes"))
    }
}

/// Writes `case` to `path` atomically (temp file, fsync, rename), recording `keys`.
///
/// # Errors
/// [`CacheError::MissingSegmentation`] for a case without segmentation,
/// [`CacheError::Serialize`] when the properties hold a non-finite number, and
/// [`CacheError::Io`] for I/O failures (an existing file at `path` is then left as it was).
pub fn write_case(path: &Path, case: &PreprocessedCase, keys: CaseKeys) -> Result<(), CacheError> {
    let p = &case.properties;
    let seg = case
        .seg
        .as_ref()
        .ok_or_else(|| CacheError::MissingSegmentation {
            case: p.case.clone(),
        })?;
    let props = serde_json::to_vec(&PropertiesFile::of(p)).map_err(|e| CacheError::Serialize {
        case: p.case.clone(),
        what: "properties",
        fault: e.to_string(),
    })?;
    let (c, z, y, x) = case.data.dim();
    let header = Header {
        n_channels: c,
        shape: [z, y, x],
        keys,
        props_len: props.len() as u64,
    };
    check_seg_shape(seg.view(), header.shape, path)?;
    let (data_offset, _, _) = header
        .layout()
        .ok_or_else(|| corrupt(path, "volume too large"))?;
    let padding = (data_offset - HEADER_LEN - props.len() as u64) as usize;
    write_atomic_with(path, |file| {
        let mut out = BufWriter::with_capacity(1 << 20, file);
        out.write_all(&header.encode())?;
        out.write_all(&props)?;
        out.write_all(&vec![0u8; padding])?;
        write_values(&mut out, case.data.view())?;
        write_values(&mut out, seg.view())?;
        out.flush()
    })
    .map_err(|e| CacheError::io(path, "cannot write the preprocessed case", e))
}

fn check_seg_shape(
    seg: ArrayView4<'_, i16>,
    shape: [usize; 3],
    path: &Path,
) -> Result<(), CacheError> {
    let (c, z, y, x) = seg.dim();
    if c == 1 && [z, y, x] == shape {
        return Ok(());
    }
    Err(corrupt(
        path,
        &format!(
            "segmentation shape {:?} does not match image shape {shape:?}",
            seg.shape()
        ),
    ))
}

/// Writes `values` in logical (C) order as little-endian bytes, in chunks.
fn write_values<T: LeScalar>(
    out: &mut impl Write,
    values: ArrayView4<'_, T>,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; CHUNK * T::SIZE];
    let mut n = 0;
    for &v in values.iter() {
        v.put(&mut buf[n * T::SIZE..(n + 1) * T::SIZE]);
        n += 1;
        if n == CHUNK {
            out.write_all(&buf)?;
            n = 0;
        }
    }
    out.write_all(&buf[..n * T::SIZE])
}

fn corrupt(path: &Path, fault: &str) -> CacheError {
    CacheError::Corrupt {
        path: path.to_path_buf(),
        fault: fault.to_string(),
    }
}

/// An opened case file: header and properties in memory, voxels read on demand.
///
/// Reads open the file anew each time (no descriptor is held), so thousands of cases can be
/// open at once and any number of threads may read concurrently.
#[derive(Clone, Debug, PartialEq)]
pub struct CachedCase {
    path: PathBuf,
    header: Header,
    data_offset: u64,
    seg_offset: u64,
    properties: CaseProperties,
}

impl CachedCase {
    /// Opens a case file and reads its header and properties.
    ///
    /// # Errors
    /// [`CacheError::Io`], [`CacheError::NotACaseFile`], [`CacheError::UnsupportedVersion`],
    /// [`CacheError::Properties`], and [`CacheError::Corrupt`] when the file's length does not
    /// match its header.
    pub fn open(path: &Path) -> Result<CachedCase, CacheError> {
        let mut file = File::open(path).map_err(|e| CacheError::io(path, "cannot open", e))?;
        let header = read_header_from(&mut file, path)?;
        let (data_offset, seg_offset, end) = header
            .layout()
            .ok_or_else(|| corrupt(path, "header sizes overflow"))?;
        let len = file
            .metadata()
            .map_err(|e| CacheError::io(path, "cannot stat", e))?
            .len();
        if len != end {
            let fault = format!("file has {len} bytes, its header describes {end}");
            return Err(corrupt(path, &fault));
        }
        let mut props = vec![0u8; header.props_len as usize];
        file.read_exact(&mut props)
            .map_err(|e| CacheError::io(path, "cannot read the properties", e))?;
        let props: PropertiesFile =
            serde_json::from_slice(&props).map_err(|source| CacheError::Properties {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(CachedCase {
            path: path.to_path_buf(),
            header,
            data_offset,
            seg_offset,
            properties: props.into_properties(),
        })
    }

    /// Whether the file at `path` is a complete case file made under `keys` (reads only its
    /// header; any failure to read counts as "not current").
    pub fn is_current(path: &Path, keys: CaseKeys) -> bool {
        let header = File::open(path)
            .map_err(|e| CacheError::io(path, "cannot open", e))
            .and_then(|mut file| read_header_from(&mut file, path));
        matches!(header, Ok(h) if h.keys == keys)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Spatial shape `(z, y, x)`.
    pub fn shape(&self) -> [usize; 3] {
        self.header.shape
    }

    /// Number of image channels.
    pub fn n_channels(&self) -> usize {
        self.header.n_channels
    }

    /// The keys the file was made under.
    pub fn keys(&self) -> CaseKeys {
        self.header.keys
    }

    /// The case's properties.
    pub fn properties(&self) -> &CaseProperties {
        &self.properties
    }

    /// The sampled foreground locations (the training sampler's oversampling targets).
    pub fn class_locations(&self) -> &[ClassLocations] {
        &self.properties.class_locations
    }

    /// The whole image `(c, z, y, x)` and segmentation `(1, z, y, x)`.
    ///
    /// # Errors
    /// [`CacheError::Io`] when the file cannot be read.
    pub fn read_all(&self) -> Result<(Array4<f32>, Array4<i16>), CacheError> {
        self.read_patch([0; 3], self.shape())
    }

    /// The box `[lo, lo + size)` of image `(c, *size)` and segmentation `(1, *size)`; where
    /// the box leaves the volume, the image is 0 and the segmentation −1 (nnU-Net's
    /// `crop_and_pad_nd` padding of training patches). One positioned read per channel and
    /// plane that the box meets.
    ///
    /// # Errors
    /// [`CacheError::Io`] when the file cannot be read.
    pub fn read_patch(
        &self,
        lo: [isize; 3],
        size: [usize; 3],
    ) -> Result<(Array4<f32>, Array4<i16>), CacheError> {
        let file =
            File::open(&self.path).map_err(|e| CacheError::io(&self.path, "cannot open", e))?;
        let io = |e| CacheError::io(&self.path, "cannot read voxels", e);
        let c = self.header.n_channels;
        let data = self
            .read_box(&file, self.data_offset, c, lo, size, 0.0f32)
            .map_err(io)?;
        let seg = self
            .read_box(&file, self.seg_offset, 1, lo, size, -1i16)
            .map_err(io)?;
        Ok((data, seg))
    }

    /// Reads the intersection of the box with the volume into an array filled with `pad`.
    fn read_box<T: LeScalar + crate::recycle::Pooled>(
        &self,
        file: &File,
        offset: u64,
        n_channels: usize,
        lo: [isize; 3],
        size: [usize; 3],
        pad: T,
    ) -> std::io::Result<Array4<T>> {
        let mut out = crate::recycle::filled_array([n_channels, size[0], size[1], size[2]], pad);
        let [nz, ny, nx] = self.header.shape;
        let Some([rz, ry, rx]) = intersect(lo, size, [nz, ny, nx]) else {
            return Ok(out);
        };
        let row_bytes = nx * T::SIZE;
        let mut buf = vec![0u8; ry.len() * row_bytes];
        let dst = |r: &std::ops::Range<usize>, axis: usize| (r.start as isize - lo[axis]) as usize;
        let (dz, dy, dx) = (dst(&rz, 0), dst(&ry, 1), dst(&rx, 2));
        for ch in 0..n_channels {
            for z in rz.clone() {
                let first_row = (ch * nz + z) * ny + ry.start;
                read_at(file, &mut buf, offset + (first_row * row_bytes) as u64)?;
                for (row_idx, row) in buf.chunks_exact(row_bytes).enumerate() {
                    let src = &row[rx.start * T::SIZE..rx.end * T::SIZE];
                    let mut target =
                        out.slice_mut(ndarray::s![ch, z - rz.start + dz, dy + row_idx, dx..]);
                    for (t, bytes) in target.iter_mut().zip(src.chunks_exact(T::SIZE)) {
                        *t = T::get(bytes);
                    }
                }
            }
        }
        Ok(out)
    }
}

/// Per axis, the voxels of `[lo, lo + size)` inside `[0, shape)`; `None` if empty.
fn intersect(
    lo: [isize; 3],
    size: [usize; 3],
    shape: [usize; 3],
) -> Option<[std::ops::Range<usize>; 3]> {
    let ranges: [std::ops::Range<usize>; 3] = std::array::from_fn(|axis| {
        let extent = shape[axis] as isize;
        let start = lo[axis].clamp(0, extent);
        let end = (lo[axis].saturating_add(size[axis] as isize)).clamp(start, extent);
        start as usize..end as usize
    });
    ranges.iter().all(|r| !r.is_empty()).then_some(ranges)
}

fn read_header_from(file: &mut File, path: &Path) -> Result<Header, CacheError> {
    let mut bytes = [0u8; HEADER_LEN as usize];
    file.read_exact(&mut bytes)
        .map_err(|e| CacheError::io(path, "cannot read the header", e))?;
    Header::decode(&bytes, path)
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(windows)]
fn read_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_read(buf, offset)? {
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            n => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
        }
    }
    Ok(())
}
