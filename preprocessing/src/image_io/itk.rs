//! Between the codecs' [`RawImage`] (file order, ITK geometry; NRRD, MetaImage and the natural
//! images) and autoseg's volumes (`(c, z, y, x)`, [`Geometry`]).
//!
//! The codecs' data order (x fastest, then y, then z) is the C order of a `(z, y, x)` array,
//! which is how SimpleITK's `GetArrayFromImage` hands it to nnU-Net: voxels are copied in
//! order, with no transposition. The components of a natural image's pixel (R, G, B[, A])
//! become channels, as nnU-Net's `transpose((2, 0, 1))` makes them.

use std::path::Path;

use ndarray::Array4;
use rayon::prelude::*;

use super::ImageError;
use crate::formats::{ElementType, FormatError, RawImage};
use crate::limits;
use crate::volume::{Geometry, Image, ItkGeometry, LabelMap, Shape3, Volume};

/// An intensity image from a decoded file: every component type as `f32` (numpy's
/// `astype(float32)`, as nnU-Net's `np.vstack(..., dtype=np.float32)`), one channel per
/// component when `channels_in_components` (natural images), else scalar images only.
pub(super) fn image_from_raw(
    raw: RawImage,
    path: &Path,
    channels_in_components: bool,
) -> Result<Image, ImageError> {
    if !channels_in_components {
        check_scalar(&raw, path)?;
    }
    let geometry = geometry_of(&raw, path)?;
    let c = raw.components;
    check_memory(c, geometry.shape(), std::mem::size_of::<f32>(), path)?;
    let values = convert(&raw, |v| v as f32);
    let [z, y, x] = geometry.shape().0;
    let data = if c == 1 {
        Array4::from_shape_vec((1, z, y, x), values)
    } else {
        // Components are adjacent in file order: (z, y, x, c), moved to (c, z, y, x).
        Array4::from_shape_vec((z, y, x, c), values).map(|a| {
            a.permuted_axes([3, 0, 1, 2])
                .as_standard_layout()
                .into_owned()
        })
    }
    .map_err(|_| short_data(&raw, path))?;
    Ok(Volume { data, geometry })
}

/// A label map from a decoded scalar file: every value must be a non-negative integer below
/// 65536.
pub(super) fn labels_from_raw(raw: RawImage, path: &Path) -> Result<LabelMap, ImageError> {
    check_scalar(&raw, path)?;
    let geometry = geometry_of(&raw, path)?;
    check_memory(1, geometry.shape(), std::mem::size_of::<u16>(), path)?;
    let is_label = |v: f64| v >= 0.0 && v <= f64::from(u16::MAX) && v.fract() == 0.0;
    // A non-label becomes u32::MAX, found again (first in file order) for the error.
    let values = convert(&raw, |v| if is_label(v) { v as u32 } else { u32::MAX });
    if values.contains(&u32::MAX) {
        let value = convert(&raw, |v| v)
            .into_iter()
            .find(|&v| !is_label(v))
            .unwrap_or(f64::NAN);
        return Err(ImageError::BadLabel {
            path: path.to_path_buf(),
            value,
        });
    }
    let values = values.into_iter().map(|v| v as u16).collect();
    volume(values, geometry, &raw, path)
}

/// A float32 file of `image` with its source's ITK geometry.
pub(super) fn raw_from_image(image: &Image, path: &Path) -> Result<RawImage, ImageError> {
    let data = image.data.iter().flat_map(|v| v.to_le_bytes()).collect();
    raw_from(image, ElementType::F32, data, path)
}

/// A `u8` (maximum below 255) or `u16` file of `labels` with its source's ITK geometry.
pub(super) fn raw_from_labels(labels: &LabelMap, path: &Path) -> Result<RawImage, ImageError> {
    let max = labels.data.iter().copied().max().unwrap_or(0);
    let (element, data) = if max < 255 {
        (
            ElementType::U8,
            labels.data.iter().map(|&v| v as u8).collect(),
        )
    } else {
        let data = labels.data.iter().flat_map(|v| v.to_le_bytes()).collect();
        (ElementType::U16, data)
    };
    raw_from(labels, element, data, path)
}

/// Refuses a vector image.
fn check_scalar(raw: &RawImage, path: &Path) -> Result<(), ImageError> {
    if raw.components != 1 {
        return Err(ImageError::Components {
            path: path.to_path_buf(),
            components: raw.components,
        });
    }
    Ok(())
}

/// The geometry of a decoded 2-D or 3-D file.
fn geometry_of(raw: &RawImage, path: &Path) -> Result<Geometry, ImageError> {
    let itk =
        ItkGeometry::from_parts(&raw.spacing, &raw.origin, &raw.direction).ok_or_else(|| {
            ImageError::Dims {
                path: path.to_path_buf(),
                dims: raw.dims.clone(),
            }
        })?;
    let shape = match raw.dims[..] {
        [x, y] => Shape3([1, y, x]),
        [x, y, z] => Shape3([z, y, x]),
        _ => {
            return Err(ImageError::Dims {
                path: path.to_path_buf(),
                dims: raw.dims.clone(),
            })
        }
    };
    Ok(Geometry::from_itk(shape, itk))
}

/// Refuses `channels` volumes of `shape` whose decoded values would pass the memory ceiling.
fn check_memory(
    channels: usize,
    shape: Shape3,
    bytes_per_voxel: usize,
    path: &Path,
) -> Result<(), ImageError> {
    let bytes = limits::volume_bytes(channels, shape.0, bytes_per_voxel);
    limits::check_volume_bytes(bytes).map_err(|memory| ImageError::OverCeiling {
        path: path.to_path_buf(),
        memory,
    })
}

/// Every component of `raw` through `f` (from its `f64` value; exact for all but 64-bit
/// integers past 2^53, which no image or label map holds), in file order. One loop per
/// component type, so that each compiles to a tight conversion, run in parallel chunks.
fn convert<T: Send>(raw: &RawImage, f: impl Fn(f64) -> T + Sync) -> Vec<T> {
    macro_rules! each {
        ($t:ty, $n:expr) => {
            raw.data
                .par_chunks_exact($n)
                .with_min_len(1 << 16)
                .map(|c| f(<$t>::from_le_bytes(c.try_into().expect("chunks of the size")) as f64))
                .collect()
        };
    }
    match raw.element {
        ElementType::U8 => raw
            .data
            .par_iter()
            .with_min_len(1 << 16)
            .map(|&v| f(f64::from(v)))
            .collect(),
        ElementType::I8 => raw
            .data
            .par_iter()
            .with_min_len(1 << 16)
            .map(|&v| f(f64::from(v as i8)))
            .collect(),
        ElementType::U16 => each!(u16, 2),
        ElementType::I16 => each!(i16, 2),
        ElementType::U32 => each!(u32, 4),
        ElementType::I32 => each!(i32, 4),
        ElementType::U64 => each!(u64, 8),
        ElementType::I64 => each!(i64, 8),
        ElementType::F32 => each!(f32, 4),
        ElementType::F64 => each!(f64, 8),
    }
}

/// A one-channel volume of `values` (C order of `geometry`'s shape).
fn volume<T>(
    values: Vec<T>,
    geometry: Geometry,
    raw: &RawImage,
    path: &Path,
) -> Result<Volume<T>, ImageError> {
    let [z, y, x] = geometry.shape().0;
    let data = Array4::from_shape_vec((1, z, y, x), values).map_err(|_| short_data(raw, path))?;
    Ok(Volume { data, geometry })
}

/// The error for a decoded image whose data do not fill its dims (the codecs check this; an
/// error rather than a panic all the same).
fn short_data(raw: &RawImage, path: &Path) -> ImageError {
    let source = raw
        .check()
        .err()
        .unwrap_or_else(|| crate::formats::InvalidImage::new("the data do not fill the dims"));
    ImageError::from(FormatError::BadGeometry {
        path: path.to_path_buf(),
        source,
    })
}

/// `volume`'s one channel as a file in its source's ITK geometry (2-D sources as 2-D files).
fn raw_from<T>(
    volume: &Volume<T>,
    element: ElementType,
    data: Vec<u8>,
    path: &Path,
) -> Result<RawImage, ImageError> {
    let shape = volume.geometry.shape();
    let data_shape = volume.data.shape();
    if data_shape[0] != 1 || volume.data_shape() != shape {
        return Err(ImageError::ShapeMismatch {
            path: path.to_path_buf(),
            data: [data_shape[0], data_shape[1], data_shape[2], data_shape[3]],
            geometry: shape.0,
        });
    }
    let itk = volume.geometry.itk();
    let [z, y, x] = shape.0;
    let dims = if itk.ndim == 2 && z == 1 {
        vec![x, y]
    } else {
        vec![x, y, z]
    };
    let itk = if dims.len() == 3 && itk.ndim == 2 {
        ItkGeometry { ndim: 3, ..itk }
    } else {
        itk
    };
    let (spacing, origin, direction) = itk.parts();
    // `data` came from `iter()`, which walks logical (C) order whatever the layout.
    RawImage::new(dims, spacing, origin, direction, 1, element, data).map_err(|source| {
        ImageError::from(FormatError::InvalidImage {
            path: path.to_path_buf(),
            source,
        })
    })
}
