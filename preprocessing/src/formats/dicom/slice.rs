//! One DICOM file read into [`Slice`]s, one per frame: the header fields the series needs and
//! the stored pixel values as little-endian bytes (before masking and rescaling).

use std::fs::File;
use std::io::Read;
use std::path::Path;

use dicom_core::header::HasLength;
use dicom_dictionary_std::tags;
use dicom_object::file::ReadPreamble;
use dicom_object::{DefaultDicomObject, InMemDicomObject, OpenFileOptions};

use super::super::error::shorten;
use super::super::FormatError;
use super::codec::FrameShape;
use super::multiframe::{self, FrameGeometry};
use super::{pixels, scan};

/// The Media Storage SOP Class of a DICOMDIR (Media Storage Directory Storage).
pub(super) const DICOMDIR_CLASS: &str = "1.2.840.10008.1.3.10";

/// The header fields of one frame of a file and its stored pixel values.
pub(super) struct Slice {
    pub(super) strings: SliceStrings,
    /// The frame's number in a multi-frame file (from 1); `None` in a single-frame file.
    pub(super) frame: Option<usize>,
    pub(super) rows: usize,
    pub(super) cols: usize,
    /// Samples per pixel: 1, or 3 for RGB (then `pixels` holds them by pixel).
    pub(super) samples: usize,
    pub(super) bits_allocated: u16,
    pub(super) bits_stored: u16,
    pub(super) signed: bool,
    /// Where the frame lies and how its values are rescaled.
    pub(super) geometry: FrameGeometry,
    /// `rows * cols * samples` stored values of `bits_allocated / 8` little-endian bytes each.
    pub(super) pixels: Vec<u8>,
}

/// The identifying strings of one file (empty when absent).
#[derive(Default, Clone)]
pub(super) struct SliceStrings {
    pub(super) patient_id: String,
    pub(super) patient_name: String,
    pub(super) patient_birth_date: String,
    pub(super) patient_sex: String,
    pub(super) study_instance_uid: String,
    pub(super) study_id: String,
    pub(super) study_date: String,
    pub(super) study_time: String,
    pub(super) accession_number: String,
    pub(super) referring_physician_name: String,
    pub(super) series_instance_uid: String,
    pub(super) frame_of_reference_uid: String,
    pub(super) modality: String,
    pub(super) sop_class_uid: String,
    pub(super) sop_instance_uid: String,
}

/// What a file in the folder turned out to be.
pub(super) enum FileKind {
    /// An image: its frames (one slice each) in file order.
    Image {
        /// The frames.
        frames: Vec<Slice>,
        /// Whether the file is multi-frame (NumberOfFrames above 1, or functional groups).
        multi_frame: bool,
    },
    /// A DICOMDIR (skipped).
    Dicomdir,
}

/// The decoded pixel bytes of a folder's files so far, against the memory ceiling.
pub(super) struct DecodeBudget {
    /// Bytes taken by the files read so far.
    pub(super) used: u64,
    /// The ceiling they must stay within.
    pub(super) ceiling: u64,
}

impl DecodeBudget {
    /// Takes `bytes` for a file's frames (`dims`: columns, rows, frames), or refuses them.
    fn take(
        &mut self,
        path: &Path,
        dims: [usize; 3],
        samples: usize,
        bytes: u64,
    ) -> Result<(), FormatError> {
        let total = self.used.saturating_add(bytes);
        if total > self.ceiling {
            return Err(FormatError::OverCeiling {
                path: path.to_path_buf(),
                dims: dims.to_vec(),
                components: samples,
                memory: crate::limits::OverCeiling {
                    bytes: total,
                    ceiling: self.ceiling,
                },
            });
        }
        self.used = total;
        Ok(())
    }
}

/// Reads the whole file (`len` bytes, checked against the ceiling by the caller) and parses
/// it; its decoded pixel data is taken from `budget` before any frame is decoded.
pub(super) fn read_file(
    path: &Path,
    len: u64,
    budget: &mut DecodeBudget,
) -> Result<FileKind, FormatError> {
    let io = |source| FormatError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut bytes = Vec::new();
    let len_usize = usize::try_from(len).map_err(|_| FormatError::OutOfMemory {
        path: path.to_path_buf(),
        bytes: u128::from(len),
    })?;
    bytes
        .try_reserve_exact(len_usize)
        .map_err(|_| FormatError::OutOfMemory {
            path: path.to_path_buf(),
            bytes: u128::from(len),
        })?;
    File::open(path)
        .map_err(io)?
        .take(len)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() < 132 || &bytes[128..132] != b"DICM" {
        return Err(FormatError::NotFormat {
            path: path.to_path_buf(),
            format: "DICOM",
            reason:
                "no \"DICM\" marker after the 128-byte preamble (a DICOM Part 10 file starts so)"
                    .to_string(),
        });
    }
    let data_set_len = scan::check_lengths(path, &bytes[128..])?;
    // No value dicom-rs reserves can be longer than the (inflated) data set: a length the scan
    // did not see fails as an allocation error (crate::alloc_cap), 1 MiB left for its buffers.
    let cap = data_set_len.max(bytes.len()).saturating_add(1 << 20);
    let object = crate::with_allocation_cap(cap, || {
        OpenFileOptions::new()
            .read_preamble(ReadPreamble::Never)
            .from_reader(&bytes[128..])
    })
    .map_err(|e| FormatError::BadHeader {
        path: path.to_path_buf(),
        reason: format!("cannot parse the DICOM data set: {e}"),
    })?;
    drop(bytes);
    if object
        .meta()
        .media_storage_sop_class_uid()
        .trim_end_matches(['\0', ' '])
        == DICOMDIR_CLASS
    {
        return Ok(FileKind::Dicomdir);
    }
    parse_frames(path, &object, budget)
}

/// A text element, trimmed of DICOM's padding; empty when absent or not text.
fn text(object: &InMemDicomObject, tag: dicom_core::Tag) -> String {
    match object.element_opt(tag) {
        Ok(Some(e)) => e
            .to_str()
            .map(|s| s.trim_matches(['\0', ' ']).to_string())
            .unwrap_or_default(),
        _ => String::new(),
    }
}

/// A numeric element as `f64` values; `None` when absent or empty.
pub(super) fn numbers(
    path: &Path,
    object: &InMemDicomObject,
    tag: dicom_core::Tag,
    name: &str,
) -> Result<Option<Vec<f64>>, FormatError> {
    let Ok(Some(element)) = object.element_opt(tag) else {
        return Ok(None);
    };
    if element.value().primitive().is_some_and(|p| p.is_empty()) {
        return Ok(None);
    }
    let values = element
        .to_multi_float64()
        .map_err(|e| FormatError::BadField {
            path: path.to_path_buf(),
            field: name.to_string(),
            value: shorten(&element.to_str().unwrap_or_default()),
            reason: e.to_string(),
        })?;
    if values.iter().any(|v| !v.is_finite()) {
        return Err(FormatError::BadField {
            path: path.to_path_buf(),
            field: name.to_string(),
            value: format!("{values:?}"),
            reason: "not a finite number".to_string(),
        });
    }
    Ok(Some(values))
}

/// Exactly `N` numbers, or `None` when absent.
pub(super) fn fixed<const N: usize>(
    path: &Path,
    object: &InMemDicomObject,
    tag: dicom_core::Tag,
    name: &str,
) -> Result<Option<[f64; N]>, FormatError> {
    let Some(values) = numbers(path, object, tag, name)? else {
        return Ok(None);
    };
    <[f64; N]>::try_from(values.as_slice())
        .map(Some)
        .map_err(|_| FormatError::BadField {
            path: path.to_path_buf(),
            field: name.to_string(),
            value: format!("{values:?}"),
            reason: format!("{} values where {N} are required", values.len()),
        })
}

/// One unsigned integer element, required.
fn required_uint(
    path: &Path,
    object: &InMemDicomObject,
    tag: dicom_core::Tag,
    name: &'static str,
) -> Result<u32, FormatError> {
    let element = match object.element_opt(tag) {
        Ok(Some(e)) => e,
        _ => {
            return Err(FormatError::MissingField {
                path: path.to_path_buf(),
                field: name,
            })
        }
    };
    element.to_int::<u32>().map_err(|e| FormatError::BadField {
        path: path.to_path_buf(),
        field: name.to_string(),
        value: shorten(&element.to_str().unwrap_or_default()),
        reason: e.to_string(),
    })
}

/// The frames of a parsed file.
fn parse_frames(
    path: &Path,
    object: &DefaultDicomObject,
    budget: &mut DecodeBudget,
) -> Result<FileKind, FormatError> {
    let bad = |field: &str, value: String, reason: &str| {
        FormatError::bad_field(path, field, value, reason)
    };
    let unsupported = |what: String| FormatError::Unsupported {
        path: path.to_path_buf(),
        what,
    };
    let strings = SliceStrings {
        patient_id: text(object, tags::PATIENT_ID),
        patient_name: text(object, tags::PATIENT_NAME),
        patient_birth_date: text(object, tags::PATIENT_BIRTH_DATE),
        patient_sex: text(object, tags::PATIENT_SEX),
        study_instance_uid: text(object, tags::STUDY_INSTANCE_UID),
        study_id: text(object, tags::STUDY_ID),
        study_date: text(object, tags::STUDY_DATE),
        study_time: text(object, tags::STUDY_TIME),
        accession_number: text(object, tags::ACCESSION_NUMBER),
        referring_physician_name: text(object, tags::REFERRING_PHYSICIAN_NAME),
        series_instance_uid: text(object, tags::SERIES_INSTANCE_UID),
        frame_of_reference_uid: text(object, tags::FRAME_OF_REFERENCE_UID),
        modality: text(object, tags::MODALITY),
        sop_class_uid: text(object, tags::SOP_CLASS_UID),
        sop_instance_uid: text(object, tags::SOP_INSTANCE_UID),
    };
    let samples = match object.element_opt(tags::SAMPLES_PER_PIXEL) {
        Ok(Some(_)) => required_uint(path, object, tags::SAMPLES_PER_PIXEL, "SamplesPerPixel")?,
        _ => 1,
    };
    let photometric = text(object, tags::PHOTOMETRIC_INTERPRETATION);
    let planar = match samples {
        1 => {
            if photometric == "MONOCHROME1" {
                // SimpleITK inverts MONOCHROME1 ((2^BitsStored - 1) - v for unsigned data) and
                // fails on some signed data; not matched here yet.
                return Err(unsupported(
                    "PhotometricInterpretation MONOCHROME1 (inverted grey scale; only \
                     MONOCHROME2 is read)"
                        .to_string(),
                ));
            }
            if !photometric.is_empty() && photometric != "MONOCHROME2" {
                return Err(unsupported(format!(
                    "PhotometricInterpretation {photometric:?} with one sample per pixel (only \
                     MONOCHROME2 is read)"
                )));
            }
            false
        }
        3 if photometric == "RGB" => match object.element_opt(tags::PLANAR_CONFIGURATION) {
            Ok(Some(_)) => {
                required_uint(
                    path,
                    object,
                    tags::PLANAR_CONFIGURATION,
                    "PlanarConfiguration",
                )? == 1
            }
            _ => false,
        },
        _ => {
            return Err(unsupported(format!(
                "SamplesPerPixel {samples} with PhotometricInterpretation {photometric:?} \
                 (one sample per pixel, or three as RGB, are read)"
            )))
        }
    };
    let n_frames = match object.element_opt(tags::NUMBER_OF_FRAMES) {
        Ok(Some(e)) => {
            let text = e.to_str().unwrap_or_default();
            match text.trim_matches(['\0', ' ']).parse::<usize>() {
                Ok(n) if n >= 1 => n,
                _ => {
                    return Err(bad(
                        "NumberOfFrames",
                        shorten(&text),
                        "must be a whole number of at least 1",
                    ))
                }
            }
        }
        _ => 1,
    };
    let rows = required_uint(path, object, tags::ROWS, "Rows")? as usize;
    let cols = required_uint(path, object, tags::COLUMNS, "Columns")? as usize;
    if rows == 0 || cols == 0 {
        return Err(bad(
            "Rows/Columns",
            format!("{rows}/{cols}"),
            "an image needs at least one row and column",
        ));
    }
    let bits_allocated = required_uint(path, object, tags::BITS_ALLOCATED, "BitsAllocated")?;
    if !matches!(bits_allocated, 8 | 16 | 32) {
        return Err(unsupported(format!(
            "BitsAllocated {bits_allocated} (8, 16 and 32 are read)"
        )));
    }
    let bits_stored = match object.element_opt(tags::BITS_STORED) {
        Ok(Some(_)) => required_uint(path, object, tags::BITS_STORED, "BitsStored")?,
        _ => bits_allocated,
    };
    if bits_stored == 0 || bits_stored > bits_allocated {
        return Err(bad(
            "BitsStored",
            bits_stored.to_string(),
            &format!("must be 1 to BitsAllocated ({bits_allocated})"),
        ));
    }
    let high_bit = match object.element_opt(tags::HIGH_BIT) {
        Ok(Some(_)) => required_uint(path, object, tags::HIGH_BIT, "HighBit")?,
        _ => bits_stored - 1,
    };
    if high_bit != bits_stored - 1 {
        return Err(unsupported(format!(
            "HighBit {high_bit} with BitsStored {bits_stored} (only HighBit = BitsStored - 1 is read)"
        )));
    }
    let representation = match object.element_opt(tags::PIXEL_REPRESENTATION) {
        Ok(Some(_)) => required_uint(
            path,
            object,
            tags::PIXEL_REPRESENTATION,
            "PixelRepresentation",
        )?,
        _ => 0,
    };
    if representation > 1 {
        return Err(bad(
            "PixelRepresentation",
            representation.to_string(),
            "must be 0 (unsigned) or 1 (signed)",
        ));
    }
    let enhanced = multiframe::is_enhanced(object);
    let geometries: Vec<FrameGeometry> = if enhanced {
        multiframe::per_frame(path, object, n_frames)?
    } else if n_frames == 1 {
        vec![multiframe::top_level(path, object)?]
    } else {
        return Err(unsupported(format!(
            "{n_frames} frames without functional groups (only Enhanced and Legacy Converted \
             Enhanced multi-frame images, with per-frame positions, are read)"
        )));
    };
    if samples == 3 && (bits_allocated != 8 || bits_stored != 8) {
        return Err(unsupported(format!(
            "RGB with BitsAllocated {bits_allocated}, BitsStored {bits_stored} (8 and 8 are read)"
        )));
    }
    let shape = FrameShape {
        rows,
        cols,
        samples: samples as usize,
        bytes: bits_allocated as usize / 8,
    };
    let decoded = rows
        .checked_mul(cols)
        .and_then(|n| n.checked_mul(shape.samples))
        .and_then(|n| n.checked_mul(shape.bytes))
        .and_then(|n| n.checked_mul(n_frames))
        .ok_or_else(|| FormatError::TooManyVoxels {
            path: path.to_path_buf(),
            sizes: vec![cols, rows, n_frames],
            element_bytes: shape.bytes,
        })?;
    // The decoded size is checked before any frame is decoded (RLE and JPEG expand).
    budget.take(path, [cols, rows, n_frames], shape.samples, decoded as u64)?;
    let frames = pixels::frames(path, object, shape, n_frames, planar)?;
    let slices = frames
        .into_iter()
        .zip(geometries)
        .enumerate()
        .map(|(k, (pixels, g))| Slice {
            strings: strings.clone(),
            frame: (n_frames > 1 || enhanced).then_some(k + 1),
            rows,
            cols,
            samples: samples as usize,
            bits_allocated: bits_allocated as u16,
            bits_stored: bits_stored as u16,
            signed: representation == 1,
            geometry: g,
            pixels,
        })
        .collect();
    Ok(FileKind::Image {
        frames: slices,
        multi_frame: n_frames > 1 || enhanced,
    })
}
