//! GIPL (`.gipl`, Guy's Image Processing Lab) reading and writing, as ITK's `GiplImageIO`
//! reads and writes it for SimpleITK (nnU-Net's `SimpleITKIO` lists `.gipl`).
//!
//! A 256-byte big-endian header (see [`header`]) and the voxels after it, big-endian, x
//! fastest. Read: 1 to 4 axes (ITK's count: the first three sizes that are non-zero, the fourth
//! when above 1), image types 1 (binary, one byte per voxel), 7, 8, 15, 16, 64 and 65 (`i8`,
//! `u8`, `i16`, `u16`, `f32`, `f64`); either magic number ITK accepts; bytes after the voxels
//! are ignored. The geometry is what SimpleITK reports: spacing from `pixdim` (32-bit floats,
//! so `0.7` reads as `0.699999988079071`), origin from the header's `origin`, direction the
//! identity, with the axes of negative spacings reversed and their spacings made positive (as
//! ITK's `ImageFileReader` does).
//!
//! Refused, where SimpleITK 2.5.7 does otherwise: data shorter than the header promises
//! (SimpleITK reads what is there and leaves the rest undefined), a zero size among the axes
//! (SimpleITK gives an empty image), zero or non-finite spacings and non-finite origins (as
//! for the other formats). Refused as by SimpleITK: other magic numbers (little-endian files
//! included), image types 31 and 32 (32-bit integers: ITK's reader has no byte swap for
//! them), complex, surface and unknown types. `.gipl.gz` (a gzipped GIPL, which ITK also
//! reads) is not read: nnU-Net's file ending is `.gipl`.
//!
//! Written fresh: the header ITK writes (`No Patient Information`, zeros, magic `0xEFFFE9B0`)
//! and the voxels; the file is byte for byte what SimpleITK's `WriteImage` writes for the same
//! image, except for an image whose direction is diagonal with a reversed axis: its spacing is
//! written negative, which SimpleITK reads back as that direction (SimpleITK's writer loses
//! it). Any other direction cannot be stored and is dropped, as SimpleITK's writer drops it.
//! Types written: `i8`, `u8`, `i16`, `u16`, `f32`, `f64` (ITK writes no other); at most four
//! axes of at most 65535 voxels; a 1- or 2-D image is written with sizes 1 for the missing
//! axes, so that SimpleITK (and this reader) read it back as 3-D, as it does its own files.
//! An image read from a GIPL file, written back with the same geometry and type, keeps the
//! file's header and trailing bytes (byte for byte when its voxels are unchanged too).

mod header;

use std::io::Read;
use std::path::Path;

use super::encode::{self, EncodeSpec, Part};
use super::error::FormatError;
use super::geometry::{self, checked_bytes};
use super::payload::{self, DataRegion, DataSpec, Encoding, Shape, Skip};
use super::source::{self, Snapshot, Source, Stored};
use super::{Kind, RawImage};
use header::{Header, HEADER_LEN};

/// Reads a GIPL file.
///
/// # Errors
/// [`FormatError`] naming the file and the fault: I/O, a file shorter than the 256-byte header
/// or a magic number ITK does not accept ([`FormatError::NotFormat`]), no axes or a zero size
/// ([`FormatError::BadField`]), an image type ITK cannot read ([`FormatError::Unsupported`]),
/// sizes that overflow, unusable geometry, data shorter than the sizes promise
/// ([`FormatError::DataTooShort`]), or more memory than the ceiling allows.
pub fn read_gipl(path: &Path) -> Result<RawImage, FormatError> {
    let (mut reader, len) = payload::open(path)?;
    if len < HEADER_LEN as u64 {
        return Err(FormatError::NotFormat {
            path: path.to_path_buf(),
            format: "GIPL",
            reason: format!("{len} bytes, shorter than the {HEADER_LEN}-byte header"),
        });
    }
    let mut bytes = [0u8; HEADER_LEN];
    reader
        .read_exact(&mut bytes)
        .map_err(|source| FormatError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    let header = header::parse(&bytes, path)?;
    let element_bytes = header.element.size();
    let n_bytes =
        checked_bytes(&header.dims, element_bytes).ok_or_else(|| FormatError::TooManyVoxels {
            path: path.to_path_buf(),
            sizes: header.dims.clone(),
            element_bytes,
        })?;
    geometry::check_geometry(
        &header.spacing,
        &header.origin,
        &header.direction,
        header.dims.len(),
    )
    .map_err(|source| FormatError::BadGeometry {
        path: path.to_path_buf(),
        source,
    })?;
    let spec = DataSpec {
        encoding: Encoding::Raw,
        element: header.element,
        big_endian: true,
        n_bytes,
        line_skip: 0,
        skip: Skip::Forward(0),
        inner_skip: 0,
        compressed_len: None,
    };
    let shape = Shape {
        dims: &header.dims,
        components: 1,
    };
    let region = DataRegion {
        reader: &mut reader,
        path,
        len,
        pos: HEADER_LEN as u64,
    };
    let (data, stored) = payload::read_data(region, &spec, &shape)?;
    Ok(assemble(header, bytes, data, stored))
}

/// Builds the image and remembers its source.
fn assemble(header: Header, bytes: [u8; HEADER_LEN], data: Vec<u8>, stored: Stored) -> RawImage {
    let mut image = RawImage {
        dims: header.dims,
        spacing: header.spacing,
        origin: header.origin,
        direction: header.direction,
        components: 1,
        element: header.element,
        data,
        source: None,
    };
    let source = Source {
        kind: Kind::Gipl,
        header: bytes.to_vec(),
        data_file: None,
        stored,
        encoding: Encoding::Raw,
        big_endian: true,
        file_sizes: image.dims.clone(),
        component_axis: 0,
        snapshot: Snapshot::of(&image),
        digest: None,
        reencode_ok: true,
    };
    image.source = Some(Box::new(source));
    image
}

/// Writes `image` as GIPL, as SimpleITK's `WriteImage` writes it (see the module doc).
///
/// An image read from a GIPL file with unchanged geometry and type is written back through its
/// source (its header and trailing bytes kept). Atomic: a temporary file renamed over the
/// target.
///
/// # Errors
/// [`FormatError::Extension`] unless `path` ends in `.gipl`, [`FormatError::InvalidImage`] for
/// an inconsistent image or one GIPL cannot hold (several components, more than four axes or
/// 65535 voxels along one, a type ITK does not write, a spacing 32-bit floats cannot hold),
/// [`FormatError::Write`] for I/O.
pub fn write_gipl(image: &RawImage, path: &Path) -> Result<(), FormatError> {
    if Kind::of(path) != Some(Kind::Gipl) {
        return Err(FormatError::Extension {
            path: path.to_path_buf(),
            expected: ".gipl",
        });
    }
    let invalid = |source| FormatError::InvalidImage {
        path: path.to_path_buf(),
        source,
    };
    image.check().map_err(invalid)?;
    if let Some((source, unchanged)) = source::write_back_source(image, Kind::Gipl, path) {
        return source::write_back(image, source, unchanged, path);
    }
    let code = header::check_writable(image).map_err(invalid)?;
    let bytes = header::encode(image, code);
    let spec = EncodeSpec {
        encoding: Encoding::Raw,
        element: image.element,
        big_endian: true,
        line_len: 1,
    };
    encode::write_parts(path, &[Part::Bytes(&bytes), Part::Data(&image.data, spec)])
}

#[cfg(test)]
mod tests;
