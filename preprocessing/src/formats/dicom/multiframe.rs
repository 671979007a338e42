//! The geometry and rescaling of each frame of an enhanced (functional-group) file: Enhanced
//! CT/MR and Legacy Converted Enhanced images. Each frame takes a functional group from its
//! item of PerFrameFunctionalGroupsSequence, else from SharedFunctionalGroupsSequence, else
//! the top-level attribute: PlanePositionSequence (ImagePositionPatient),
//! PlaneOrientationSequence (ImageOrientationPatient), PixelMeasuresSequence (PixelSpacing,
//! SpacingBetweenSlices) and PixelValueTransformationSequence (RescaleSlope,
//! RescaleIntercept).

use std::path::Path;

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

use super::super::FormatError;
use super::slice::{fixed, numbers};

/// Where one frame lies and how its values are rescaled.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct FrameGeometry {
    /// ImagePositionPatient, when present.
    pub(super) position: Option<[f64; 3]>,
    /// ImageOrientationPatient, when present.
    pub(super) orientation: Option<[f64; 6]>,
    /// PixelSpacing (between rows, between columns), when present.
    pub(super) pixel_spacing: Option<[f64; 2]>,
    /// SpacingBetweenSlices, when present and not zero.
    pub(super) spacing_between_slices: Option<f64>,
    /// RescaleSlope (1 when absent).
    pub(super) slope: f64,
    /// RescaleIntercept (0 when absent).
    pub(super) intercept: f64,
}

/// Whether a data set carries functional groups (an enhanced multi-frame image).
pub(super) fn is_enhanced(object: &InMemDicomObject) -> bool {
    [
        tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE,
        tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE,
    ]
    .iter()
    .any(|&t| matches!(object.element_opt(t), Ok(Some(_))))
}

/// The items of a sequence element; empty when absent or not a sequence.
fn items(object: &InMemDicomObject, tag: Tag) -> &[InMemDicomObject] {
    match object.element_opt(tag) {
        Ok(Some(e)) => e.items().unwrap_or(&[]),
        _ => &[],
    }
}

/// The geometry of a data set's top level (a single-frame file, or an enhanced file's
/// fallback).
pub(super) fn top_level(
    path: &Path,
    object: &InMemDicomObject,
) -> Result<FrameGeometry, FormatError> {
    let levels = [object];
    geometry(path, &levels, &levels, &levels, &levels)
}

/// The geometry of each of `n_frames` frames of an enhanced file.
///
/// # Errors
/// [`FormatError::BadField`] when PerFrameFunctionalGroupsSequence lists another number of
/// frames, or a value cannot be read; [`FormatError::Unsupported`] for several frames without
/// any position.
pub(super) fn per_frame(
    path: &Path,
    object: &InMemDicomObject,
    n_frames: usize,
) -> Result<Vec<FrameGeometry>, FormatError> {
    let per_frame = items(object, tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE);
    if !per_frame.is_empty() && per_frame.len() != n_frames {
        return Err(FormatError::BadField {
            path: path.to_path_buf(),
            field: "PerFrameFunctionalGroupsSequence".to_string(),
            value: format!("{} items", per_frame.len()),
            reason: format!("NumberOfFrames is {n_frames}"),
        });
    }
    let shared = items(object, tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE).first();
    let mut out = Vec::with_capacity(n_frames);
    for k in 0..n_frames {
        let own = per_frame.get(k);
        // The first item of a functional group's sequence, per frame, else shared.
        let group = |seq: Tag| -> Vec<&InMemDicomObject> {
            let mut levels = Vec::new();
            for level in [own, shared].into_iter().flatten() {
                if let Some(item) = items(level, seq).first() {
                    levels.push(item);
                    break;
                }
            }
            levels.push(object);
            levels
        };
        out.push(geometry(
            path,
            &group(tags::PLANE_POSITION_SEQUENCE),
            &group(tags::PLANE_ORIENTATION_SEQUENCE),
            &group(tags::PIXEL_MEASURES_SEQUENCE),
            &group(tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE),
        )?);
    }
    if n_frames > 1 && out.iter().all(|g| g.position.is_none()) {
        return Err(FormatError::Unsupported {
            path: path.to_path_buf(),
            what: format!(
                "{n_frames} frames without positions (no PlanePositionSequence): SimpleITK \
                 stacks such frames in file order with spacing 1, which is not a geometry"
            ),
        });
    }
    Ok(out)
}

/// The first data set of `levels` holding a value of `tag`, read by `read`.
fn first_of<T>(
    levels: &[&InMemDicomObject],
    read: impl Fn(&InMemDicomObject) -> Result<Option<T>, FormatError>,
) -> Result<Option<T>, FormatError> {
    for level in levels {
        if let Some(v) = read(level)? {
            return Ok(Some(v));
        }
    }
    Ok(None)
}

/// One frame's fields, each from the first of its levels that holds it.
fn geometry(
    path: &Path,
    position: &[&InMemDicomObject],
    orientation: &[&InMemDicomObject],
    measures: &[&InMemDicomObject],
    transform: &[&InMemDicomObject],
) -> Result<FrameGeometry, FormatError> {
    let bad = |field: &str, value: String, reason: &str| {
        FormatError::bad_field(path, field, value, reason)
    };
    let first_number = |o: &InMemDicomObject, tag, name| -> Result<Option<f64>, FormatError> {
        Ok(numbers(path, o, tag, name)?.and_then(|v| v.first().copied()))
    };
    let pixel_spacing = first_of(measures, |o| {
        fixed::<2>(path, o, tags::PIXEL_SPACING, "PixelSpacing")
    })?;
    if let Some(s) = pixel_spacing {
        if s.iter().any(|v| *v <= 0.0) {
            return Err(bad("PixelSpacing", format!("{s:?}"), "must be positive"));
        }
    }
    Ok(FrameGeometry {
        position: first_of(position, |o| {
            fixed::<3>(
                path,
                o,
                tags::IMAGE_POSITION_PATIENT,
                "ImagePositionPatient",
            )
        })?,
        orientation: first_of(orientation, |o| {
            fixed::<6>(
                path,
                o,
                tags::IMAGE_ORIENTATION_PATIENT,
                "ImageOrientationPatient",
            )
        })?,
        pixel_spacing,
        spacing_between_slices: first_of(measures, |o| {
            first_number(o, tags::SPACING_BETWEEN_SLICES, "SpacingBetweenSlices")
        })?
        .filter(|v| *v != 0.0),
        slope: first_of(transform, |o| {
            first_number(o, tags::RESCALE_SLOPE, "RescaleSlope")
        })?
        .unwrap_or(1.0),
        intercept: first_of(transform, |o| {
            first_number(o, tags::RESCALE_INTERCEPT, "RescaleIntercept")
        })?
        .unwrap_or(0.0),
    })
}
