//! GIPL's fixed 256-byte header, big-endian, field by field as ITK's `GiplImageIO` reads and
//! writes it:
//!
//! | offset | bytes | field                                   | ITK reads          | ITK writes     |
//! |--------|-------|-----------------------------------------|--------------------|----------------|
//! | 0      | 8     | `dims[4]` u16                           | sizes (see below)  | 1 when unused  |
//! | 8      | 2     | `image_type` u16                        | the component type | its code       |
//! | 10     | 16    | `pixdim[4]` f32                         | spacing            | 1 when unused  |
//! | 26     | 80    | patient / text line                     | ignored            | `No Patient Information` |
//! | 106    | 80    | `matrix[20]` f32                        | ignored            | zeros          |
//! | 186    | 2     | orientation flags                       | ignored            | zeros          |
//! | 188    | 16    | min, max f64                            | ignored            | zeros          |
//! | 204    | 32    | `origin[4]` f64                         | origin             | 0 when unused  |
//! | 236    | 16    | offset, calibration, gap, user f32      | ignored            | zeros          |
//! | 252    | 4     | magic u32                               | `0xEFFFE9B0` or `0x2AE389B8` | `0xEFFFE9B0` |
//!
//! ITK counts an axis for each of the first three sizes that is non-zero and for the fourth
//! when it is above 1, and takes the sizes, spacings and origin of that many axes; a negative
//! spacing is made positive with that axis's direction reversed (ITK's `ImageFileReader`).
//! Only big-endian files are read: ITK checks the magic number big-endian only.

use std::path::Path;

use super::super::error::{FormatError, InvalidImage};
use super::super::geometry::identity;
use super::super::{ElementType, RawImage};

/// Bytes of the header; the voxels follow it.
pub(crate) const HEADER_LEN: usize = 256;
/// The magic number ITK writes.
const MAGIC: u32 = 0xEFFF_E9B0;
/// The other magic number ITK reads.
const MAGIC2: u32 = 0x2AE3_89B8;
/// The most axes a header describes.
pub(crate) const MAX_AXES: usize = 4;
/// The largest size a `u16` field holds.
pub(crate) const MAX_SIZE: usize = u16::MAX as usize;

const TYPE_AT: usize = 8;
const PIXDIM_AT: usize = 10;
const LINE1_AT: usize = 26;
const ORIGIN_AT: usize = 204;
const MAGIC_AT: usize = 252;
/// The text ITK writes into the patient line.
const LINE1: &[u8] = b"No Patient Information";

/// What ITK takes from a header.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Header {
    /// Sizes of the axes ITK counts.
    pub dims: Vec<usize>,
    pub element: ElementType,
    /// Spacings made positive.
    pub spacing: Vec<f64>,
    pub origin: Vec<f64>,
    /// The identity with the axes of negative spacings reversed.
    pub direction: Vec<f64>,
}

fn u16_at(bytes: &[u8; HEADER_LEN], at: usize) -> u16 {
    u16::from_be_bytes([bytes[at], bytes[at + 1]])
}

fn u32_at(bytes: &[u8; HEADER_LEN], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

fn f32_at(bytes: &[u8; HEADER_LEN], at: usize) -> f32 {
    f32::from_bits(u32_at(bytes, at))
}

fn f64_at(bytes: &[u8; HEADER_LEN], at: usize) -> f64 {
    let high = u64::from(u32_at(bytes, at)) << 32;
    f64::from_bits(high | u64::from(u32_at(bytes, at + 4)))
}

/// Parses a header as ITK reads it.
///
/// # Errors
/// [`FormatError::NotFormat`] for a magic number ITK does not accept,
/// [`FormatError::BadField`] for no axes or a zero size among the axes ITK counts,
/// [`FormatError::Unsupported`] for an image type ITK cannot read.
pub(crate) fn parse(bytes: &[u8; HEADER_LEN], path: &Path) -> Result<Header, FormatError> {
    check_magic(bytes, path)?;
    let raw_dims: Vec<u16> = (0..MAX_AXES).map(|i| u16_at(bytes, 2 * i)).collect();
    let n_axes = raw_dims
        .iter()
        .enumerate()
        .filter(|&(i, &s)| if i < 3 { s > 0 } else { s > 1 })
        .count();
    let dims: Vec<usize> = raw_dims[..n_axes].iter().map(|&s| usize::from(s)).collect();
    if n_axes == 0 || dims.contains(&0) {
        return Err(FormatError::BadField {
            path: path.to_path_buf(),
            field: "dims".to_string(),
            value: format!("{raw_dims:?}"),
            reason: format!(
                "ITK takes the first {n_axes} sizes as the image's; an image needs at least one axis and no zero size"
            ),
        });
    }
    let element = element_of(u16_at(bytes, TYPE_AT), path)?;
    let mut spacing = Vec::with_capacity(n_axes);
    let mut direction = identity(n_axes);
    for axis in 0..n_axes {
        let s = f64::from(f32_at(bytes, PIXDIM_AT + 4 * axis));
        if s < 0.0 {
            direction[axis * n_axes + axis] = -1.0;
        }
        spacing.push(s.abs());
    }
    let origin = (0..n_axes)
        .map(|axis| f64_at(bytes, ORIGIN_AT + 8 * axis))
        .collect();
    Ok(Header {
        dims,
        element,
        spacing,
        origin,
        direction,
    })
}

/// Refuses a magic number ITK does not accept (naming a little-endian one).
fn check_magic(bytes: &[u8; HEADER_LEN], path: &Path) -> Result<(), FormatError> {
    let magic = u32_at(bytes, MAGIC_AT);
    if magic == MAGIC || magic == MAGIC2 {
        return Ok(());
    }
    let swapped = magic.swap_bytes();
    let hint = if swapped == MAGIC || swapped == MAGIC2 {
        " (a little-endian GIPL file, which ITK's GiplImageIO does not read)"
    } else {
        ""
    };
    Err(FormatError::NotFormat {
        path: path.to_path_buf(),
        format: "GIPL",
        reason: format!(
            "magic number {magic:#010x} at byte {MAGIC_AT}, not {MAGIC:#010x} or {MAGIC2:#010x}{hint}"
        ),
    })
}

/// The component type of an image type code, as ITK maps it (type 1, binary, is one byte per
/// voxel read as unsigned char).
fn element_of(code: u16, path: &Path) -> Result<ElementType, FormatError> {
    let what = match code {
        1 | 8 => return Ok(ElementType::U8),
        7 => return Ok(ElementType::I8),
        15 => return Ok(ElementType::I16),
        16 => return Ok(ElementType::U16),
        64 => return Ok(ElementType::F32),
        65 => return Ok(ElementType::F64),
        31 | 32 => {
            "32-bit integer data, which ITK's GiplImageIO cannot read (\"Pixel Type Unknown\")"
        }
        144 | 160 | 192 | 193 => "complex data",
        200 | 201 => "a surface or polygon",
        _ => "an unknown type",
    };
    Err(FormatError::Unsupported {
        path: path.to_path_buf(),
        what: format!("GIPL image type {code}: {what}"),
    })
}

/// The image type code ITK writes for `element`; `None` for the types it cannot write (32- and
/// 64-bit integers).
pub(crate) fn code_of(element: ElementType) -> Option<u16> {
    match element {
        ElementType::I8 => Some(7),
        ElementType::U8 => Some(8),
        ElementType::I16 => Some(15),
        ElementType::U16 => Some(16),
        ElementType::F32 => Some(64),
        ElementType::F64 => Some(65),
        ElementType::U32 | ElementType::I32 | ElementType::U64 | ElementType::I64 => None,
    }
}

/// The header ITK writes for `image` (at most [`MAX_AXES`] axes of at most [`MAX_SIZE`], a type
/// [`code_of`] names: checked by the caller), with one difference: an axis whose direction is
/// reversed (a direction that is diagonal with entries ±1) gets a negative spacing, which ITK
/// reads back as that direction. ITK writes every spacing as it is and loses the direction.
pub(crate) fn encode(image: &RawImage, code: u16) -> [u8; HEADER_LEN] {
    let mut bytes = [0u8; HEADER_LEN];
    let d = image.dims.len();
    let signs = axis_signs(&image.direction, d);
    for axis in 0..MAX_AXES {
        let (size, spacing, origin) = match image.dims.get(axis) {
            Some(&size) => (
                size as u16,
                (signs[axis] * image.spacing[axis]) as f32,
                image.origin[axis],
            ),
            None => (1, 1.0, 0.0),
        };
        bytes[2 * axis..2 * axis + 2].copy_from_slice(&size.to_be_bytes());
        let at = PIXDIM_AT + 4 * axis;
        bytes[at..at + 4].copy_from_slice(&spacing.to_be_bytes());
        let at = ORIGIN_AT + 8 * axis;
        bytes[at..at + 8].copy_from_slice(&origin.to_be_bytes());
    }
    bytes[TYPE_AT..TYPE_AT + 2].copy_from_slice(&code.to_be_bytes());
    bytes[LINE1_AT..LINE1_AT + LINE1.len()].copy_from_slice(LINE1);
    bytes[MAGIC_AT..MAGIC_AT + 4].copy_from_slice(&MAGIC.to_be_bytes());
    bytes
}

/// Per axis, -1 where a diagonal ±1 direction reverses it, else 1 (every axis 1 for any other
/// direction, which GIPL cannot hold).
fn axis_signs(direction: &[f64], d: usize) -> [f64; MAX_AXES] {
    let mut signs = [1.0; MAX_AXES];
    let diagonal = (0..d * d).all(|i| {
        let v = direction[i];
        if i / d == i % d {
            v == 1.0 || v == -1.0
        } else {
            v == 0.0
        }
    });
    if diagonal {
        for (axis, sign) in signs.iter_mut().enumerate().take(d) {
            *sign = direction[axis * d + axis];
        }
    }
    signs
}

/// Whether `image` can be written as GIPL: one component, at most four axes of at most 65535
/// voxels, a type ITK writes, spacings that stay finite and non-zero as 32-bit floats.
pub(crate) fn check_writable(image: &RawImage) -> Result<u16, InvalidImage> {
    if image.components != 1 {
        return Err(InvalidImage::new(format!(
            "GIPL holds one component per voxel, not {}",
            image.components
        )));
    }
    if image.dims.len() > MAX_AXES || image.dims.iter().any(|&s| s > MAX_SIZE) {
        return Err(InvalidImage::new(format!(
            "GIPL holds at most {MAX_AXES} axes of at most {MAX_SIZE} voxels, not {:?}",
            image.dims
        )));
    }
    let code = code_of(image.element).ok_or_else(|| {
        InvalidImage::new(format!(
            "ITK's GiplImageIO writes 8- and 16-bit integers and floats, not {:?}",
            image.element
        ))
    })?;
    let as_f32 = |s: f64| s as f32;
    if image
        .spacing
        .iter()
        .any(|&s| !as_f32(s).is_finite() || as_f32(s) == 0.0)
    {
        return Err(InvalidImage::new(format!(
            "spacing {:?} does not fit GIPL's 32-bit floats",
            image.spacing
        )));
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_signs_keep_reversed_axes_only_for_diagonal_directions() {
        let flip = [-1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, -1.0];
        assert_eq!(axis_signs(&flip, 3), [-1.0, 1.0, -1.0, 1.0]);
        let swap = [0.0, 1.0, 1.0, 0.0];
        assert_eq!(axis_signs(&swap, 2), [1.0; 4]);
        assert_eq!(axis_signs(&identity(4), 4), [1.0; 4]);
    }

    #[test]
    fn numbers_are_big_endian() {
        let mut bytes = [0u8; HEADER_LEN];
        bytes[204..212].copy_from_slice(&(-20.5f64).to_be_bytes());
        bytes[10..14].copy_from_slice(&0.75f32.to_be_bytes());
        assert_eq!(f64_at(&bytes, 204), -20.5);
        assert_eq!(f32_at(&bytes, 10), 0.75);
    }
}
