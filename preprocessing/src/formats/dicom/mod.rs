//! A DICOM series reader: the files of one series in a folder read into one [`RawImage`], with
//! the geometry, voxel type and values SimpleITK gives for
//! `sitk.ReadImage(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(folder))` (verified against
//! SimpleITK 2.5.7 on the fixtures of `scripts/make_dicom_fixtures.py`), and the identifying
//! fields a DICOM SEG writer needs ([`SeriesInfo`]); and that writer, [`write_dicom_seg`] (a
//! binary Segmentation Storage object of a label map on the series' grid).
//!
//! # What is read
//! DICOM Part 10 files (`DICM` after the 128-byte preamble), one sample per pixel
//! (MONOCHROME2) or 8-bit RGB (3 components, either planar configuration, rescaling ignored,
//! as SimpleITK's vector image), 8, 16 or 32 bits allocated, in native transfer syntaxes
//! (implicit VR little endian, explicit VR little endian, explicit VR big endian, deflated
//! explicit VR little endian) or with encapsulated pixel data in (`codec.rs`): RLE Lossless
//! (1.2.840.10008.1.2.5, decoded here), JPEG Lossless process 14 and its SV1 (.4.57, .4.70)
//! and JPEG Baseline 8-bit (.4.50) through jpeg-decoder, JPEG 2000 lossless and lossy (.4.90,
//! .4.91, components of at most 16 bits) through hayro-jpeg2000, signed components as OpenJPEG
//! gives them and lossy values clamped to their precision. Lossless syntaxes read voxel for
//! voxel as the native series; lossy ones within one or two units of pydicom's decode
//! (OpenJPEG, libjpeg-turbo). Fragments make frames one each, all for one frame, or as the
//! basic offset table groups them.
//!
//! A series is a folder of single-frame files, or one multi-frame file with functional groups
//! (Enhanced CT/MR, Legacy Converted Enhanced; `multiframe.rs`): each frame's position,
//! orientation, pixel spacing and rescale come from its PerFrameFunctionalGroupsSequence item,
//! else SharedFunctionalGroupsSequence, else the top level (PlanePositionSequence,
//! PlaneOrientationSequence, PixelMeasuresSequence, PixelValueTransformationSequence), and the
//! frames are sorted and checked exactly as slices are. Errors name a frame as the file
//! followed by ` (frame N)`. SimpleITK 2.5.7 reads such a file as a 4-D image (size
//! `[x, y, frames, 1]`) of the frames in file order, its origin at the first frame and its
//! normal turned to follow them: the same voxels in space, where this reader gives the 3-D
//! volume of the single-frame series the file was converted from.
//!
//! A DICOMDIR (by name or by its SOP class) is skipped; any other file that is not DICOM is an
//! error naming it. Sub-folders are ignored. Not read (refused with
//! [`FormatError::Unsupported`] naming the file): JPEG-LS (.4.80, .4.81; no pure-Rust decoder
//! exists), JPEG Extended 12-bit (.4.51), HTJ2K and any other encapsulated syntax; multi-frame
//! files without functional groups, or without any frame position (SimpleITK stacks such
//! frames in file order with spacing 1, origin 0); MONOCHROME1 (SimpleITK inverts it:
//! `(2^BitsStored − 1) − v` for unsigned data, and fails on some signed data), colour images
//! other than 8-bit RGB (YBR, palette, 16-bit RGB), HighBit other than BitsStored − 1. A
//! compressed frame that does not decode to exactly its header's size is
//! [`FormatError::Decode`]; fragments that do not make NumberOfFrames frames, or a
//! PerFrameFunctionalGroupsSequence of another length, are [`FormatError::BadField`]; native
//! data shorter than NumberOfFrames frames is [`FormatError::DataTooShort`].
//!
//! # Geometry (as ITK's `GDCMImageIO` and `ImageSeriesReader`)
//! The slice normal is the cross product of ImageOrientationPatient's row and column
//! cosines, each first normalised; slices are sorted by the projection of ImagePositionPatient
//! on the normal, ascending (GDCM's `IPPSorter` order). The origin is the first sorted slice's
//! position; the direction's columns are the row cosine, the column cosine and the normal;
//! x spacing is PixelSpacing\[1\] (between columns), y spacing PixelSpacing\[0\] (between
//! rows); z spacing is ITK's: the distance between the first and last positions divided by
//! the number of slices − 1 (not SliceThickness). A single slice gives a 3-D image of one
//! slice whose z spacing is SpacingBetweenSlices, else 1 (SimpleITK ignores SliceThickness);
//! without position, orientation or pixel spacing it gets ITK's defaults (0, identity, 1).
//!
//! # Voxel type and values (as GDCM's `Rescaler` inside ITK)
//! Stored values are masked to BitsStored bits and sign-extended when PixelRepresentation is
//! one. Without rescaling (slope 1, intercept 0, or both absent) the type is the stored one
//! (`u8`/`i8`/`u16`/`i16`/`u32`/`i32`). A slope or intercept that is not an integer gives
//! `f64`. Integer ones (a slope of 0 counts as 1) give the smallest integer type holding the
//! stored range (BitsStored bits) mapped through `slope · v + intercept`, unsigned when the
//! mapped minimum is ≥ 0, `f64` beyond 32 bits: e.g. CT `int16` with intercept −1024 gives
//! `i32`, CT `uint16` with BitsStored 12 and intercept −1024 gives `i16`, `u8` with slope 2
//! gives `u16`. Where that type would be narrower than BitsAllocated, SimpleITK fails
//! ("Pixel type larger than output type"); this reader widens it to BitsAllocated bits instead.
//! Slices with different slopes or intercepts each keep their own; the type then holds the
//! union of their ranges (SimpleITK takes the first file's type).
//!
//! # Refused (with [`FormatError::Series`] naming the folder and a [`SeriesFault`])
//! An empty folder; files of two SeriesInstanceUIDs; a multi-frame file beside other image
//! files (several multi-frame files, or a mix with single-frame ones); slices whose Rows, Columns,
//! SamplesPerPixel, BitsAllocated, BitsStored or PixelRepresentation differ; for more than one slice a missing
//! ImagePositionPatient, ImageOrientationPatient or PixelSpacing; orientations that differ by
//! more than [`ORIENTATION_TOLERANCE`] in any cosine; two slices at one position; positions off
//! the normal line (gantry tilt) by more than [`TILT_TOLERANCE`] of their distance; a gap of
//! at least 1.5 times the median gap (a missing slice); any other gap off the mean spacing by
//! more than [`SPACING_TOLERANCE`] of it (plus 0.001 mm). SimpleITK reads these with a warning
//! at most, into wrong geometry.
//!
//! # Memory
//! Each file is read whole after its size was added to the folder's total, which must stay
//! within [`crate::limits`]' ceiling; the output volume is checked against the ceiling and
//! reserved fallibly before it is filled. dicom-rs reserves and zero-fills each value's
//! declared length before reading it, so every file's element headers are first walked (into
//! sequences and items) and a defined length passing the bytes left is refused
//! ([`FormatError::BadHeader`]) before dicom-rs sees the file; a deflated data set is inflated
//! for that walk only up to the ceiling. An element other than a sequence or the pixel data
//! with an undefined length is refused there too. Compressed pixel data expands: each file's
//! decoded size (rows · columns · samples · bytes · frames) is added to the folder's and
//! checked against the ceiling before any of its frames is decoded, and each frame is decoded
//! into a buffer of exactly its size (a decoder's larger or smaller output is an error).
//! Third-party decoders run under `catch_unwind`, so a panic in one is an error naming the
//! file; none panicked on the seeded mutations of the tests.

mod codec;
mod multiframe;
mod part10;
mod pixels;
mod scan;
mod seg;
mod slice;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use super::{ElementType, FormatError, RawImage};
pub use seg::{write_dicom_seg, SEG_SOP_CLASS_UID};
use slice::{FileKind, Slice};

/// The most any cosine of a slice's ImageOrientationPatient may differ from the first slice's.
pub const ORIENTATION_TOLERANCE: f64 = 1e-4;
/// The most a slice's position may lie off the line through the first position along the
/// normal, as a fraction of its distance from the first position (plus 0.0001 mm); about
/// 0.06° of tilt.
pub const TILT_TOLERANCE: f64 = 1e-3;
/// The most a gap between neighbouring slices may differ from the mean spacing, as a fraction
/// of it (plus 0.001 mm).
pub const SPACING_TOLERANCE: f64 = 0.01;

/// A DICOM series read from a folder.
#[derive(Debug, Clone, PartialEq)]
pub struct DicomSeries {
    /// The voxels and geometry (3-D, LPS, rescaled).
    pub image: RawImage,
    /// The identifying fields (of the first sorted slice) and each slice's SOP identity.
    pub info: SeriesInfo,
}

/// What a DICOM SEG writer needs to refer to the series; strings are empty when absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeriesInfo {
    /// PatientID (0010,0020).
    pub patient_id: String,
    /// PatientName (0010,0010).
    pub patient_name: String,
    /// PatientBirthDate (0010,0030).
    pub patient_birth_date: String,
    /// PatientSex (0010,0040).
    pub patient_sex: String,
    /// StudyInstanceUID (0020,000D).
    pub study_instance_uid: String,
    /// StudyID (0020,0010).
    pub study_id: String,
    /// StudyDate (0008,0020).
    pub study_date: String,
    /// StudyTime (0008,0030).
    pub study_time: String,
    /// AccessionNumber (0008,0050).
    pub accession_number: String,
    /// ReferringPhysicianName (0008,0090).
    pub referring_physician_name: String,
    /// SeriesInstanceUID (0020,000E).
    pub series_instance_uid: String,
    /// FrameOfReferenceUID (0020,0052).
    pub frame_of_reference_uid: String,
    /// Modality (0008,0060).
    pub modality: String,
    /// Per slice, in the image's z order: the image it came from.
    pub slices: Vec<SourceSlice>,
}

/// The source image of one slice: its instance, and its frame in a multi-frame file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceSlice {
    /// SOPClassUID (0008,0016).
    pub sop_class_uid: String,
    /// SOPInstanceUID (0008,0018).
    pub sop_instance_uid: String,
    /// The frame's number in a multi-frame file (from 1); `None` for a single-frame file.
    pub frame: Option<usize>,
}

/// Why the files of a folder do not make one readable series.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SeriesFault {
    /// No DICOM image file in the folder.
    #[error("no DICOM image files in the folder")]
    Empty,
    /// Files of two series.
    #[error("files of two series: {first_uid} ({first_file}) and {second_uid} ({second_file}); put each series in its own folder")]
    TwoSeries {
        /// The first SeriesInstanceUID.
        first_uid: String,
        /// A file of the first series.
        first_file: PathBuf,
        /// The second SeriesInstanceUID.
        second_uid: String,
        /// A file of the second series.
        second_file: PathBuf,
    },
    /// A field every slice must share differs.
    #[error("{field} is {first_value} in {first_file} but {value} in {file}")]
    Differs {
        /// The field (Rows, Columns, BitsAllocated, ...).
        field: &'static str,
        /// The first slice's file.
        first_file: PathBuf,
        /// Its value.
        first_value: String,
        /// The differing file.
        file: PathBuf,
        /// Its value.
        value: String,
    },
    /// A geometry field a series of several slices needs is missing.
    #[error("{file} lacks {field}, which a series of several slices needs to be stacked")]
    MissingGeometry {
        /// The file.
        file: PathBuf,
        /// The field.
        field: &'static str,
    },
    /// Two slices at the same position along the normal.
    #[error("{first_file} and {second_file} lie at the same position {position:?}")]
    DuplicatePosition {
        /// One file.
        first_file: PathBuf,
        /// The other.
        second_file: PathBuf,
        /// Their position (ImagePositionPatient of the first).
        position: [f64; 3],
    },
    /// Slices are not on a line along their normal (gantry tilt or a non-parallel stack).
    #[error("slice {file} at {position:?} lies {offset:.4} mm off the line through {first_position:?} along the slice normal (gantry tilt or slices not stacked along their normal)")]
    Tilted {
        /// The file.
        file: PathBuf,
        /// Its position.
        position: [f64; 3],
        /// The first slice's position.
        first_position: [f64; 3],
        /// The distance off the line (mm).
        offset: f64,
    },
    /// A gap of at least 1.5 times the median spacing.
    #[error("a missing slice: a gap of {gap} mm between positions {before:?} and {after:?}, where the median gap is {median} mm")]
    MissingSlice {
        /// Position before the gap.
        before: [f64; 3],
        /// Position after it.
        after: [f64; 3],
        /// The gap (mm).
        gap: f64,
        /// The median gap (mm).
        median: f64,
    },
    /// A multi-frame file beside other image files (a series is read from one multi-frame
    /// file, or from single-frame files).
    #[error("{multi_frame_file} is a multi-frame image but the folder holds other image files too ({other_file}); a series is read from one multi-frame file or from single-frame files")]
    MultiFrameMixed {
        /// The multi-frame file.
        multi_frame_file: PathBuf,
        /// Another image file of the folder.
        other_file: PathBuf,
    },
    /// Uneven spacing beyond [`SPACING_TOLERANCE`].
    #[error("uneven slice spacing: a gap of {gap} mm between positions {before:?} and {after:?}, where the mean spacing is {mean} mm (tolerance 1% + 0.001 mm)")]
    UnevenSpacing {
        /// Position before the gap.
        before: [f64; 3],
        /// Position after it.
        after: [f64; 3],
        /// The gap (mm).
        gap: f64,
        /// The mean spacing (mm).
        mean: f64,
    },
}

/// Reads the DICOM series in `folder` (every file in it but a DICOMDIR; sub-folders ignored).
///
/// # Errors
/// [`FormatError::Series`] naming the folder when the files do not make one series (see
/// [`SeriesFault`]); [`FormatError::NotFormat`] naming a file that is not DICOM; a file's
/// parse, field or size errors naming it ([`FormatError::BadHeader`],
/// [`FormatError::BadField`], [`FormatError::MissingField`], [`FormatError::DataTooShort`],
/// [`FormatError::Unsupported`]); [`FormatError::OverCeiling`] or
/// [`FormatError::OutOfMemory`] when the files or the volume pass the memory ceiling;
/// [`FormatError::Io`] when the folder or a file cannot be read.
pub fn read_dicom_series(folder: &Path) -> Result<DicomSeries, FormatError> {
    let series_err = |fault| FormatError::Series {
        path: folder.to_path_buf(),
        fault: Box::new(fault),
    };
    let mut slices = read_slices(folder)?;
    if slices.is_empty() {
        return Err(series_err(SeriesFault::Empty));
    }
    check_shared(&slices).map_err(series_err)?;
    let geometry = stack(&mut slices).map_err(series_err)?;
    let image = assemble(folder, &slices, geometry)?;
    let first = &slices[0].1.strings;
    let info = SeriesInfo {
        patient_id: first.patient_id.clone(),
        patient_name: first.patient_name.clone(),
        patient_birth_date: first.patient_birth_date.clone(),
        patient_sex: first.patient_sex.clone(),
        study_instance_uid: first.study_instance_uid.clone(),
        study_id: first.study_id.clone(),
        study_date: first.study_date.clone(),
        study_time: first.study_time.clone(),
        accession_number: first.accession_number.clone(),
        referring_physician_name: first.referring_physician_name.clone(),
        series_instance_uid: first.series_instance_uid.clone(),
        frame_of_reference_uid: first.frame_of_reference_uid.clone(),
        modality: first.modality.clone(),
        slices: slices
            .iter()
            .map(|(_, s)| SourceSlice {
                sop_class_uid: s.strings.sop_class_uid.clone(),
                sop_instance_uid: s.strings.sop_instance_uid.clone(),
                frame: s.frame,
            })
            .collect(),
    };
    Ok(DicomSeries { image, info })
}

/// Every file of the folder (by name order) read, DICOMDIRs skipped: one slice per frame,
/// named by its file, followed by ` (frame N)` for a frame of a multi-frame file.
fn read_slices(folder: &Path) -> Result<Vec<(PathBuf, Box<Slice>)>, FormatError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| FormatError::Io { path, source }
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(folder).map_err(io(folder))? {
        let entry = entry.map_err(io(folder))?;
        let path = entry.path();
        let meta = std::fs::metadata(&path).map_err(io(&path))?;
        if !meta.is_file() {
            continue;
        }
        let name = entry.file_name();
        if name.to_string_lossy().eq_ignore_ascii_case("DICOMDIR") {
            continue;
        }
        files.push((path, meta.len()));
    }
    files.sort();
    let ceiling = crate::limits::volume_ceiling();
    let mut total: u64 = 0;
    let mut budget = slice::DecodeBudget { used: 0, ceiling };
    let mut slices = Vec::new();
    let mut images: Vec<(PathBuf, bool)> = Vec::new();
    for (path, len) in files {
        total = total.saturating_add(len);
        if total > ceiling {
            return Err(FormatError::OverCeiling {
                path: folder.to_path_buf(),
                dims: vec![],
                components: 1,
                memory: crate::limits::OverCeiling {
                    bytes: total,
                    ceiling,
                },
            });
        }
        match slice::read_file(&path, len, &mut budget)? {
            FileKind::Image {
                frames,
                multi_frame,
            } => {
                for s in frames {
                    let name = match s.frame {
                        Some(k) => PathBuf::from(format!("{} (frame {k})", path.display())),
                        None => path.clone(),
                    };
                    slices.push((name, Box::new(s)));
                }
                images.push((path, multi_frame));
            }
            FileKind::Dicomdir => {}
        }
    }
    if images.len() > 1 {
        if let Some(k) = images.iter().position(|(_, multi)| *multi) {
            let other = if k == 0 { 1 } else { 0 };
            return Err(FormatError::Series {
                path: folder.to_path_buf(),
                fault: Box::new(SeriesFault::MultiFrameMixed {
                    multi_frame_file: images[k].0.clone(),
                    other_file: images[other].0.clone(),
                }),
            });
        }
    }
    Ok(slices)
}

/// Checks the series UID and the fields every slice must share.
fn check_shared(slices: &[(PathBuf, Box<Slice>)]) -> Result<(), SeriesFault> {
    let (first_file, first) = &slices[0];
    for (file, s) in &slices[1..] {
        if s.strings.series_instance_uid != first.strings.series_instance_uid {
            return Err(SeriesFault::TwoSeries {
                first_uid: first.strings.series_instance_uid.clone(),
                first_file: first_file.clone(),
                second_uid: s.strings.series_instance_uid.clone(),
                second_file: file.clone(),
            });
        }
        let fields: [(&'static str, u64, u64); 6] = [
            ("SamplesPerPixel", first.samples as u64, s.samples as u64),
            ("Rows", first.rows as u64, s.rows as u64),
            ("Columns", first.cols as u64, s.cols as u64),
            (
                "BitsAllocated",
                u64::from(first.bits_allocated),
                u64::from(s.bits_allocated),
            ),
            (
                "BitsStored",
                u64::from(first.bits_stored),
                u64::from(s.bits_stored),
            ),
            (
                "PixelRepresentation",
                u64::from(first.signed),
                u64::from(s.signed),
            ),
        ];
        for (field, a, b) in fields {
            if a != b {
                return Err(SeriesFault::Differs {
                    field,
                    first_file: first_file.clone(),
                    first_value: a.to_string(),
                    file: file.clone(),
                    value: b.to_string(),
                });
            }
        }
    }
    Ok(())
}

/// The image geometry of a series.
struct Geometry {
    spacing: [f64; 3],
    origin: [f64; 3],
    /// Row-major; columns are the row cosine, column cosine, normal.
    direction: [f64; 9],
}

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn sub(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

fn norm(a: [f64; 3]) -> f64 {
    dot(a, a).sqrt()
}

/// `a` divided by its length (unchanged when zero).
fn normalized(a: [f64; 3]) -> [f64; 3] {
    let n = norm(a);
    if n == 0.0 {
        a
    } else {
        [a[0] / n, a[1] / n, a[2] / n]
    }
}

fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

/// Sorts the slices along their normal and checks that they make one even stack.
fn stack(slices: &mut [(PathBuf, Box<Slice>)]) -> Result<Geometry, SeriesFault> {
    let several = slices.len() > 1;
    if several {
        for (file, s) in slices.iter() {
            let missing = if s.geometry.position.is_none() {
                Some("ImagePositionPatient")
            } else if s.geometry.orientation.is_none() {
                Some("ImageOrientationPatient")
            } else if s.geometry.pixel_spacing.is_none() {
                Some("PixelSpacing")
            } else {
                None
            };
            if let Some(field) = missing {
                return Err(SeriesFault::MissingGeometry {
                    file: file.clone(),
                    field,
                });
            }
        }
    }
    let first_orientation = slices[0]
        .1
        .geometry
        .orientation
        .unwrap_or([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]);
    let row = normalized([
        first_orientation[0],
        first_orientation[1],
        first_orientation[2],
    ]);
    let col = normalized([
        first_orientation[3],
        first_orientation[4],
        first_orientation[5],
    ]);
    let normal = cross(row, col);
    let pixel_spacing = slices[0].1.geometry.pixel_spacing.unwrap_or([1.0, 1.0]);
    let direction = [
        row[0], col[0], normal[0], row[1], col[1], normal[1], row[2], col[2], normal[2],
    ];
    if !several {
        let s = &slices[0].1;
        return Ok(Geometry {
            spacing: [
                pixel_spacing[1],
                pixel_spacing[0],
                s.geometry.spacing_between_slices.unwrap_or(1.0),
            ],
            origin: s.geometry.position.unwrap_or([0.0; 3]),
            direction,
        });
    }
    for (file, s) in slices.iter().skip(1) {
        let o = s.geometry.orientation.unwrap_or_default();
        if o.iter()
            .zip(first_orientation)
            .any(|(a, b)| (a - b).abs() > ORIENTATION_TOLERANCE)
        {
            return Err(SeriesFault::Differs {
                field: "ImageOrientationPatient",
                first_file: slices[0].0.clone(),
                first_value: format!("{first_orientation:?}"),
                file: file.clone(),
                value: format!("{o:?}"),
            });
        }
    }
    let pos = |s: &Slice| s.geometry.position.unwrap_or_default();
    slices.sort_by(|a, b| dot(normal, pos(&a.1)).total_cmp(&dot(normal, pos(&b.1))));
    let positions: Vec<[f64; 3]> = slices.iter().map(|(_, s)| pos(s)).collect();
    let projections: Vec<f64> = positions.iter().map(|p| dot(normal, *p)).collect();
    for i in 1..slices.len() {
        if projections[i] == projections[i - 1] {
            return Err(SeriesFault::DuplicatePosition {
                first_file: slices[i - 1].0.clone(),
                second_file: slices[i].0.clone(),
                position: positions[i - 1],
            });
        }
    }
    let first = positions[0];
    for (i, p) in positions.iter().enumerate().skip(1) {
        let d = sub(*p, first);
        let along = dot(d, normal);
        let off = norm(sub(
            d,
            [along * normal[0], along * normal[1], along * normal[2]],
        ));
        if off > TILT_TOLERANCE * norm(d) + 1e-4 {
            return Err(SeriesFault::Tilted {
                file: slices[i].0.clone(),
                position: *p,
                first_position: first,
                offset: off,
            });
        }
    }
    let gaps: Vec<f64> = projections.windows(2).map(|w| w[1] - w[0]).collect();
    let mut sorted = gaps.clone();
    sorted.sort_by(f64::total_cmp);
    let median = if sorted.len() % 2 == 1 {
        sorted[sorted.len() / 2]
    } else {
        (sorted[sorted.len() / 2 - 1] + sorted[sorted.len() / 2]) / 2.0
    };
    let n = slices.len();
    let last = positions[n - 1];
    let spacing_z = norm(sub(last, first)) / (n - 1) as f64;
    let mean = (projections[n - 1] - projections[0]) / (n - 1) as f64;
    for (i, &gap) in gaps.iter().enumerate() {
        if gap >= 1.5 * median {
            return Err(SeriesFault::MissingSlice {
                before: positions[i],
                after: positions[i + 1],
                gap,
                median,
            });
        }
    }
    for (i, &gap) in gaps.iter().enumerate() {
        if (gap - mean).abs() > SPACING_TOLERANCE * mean + 1e-3 {
            return Err(SeriesFault::UnevenSpacing {
                before: positions[i],
                after: positions[i + 1],
                gap,
                mean,
            });
        }
    }
    Ok(Geometry {
        spacing: [pixel_spacing[1], pixel_spacing[0], spacing_z],
        origin: first,
        direction,
    })
}

/// Whether `v` is a whole number.
fn is_integer(v: f64) -> bool {
    v.fract() == 0.0
}

/// The slope GDCM applies (a slope of 0 counts as 1).
fn effective_slope(s: &Slice) -> f64 {
    if s.geometry.slope == 0.0 {
        1.0
    } else {
        s.geometry.slope
    }
}

/// The output element type (see the module docs).
fn output_type(slices: &[(PathBuf, Box<Slice>)]) -> ElementType {
    let first = &slices[0].1;
    let stored = match (first.bits_allocated, first.signed) {
        (8, false) => ElementType::U8,
        (8, true) => ElementType::I8,
        (16, false) => ElementType::U16,
        (16, true) => ElementType::I16,
        (_, false) => ElementType::U32,
        (_, true) => ElementType::I32,
    };
    if first.samples != 1
        || slices
            .iter()
            .all(|(_, s)| effective_slope(s) == 1.0 && s.geometry.intercept == 0.0)
    {
        return stored;
    }
    if slices
        .iter()
        .any(|(_, s)| !is_integer(effective_slope(s)) || !is_integer(s.geometry.intercept))
    {
        return ElementType::F64;
    }
    let bits = i32::from(first.bits_stored);
    let (lo, hi) = if first.signed {
        (-(2f64.powi(bits - 1)), 2f64.powi(bits - 1) - 1.0)
    } else {
        (0.0, 2f64.powi(bits) - 1.0)
    };
    let (mut min, mut max) = (f64::INFINITY, f64::NEG_INFINITY);
    for (_, s) in slices {
        let slope = effective_slope(s);
        let (a, b) = (
            slope * lo + s.geometry.intercept,
            slope * hi + s.geometry.intercept,
        );
        min = min.min(a.min(b));
        max = max.max(a.max(b));
    }
    let bytes = usize::from(first.bits_allocated / 8);
    let candidates: &[ElementType] = if min >= 0.0 {
        &[ElementType::U8, ElementType::U16, ElementType::U32]
    } else {
        &[ElementType::I8, ElementType::I16, ElementType::I32]
    };
    let range = |t: ElementType| -> (f64, f64) {
        match t {
            ElementType::U8 => (0.0, 255.0),
            ElementType::U16 => (0.0, 65535.0),
            ElementType::U32 => (0.0, 4_294_967_295.0),
            ElementType::I8 => (-128.0, 127.0),
            ElementType::I16 => (-32768.0, 32767.0),
            _ => (-2_147_483_648.0, 2_147_483_647.0),
        }
    };
    candidates
        .iter()
        .copied()
        .find(|&t| {
            let (a, b) = range(t);
            t.size() >= bytes && a <= min && max <= b
        })
        .unwrap_or(ElementType::F64)
}

/// A stored value masked to BitsStored bits and sign-extended when signed.
fn stored_value(s: &Slice, bytes: &[u8]) -> i64 {
    let raw: u64 = match bytes.len() {
        1 => u64::from(bytes[0]),
        2 => u64::from(u16::from_le_bytes([bytes[0], bytes[1]])),
        _ => u64::from(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])),
    };
    let bits = u32::from(s.bits_stored);
    let masked = raw & ((1u64 << bits) - 1);
    if s.signed && masked >> (bits - 1) & 1 == 1 {
        masked as i64 - (1i64 << bits)
    } else {
        masked as i64
    }
}

/// The volume: slices in z order, rescaled into the output type.
fn assemble(
    folder: &Path,
    slices: &[(PathBuf, Box<Slice>)],
    geometry: Geometry,
) -> Result<RawImage, FormatError> {
    let element = output_type(slices);
    let first = &slices[0].1;
    let dims = vec![first.cols, first.rows, slices.len()];
    let components = first.samples;
    let bytes =
        crate::limits::volume_bytes(components, [dims[0], dims[1], dims[2]], element.size());
    crate::limits::check_volume_bytes(bytes).map_err(|memory| FormatError::OverCeiling {
        path: folder.to_path_buf(),
        dims: dims.clone(),
        components,
        memory,
    })?;
    let n = usize::try_from(bytes).map_err(|_| FormatError::OutOfMemory {
        path: folder.to_path_buf(),
        bytes,
    })?;
    let mut data = Vec::new();
    data.try_reserve_exact(n)
        .map_err(|_| FormatError::OutOfMemory {
            path: folder.to_path_buf(),
            bytes,
        })?;
    let stored_bytes = usize::from(first.bits_allocated / 8);
    for (_, s) in slices {
        let slope = effective_slope(s);
        let identity = s.samples != 1 || (slope == 1.0 && s.geometry.intercept == 0.0);
        for chunk in s.pixels.chunks_exact(stored_bytes) {
            let v = stored_value(s, chunk);
            let out = if identity {
                v as f64
            } else {
                slope * v as f64 + s.geometry.intercept
            };
            push(&mut data, element, out);
        }
    }
    RawImage::new(
        dims,
        geometry.spacing.to_vec(),
        geometry.origin.to_vec(),
        geometry.direction.to_vec(),
        components,
        element,
        data,
    )
    .map_err(|source| FormatError::BadGeometry {
        path: folder.to_path_buf(),
        source,
    })
}

/// Appends `v` (within the type's range by construction of [`output_type`]) as `element`.
fn push(data: &mut Vec<u8>, element: ElementType, v: f64) {
    match element {
        ElementType::U8 => data.push(v as u8),
        ElementType::I8 => data.push((v as i8) as u8),
        ElementType::U16 => data.extend_from_slice(&(v as u16).to_le_bytes()),
        ElementType::I16 => data.extend_from_slice(&(v as i16).to_le_bytes()),
        ElementType::U32 => data.extend_from_slice(&(v as u32).to_le_bytes()),
        ElementType::I32 => data.extend_from_slice(&(v as i32).to_le_bytes()),
        ElementType::U64 => data.extend_from_slice(&(v as u64).to_le_bytes()),
        ElementType::I64 => data.extend_from_slice(&(v as i64).to_le_bytes()),
        ElementType::F32 => data.extend_from_slice(&(v as f32).to_le_bytes()),
        ElementType::F64 => data.extend_from_slice(&v.to_le_bytes()),
    }
}
