//! A DICOM Segmentation (SEG) writer: a label map on a source series' grid written as one
//! binary Segmentation Storage object, as highdicom writes a BINARY segmentation (checked
//! with highdicom and pydicom by `scripts/check_dicom_seg.py`).
//!
//! The Part 10 bytes are written by hand (preamble, `DICM`, the file meta group with its group
//! length, then an explicit VR little endian data set whose sequences and items all have
//! defined lengths); each data set is kept sorted by tag in a `BTreeMap` before it is encoded.

use std::path::Path;

use super::super::encode::{write_parts, Part};
use super::super::{ElementType, FormatError, InvalidImage, RawImage};
use super::part10::{code, header, lo, new_uid, now_utc, Ds};
use super::DicomSeries;

/// Segmentation Storage.
pub const SEG_SOP_CLASS_UID: &str = "1.2.840.10008.5.1.4.1.1.66.4";
const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";
/// A fixed `2.25` UID naming this implementation in the file meta group.
pub(super) const IMPLEMENTATION_CLASS_UID: &str = "2.25.182735318326113953960226457432412470017";

/// The most PixelData bytes: a defined 32-bit length, even, below the undefined-length marker.
const MAX_PIXEL_BYTES: usize = 0xFFFF_FFFE;
/// The most frames: each frame's functional groups take under 1 KiB, so the per-frame
/// sequence's 32-bit length holds them.
const MAX_FRAMES: usize = 4_000_000;

/// Checks the label map against the source and the segment list.
fn check(
    labels: &RawImage,
    source: &DicomSeries,
    segments: &[(u16, String)],
) -> Result<(), String> {
    let img = &source.image;
    if labels.dims.len() != 3 || img.dims.len() != 3 {
        return Err("the label map and the source must be 3-D".into());
    }
    if labels.dims != img.dims {
        return Err(format!(
            "the label map's dims {:?} differ from the source series' {:?}",
            labels.dims, img.dims
        ));
    }
    let close = |a: &[f64], b: &[f64]| {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| (x - y).abs() <= 1e-6 * (1.0 + y.abs()))
    };
    if !close(&labels.spacing, &img.spacing)
        || !close(&labels.origin, &img.origin)
        || !close(&labels.direction, &img.direction)
    {
        return Err("the label map's geometry differs from the source series'".into());
    }
    if labels.components != 1 || !matches!(labels.element, ElementType::U8 | ElementType::U16) {
        return Err(format!(
            "a label map must be one-component u8 or u16, not {} × {:?}",
            labels.components, labels.element
        ));
    }
    if labels.data.len() != labels.n_voxels() * labels.element.size() {
        return Err("the label map's data does not match its dims".into());
    }
    if source.info.slices.len() != img.dims[2] {
        return Err(format!(
            "the source lists {} slices for {} planes",
            source.info.slices.len(),
            img.dims[2]
        ));
    }
    if img.dims[0] > 65535 || img.dims[1] > 65535 {
        return Err("rows or columns pass 65535".into());
    }
    if segments.is_empty() || segments.len() > 65535 {
        return Err("no segments (or more than 65535)".into());
    }
    for (i, (value, _)) in segments.iter().enumerate() {
        if *value == 0 {
            return Err("label 0 is background, not a segment".into());
        }
        if segments[..i].iter().any(|(v, _)| v == value) {
            return Err(format!("label {value} is listed twice"));
        }
    }
    Ok(())
}

/// Writes `labels` (a label map on `source`'s grid) as a binary DICOM Segmentation Storage
/// object at `path`, explicit VR little endian, one segment per entry of `segments` (label
/// value, name), numbered 1.. in their order; label 0 is background. Patient, study and frame
/// of reference are the source's; the series and instance are new. The shared functional
/// groups give PixelSpacing (y, x spacing), SliceThickness and SpacingBetweenSlices (z
/// spacing) and ImageOrientationPatient (the direction's first two columns); each frame's
/// ImagePositionPatient is `origin + k · spacing_z · direction column 2` for slice k, and it
/// references slice k's SOP instance. The file is written atomically.
///
/// # Choices
/// - **Frames:** one per (segment, slice), in highdicom's order: segment-major, then the
///   slices from the last of the image's z order to the first (highdicom numbers planes
///   descending along row cosine × column cosine); DimensionIndexValues are (segment number,
///   nz − k) for slice k. Frames without a voxel of their segment are omitted (highdicom's
///   default `omit_empty_frames=True`). A label map with no segment voxel at all gets every
///   frame (segments × slices, all empty), as highdicom 0.28 does. For the ct_int16 and
///   oblique fixtures the frames, their functional groups and the PixelData bytes equal highdicom
///   0.28.2's for the same input.
/// - **UIDs:** the SeriesInstanceUID, SOPInstanceUID and DimensionOrganizationUID are
///   `2.25.<n>` with `n` a 128-bit number from two randomly keyed SipHash hashers of std
///   (`RandomState`) over the time, the process id, a counter and the source series UID
///   (random per call, not cryptographic).
/// - **Codes:** every segment's category is SCT 91723000 "Anatomical Structure" and its type
///   SCT 85756007 "Tissue" (a generic code: dataset.json names carry no coded meaning); its
///   SegmentationAlgorithmIdentificationSequence names `autoseg` (the crate version) of family
///   DCM 123110 "Artificial Intelligence". Source references carry SpatialLocationsPreserved
///   `YES`, purpose DCM 121322 and derivation DCM 113076 "Segmentation", as highdicom's.
/// - Other attributes as highdicom 0.28 writes them for the same input (compared attribute by
///   attribute): SegmentsOverlap `NO`, PresentationLUTShape `IDENTITY`, InstanceCreation
///   Date/Time, the top-level SourceImageSequence. Not written: ContributingEquipmentSequence
///   (type 3; highdicom names itself there). SliceThickness is the z spacing (the series reader
///   does not keep the source's SliceThickness, which highdicom copies).
/// - SeriesNumber 100, InstanceNumber 1, ContentLabel `AUTOSEG`, Manufacturer and
///   ManufacturerModelName `autoseg`, SoftwareVersions the crate version, ContentDate/Time the
///   UTC time of writing, SpecificCharacterSet `ISO_IR 192` (UTF-8). A segment name is
///   cut to 64 characters (LO) with any `\` replaced by `/`.
///
/// # Errors
/// [`FormatError::InvalidImage`] naming `path` when the label map is not 3-D, one-component
/// `u8`/`u16` on the source's grid, when the source's slice list does not match its planes,
/// when `segments` is empty, lists label 0 or a label twice, when a voxel holds a label
/// that is not listed, or when the frames pass what one file with 32-bit lengths holds (4
/// GiB of pixel data, 4 million frames); [`FormatError::OutOfMemory`] when the pixel data
/// cannot be reserved; [`FormatError::Write`] when the file cannot be written.
pub fn write_dicom_seg(
    path: &Path,
    labels: &RawImage,
    source: &DicomSeries,
    segments: &[(u16, String)],
) -> Result<(), FormatError> {
    let invalid = |reason: String| FormatError::InvalidImage {
        path: path.to_path_buf(),
        source: InvalidImage::new(reason),
    };
    check(labels, source, segments).map_err(invalid)?;
    let img = &source.image;
    let info = &source.info;
    let (nx, ny, nz) = (img.dims[0], img.dims[1], img.dims[2]);
    let plane = nx * ny;
    let value = |i: usize| -> u16 {
        match labels.element {
            ElementType::U8 => u16::from(labels.data[i]),
            _ => u16::from_le_bytes([labels.data[2 * i], labels.data[2 * i + 1]]),
        }
    };
    // Segment index (1-based) per label value; 0 = background.
    let mut seg_of = vec![0u16; 65536];
    for (i, (v, _)) in segments.iter().enumerate() {
        seg_of[usize::from(*v)] = (i + 1) as u16;
    }
    // present[s][k]: segment s+1 has a voxel in slice k.
    let mut present = vec![vec![false; nz]; segments.len()];
    for i in 0..nz * plane {
        let v = value(i);
        if v == 0 {
            continue;
        }
        let s = seg_of[usize::from(v)];
        if s == 0 {
            return Err(invalid(format!(
                "voxel {i} holds label {v}, which is not among the segments"
            )));
        }
        present[usize::from(s) - 1][i / plane] = true;
    }
    // With no segment voxel at all, every frame (highdicom: "omitting all frames is not
    // possible").
    let all = !present.iter().flatten().any(|&p| p);
    let mut frames: Vec<(u16, usize)> = Vec::new();
    for (s, slices) in present.iter().enumerate() {
        for (k, &p) in slices.iter().enumerate().rev() {
            if p || all {
                frames.push(((s + 1) as u16, k));
            }
        }
    }
    // Pixel data: frames of rows × columns bits, LSB first, packed continuously.
    let total_bits = frames.len() * plane;
    let bytes = total_bits.div_ceil(8).next_multiple_of(2);
    if bytes > MAX_PIXEL_BYTES || frames.len() > MAX_FRAMES {
        return Err(invalid(format!(
            "{} frames of {ny} × {nx} pixels pass what one SEG file with defined lengths can hold \
             ({MAX_FRAMES} frames, {MAX_PIXEL_BYTES} bytes of pixel data)",
            frames.len()
        )));
    }
    let mut pixels = Vec::new();
    pixels
        .try_reserve_exact(bytes)
        .map_err(|_| FormatError::OutOfMemory {
            path: path.to_path_buf(),
            bytes: bytes as u128,
        })?;
    pixels.resize(bytes, 0);
    for (f, &(s, k)) in frames.iter().enumerate() {
        let want = segments[usize::from(s) - 1].0;
        let base = f * plane;
        for p in 0..plane {
            if value(k * plane + p) == want {
                let bit = base + p;
                pixels[bit / 8] |= 1 << (bit % 8);
            }
        }
    }

    let d = &img.direction;
    let col = |j: usize| [d[j], d[3 + j], d[6 + j]];
    let (row_dir, col_dir, normal) = (col(0), col(1), col(2));
    let position = |k: usize| -> [f64; 3] {
        let t = k as f64 * img.spacing[2];
        [
            img.origin[0] + normal[0] * t,
            img.origin[1] + normal[1] * t,
            img.origin[2] + normal[2] * t,
        ]
    };
    let series_uid = new_uid(&info.series_instance_uid);
    let sop_uid = new_uid(&info.series_instance_uid);
    let dim_org_uid = new_uid(&info.series_instance_uid);
    let (date, time) = now_utc();

    let mut ds = Ds::default();
    ds.text(0x0008_0005, b"CS", "ISO_IR 192")
        .text(0x0008_0008, b"CS", "DERIVED\\PRIMARY")
        .text(0x0008_0012, b"DA", &date)
        .text(0x0008_0013, b"TM", &time)
        .text(0x0008_0016, b"UI", SEG_SOP_CLASS_UID)
        .text(0x0008_0018, b"UI", &sop_uid)
        .text(0x0008_0020, b"DA", &info.study_date)
        .text(0x0008_0023, b"DA", &date)
        .text(0x0008_0030, b"TM", &info.study_time)
        .text(0x0008_0033, b"TM", &time)
        .text(0x0008_0050, b"SH", &info.accession_number)
        .text(0x0008_0060, b"CS", "SEG")
        .text(0x0008_0070, b"LO", "autoseg")
        .text(0x0008_0090, b"PN", &info.referring_physician_name)
        .text(0x0008_1090, b"LO", "autoseg")
        .text(0x0010_0010, b"PN", &info.patient_name)
        .text(0x0010_0020, b"LO", &info.patient_id)
        .text(0x0010_0030, b"DA", &info.patient_birth_date)
        .text(0x0010_0040, b"CS", &info.patient_sex)
        .text(0x0018_1000, b"LO", "0")
        .text(0x0018_1020, b"LO", env!("CARGO_PKG_VERSION"))
        .text(0x0020_000D, b"UI", &info.study_instance_uid)
        .text(0x0020_000E, b"UI", &series_uid)
        .text(0x0020_0010, b"SH", &info.study_id)
        .text(0x0020_0011, b"IS", "100")
        .text(0x0020_0013, b"IS", "1")
        .text(0x0020_0052, b"UI", &info.frame_of_reference_uid)
        .text(0x0020_1040, b"LO", "")
        .us(0x0028_0002, &[1])
        .text(0x0028_0004, b"CS", "MONOCHROME2")
        .text(0x0028_0008, b"IS", &frames.len().to_string())
        .us(0x0028_0010, &[ny as u16])
        .us(0x0028_0011, &[nx as u16])
        .us(0x0028_0100, &[1])
        .us(0x0028_0101, &[1])
        .us(0x0028_0102, &[0])
        .us(0x0028_0103, &[0])
        .text(0x0028_2110, b"CS", "00")
        .text(0x0062_0001, b"CS", "BINARY")
        .text(0x0062_0013, b"CS", "NO")
        .text(0x0070_0080, b"CS", "AUTOSEG")
        .text(0x0070_0081, b"LO", "")
        .text(0x0070_0084, b"PN", "")
        .text(0x2050_0020, b"CS", "IDENTITY");

    // Common Instance Reference: the source series and its instances (a multi-frame file
    // once); every source image in the top-level SourceImageSequence too (as highdicom).
    let mut instances: Vec<(&str, &str)> = Vec::new();
    for slice in &info.slices {
        let instance = (&*slice.sop_class_uid, &*slice.sop_instance_uid);
        if !instances.contains(&instance) {
            instances.push(instance);
        }
    }
    let references = || -> Vec<Ds> {
        instances
            .iter()
            .map(|&(class, uid)| {
                let mut r = Ds::default();
                r.text(0x0008_1150, b"UI", class)
                    .text(0x0008_1155, b"UI", uid);
                r
            })
            .collect()
    };
    ds.seq(0x0008_2112, references());
    let instances = references();
    let mut series_ref = Ds::default();
    series_ref
        .seq(0x0008_114A, instances)
        .text(0x0020_000E, b"UI", &info.series_instance_uid);
    ds.seq(0x0008_1115, vec![series_ref]);

    // Multi-frame dimensions: ReferencedSegmentNumber, then ImagePositionPatient.
    let mut org = Ds::default();
    org.text(0x0020_9164, b"UI", &dim_org_uid);
    ds.seq(0x0020_9221, vec![org]);
    let index = |pointer: u32, group: u32, label: &str| {
        let mut x = Ds::default();
        x.text(0x0020_9164, b"UI", &dim_org_uid)
            .at(0x0020_9165, pointer)
            .at(0x0020_9167, group)
            .text(0x0020_9421, b"LO", label);
        x
    };
    ds.seq(
        0x0020_9222,
        vec![
            index(0x0062_000B, 0x0062_000A, "Referenced Segment Number"),
            index(0x0020_0032, 0x0020_9113, "Image Position Patient"),
        ],
    );

    let mut algorithm = Ds::default();
    algorithm
        .seq(
            0x0066_002F,
            vec![code("123110", "DCM", "Artificial Intelligence")],
        )
        .text(0x0066_0031, b"LO", env!("CARGO_PKG_VERSION"))
        .text(0x0066_0036, b"LO", "autoseg");
    let segment_items = segments
        .iter()
        .enumerate()
        .map(|(i, (_, name))| {
            let mut s = Ds::default();
            s.seq(
                0x0062_0003,
                vec![code("91723000", "SCT", "Anatomical Structure")],
            )
            .us(0x0062_0004, &[(i + 1) as u16])
            .text(0x0062_0005, b"LO", &lo(name))
            .text(0x0062_0008, b"CS", "AUTOMATIC")
            .text(0x0062_0009, b"LO", "autoseg")
            .seq(0x0062_0007, vec![algorithm.clone()])
            .seq(0x0062_000F, vec![code("85756007", "SCT", "Tissue")]);
            s
        })
        .collect();
    ds.seq(0x0062_0002, segment_items);

    // Shared functional groups: pixel measures and plane orientation.
    let mut measures = Ds::default();
    measures
        .ds(0x0018_0050, &[img.spacing[2]])
        .ds(0x0018_0088, &[img.spacing[2]])
        .ds(0x0028_0030, &[img.spacing[1], img.spacing[0]]);
    let mut orientation = Ds::default();
    orientation.ds(
        0x0020_0037,
        &[
            row_dir[0], row_dir[1], row_dir[2], col_dir[0], col_dir[1], col_dir[2],
        ],
    );
    let mut shared = Ds::default();
    shared
        .seq(0x0028_9110, vec![measures])
        .seq(0x0020_9116, vec![orientation]);
    ds.seq(0x5200_9229, vec![shared]);

    // Per-frame functional groups.
    let per_frame = frames
        .iter()
        .map(|&(s, k)| {
            let slice = &info.slices[k];
            let mut src = Ds::default();
            src.text(0x0008_1150, b"UI", &slice.sop_class_uid).text(
                0x0008_1155,
                b"UI",
                &slice.sop_instance_uid,
            );
            // ReferencedFrameNumber: the frame of a multi-frame source.
            if let Some(frame) = slice.frame {
                src.text(0x0008_1160, b"IS", &frame.to_string());
            }
            src.text(0x0028_135A, b"CS", "YES").seq(
                0x0040_A170,
                vec![code(
                    "121322",
                    "DCM",
                    "Source image for image processing operation",
                )],
            );
            let mut derivation = Ds::default();
            derivation
                .seq(0x0008_2112, vec![src])
                .seq(0x0008_9215, vec![code("113076", "DCM", "Segmentation")]);
            let mut content = Ds::default();
            content.ul(0x0020_9157, &[u32::from(s), (nz - k) as u32]);
            let mut pos = Ds::default();
            pos.ds(0x0020_0032, &position(k));
            let mut ident = Ds::default();
            ident.us(0x0062_000B, &[s]);
            let mut frame = Ds::default();
            frame
                .seq(0x0008_9124, vec![derivation])
                .seq(0x0020_9111, vec![content])
                .seq(0x0020_9113, vec![pos])
                .seq(0x0062_000A, vec![ident]);
            frame
        })
        .collect();
    ds.seq(0x5200_9230, per_frame);

    // File meta group.
    let mut meta = Ds::default();
    meta.raw(0x0002_0001, b"OB", &[0, 1])
        .text(0x0002_0002, b"UI", SEG_SOP_CLASS_UID)
        .text(0x0002_0003, b"UI", &sop_uid)
        .text(0x0002_0010, b"UI", EXPLICIT_VR_LE)
        .text(0x0002_0012, b"UI", IMPLEMENTATION_CLASS_UID)
        .text(0x0002_0013, b"SH", "AUTOSEG");
    let meta_bytes = meta.bytes();
    let mut head = vec![0u8; 128];
    head.extend_from_slice(b"DICM");
    head.extend_from_slice(&header(0x0002_0000, b"UL", 4));
    head.extend_from_slice(&(meta_bytes.len() as u32).to_le_bytes());
    head.extend_from_slice(&meta_bytes);
    head.extend_from_slice(&ds.bytes());
    let pixel_header = header(0x7FE0_0010, b"OB", pixels.len());
    write_parts(
        path,
        &[
            Part::Bytes(&head),
            Part::Bytes(&pixel_header),
            Part::Bytes(&pixels),
        ],
    )
}

/// Fixture tests: SEGs of fixture series parsed back with dicom-object; with `AUTOSEG_SEG_OUT`
/// set, each SEG and its label map (`<name>.json`: dims, values x fastest, segments) are also
/// written there for `scripts/check_dicom_seg.py`.
#[cfg(test)]
mod fixture_tests {
    use std::path::{Path, PathBuf};

    use dicom_dictionary_std::tags;
    use dicom_object::{open_file, InMemDicomObject};

    use super::super::{read_dicom_series, SeriesInfo, SourceSlice};
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures/data/dicom")
            .join(name)
    }

    /// The segments: label 5 is listed but absent; listed out of value order.
    fn segments() -> Vec<(u16, String)> {
        vec![
            (1, "liver".into()),
            (2, "spleen".into()),
            (5, "absent tümour".into()),
            (3, "kidney\\left".into()),
        ]
    }

    /// An asymmetric synthetic label map on `dims`.
    fn label_values(dims: &[usize]) -> Vec<u16> {
        let (nx, ny, nz) = (dims[0], dims[1], dims[2]);
        let mut v = vec![0u16; nx * ny * nz];
        for z in 0..nz {
            for y in 0..ny {
                for x in 0..nx {
                    let i = x + nx * (y + ny * z);
                    if x < nx / 3 && y > ny / 2 && z >= 1 {
                        v[i] = 1;
                    } else if (x + 2 * y + 3 * z) % 7 == 0 && z <= 2 {
                        v[i] = 2;
                    }
                }
            }
        }
        v[(nx - 1) + nx * (nz - 1) * ny] = 3;
        v
    }

    fn str_of(obj: &InMemDicomObject, tag: dicom_core::Tag) -> String {
        obj.element(tag)
            .unwrap()
            .to_str()
            .unwrap()
            .trim_end_matches(['\0', ' '])
            .to_string()
    }

    fn item(obj: &InMemDicomObject, tag: dicom_core::Tag) -> &InMemDicomObject {
        &obj.element(tag).unwrap().items().unwrap()[0]
    }

    fn write_and_check(name: &str, element: ElementType) {
        let series = read_dicom_series(&fixture(name)).unwrap();
        let values = label_values(&series.image.dims);
        write_and_check_series(name, &series, element, serde_json::json!(name), values);
    }

    /// Writes the synthetic label map of `series`' dims, reads it back, compares; `source`
    /// goes to the JSON for the Python check.
    fn write_and_check_series(
        name: &str,
        series: &DicomSeries,
        element: ElementType,
        source: serde_json::Value,
        values: Vec<u16>,
    ) {
        let dims = series.image.dims.clone();
        let mut labels = series.image.clone();
        labels.forget_source();
        labels.element = element;
        labels.data = match element {
            ElementType::U8 => values.iter().map(|&v| v as u8).collect(),
            _ => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("{name}.dcm"));
        write_dicom_seg(&path, &labels, series, &segments()).unwrap();

        let obj = open_file(&path).unwrap();
        assert_eq!(obj.meta().transfer_syntax(), EXPLICIT_VR_LE);
        assert_eq!(str_of(&obj, tags::SOP_CLASS_UID), SEG_SOP_CLASS_UID);
        assert_eq!(str_of(&obj, tags::MODALITY), "SEG");
        assert_eq!(
            str_of(&obj, tags::STUDY_INSTANCE_UID),
            series.info.study_instance_uid
        );
        assert_ne!(
            str_of(&obj, tags::SERIES_INSTANCE_UID),
            series.info.series_instance_uid
        );
        assert_eq!(
            str_of(&obj, tags::FRAME_OF_REFERENCE_UID),
            series.info.frame_of_reference_uid
        );
        assert_eq!(str_of(&obj, tags::PATIENT_ID), series.info.patient_id);
        let (nx, ny, nz) = (dims[0], dims[1], dims[2]);
        let rows: u16 = obj.element(tags::ROWS).unwrap().to_int().unwrap();
        let cols: u16 = obj.element(tags::COLUMNS).unwrap().to_int().unwrap();
        assert_eq!((usize::from(rows), usize::from(cols)), (ny, nx));
        let labels_read: Vec<String> = obj
            .element(tags::SEGMENT_SEQUENCE)
            .unwrap()
            .items()
            .unwrap()
            .iter()
            .map(|s| str_of(s, tags::SEGMENT_LABEL))
            .collect();
        assert_eq!(
            labels_read,
            ["liver", "spleen", "absent tümour", "kidney/left"]
        );
        // Frames expected: (segment, slice) with a voxel of that segment; all when none has.
        let segs = segments();
        let mut want_frames = 0;
        for (v, _) in &segs {
            for z in 0..nz {
                if values[z * nx * ny..(z + 1) * nx * ny].contains(v) {
                    want_frames += 1;
                }
            }
        }
        if want_frames == 0 {
            want_frames = segs.len() * nz;
        }
        let n_frames: usize = obj
            .element(tags::NUMBER_OF_FRAMES)
            .unwrap()
            .to_int()
            .unwrap();
        assert_eq!(n_frames, want_frames);
        // Rebuild the label map from every frame's segment and position.
        let pixels = obj.element(tags::PIXEL_DATA).unwrap().to_bytes().unwrap();
        assert_eq!(pixels.len() % 2, 0);
        assert_eq!(
            pixels.len(),
            (n_frames * nx * ny).div_ceil(8).next_multiple_of(2)
        );
        let last_bit = n_frames * nx * ny;
        for bit in last_bit..8 * pixels.len() {
            assert_eq!(pixels[bit / 8] >> (bit % 8) & 1, 0, "padding bit {bit} set");
        }
        let frames = obj
            .element(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE)
            .unwrap()
            .items()
            .unwrap();
        assert_eq!(frames.len(), n_frames);
        let mut rebuilt = vec![0u16; values.len()];
        for (f, group) in frames.iter().enumerate() {
            let seg: u16 = item(group, tags::SEGMENT_IDENTIFICATION_SEQUENCE)
                .element(tags::REFERENCED_SEGMENT_NUMBER)
                .unwrap()
                .to_int()
                .unwrap();
            let index: Vec<u32> = item(group, tags::FRAME_CONTENT_SEQUENCE)
                .element(tags::DIMENSION_INDEX_VALUES)
                .unwrap()
                .to_multi_int()
                .unwrap();
            assert_eq!(index[0], u32::from(seg));
            let z = nz - index[1] as usize;
            let src = item(
                item(group, tags::DERIVATION_IMAGE_SEQUENCE),
                tags::SOURCE_IMAGE_SEQUENCE,
            );
            assert_eq!(
                str_of(src, tags::REFERENCED_SOP_INSTANCE_UID),
                series.info.slices[z].sop_instance_uid
            );
            // A multi-frame source's frame is named (ReferencedFrameNumber).
            let frame = src
                .element(tags::REFERENCED_FRAME_NUMBER)
                .ok()
                .map(|e| e.to_int::<usize>().unwrap());
            assert_eq!(frame, series.info.slices[z].frame);
            let ipp: Vec<f64> = item(group, tags::PLANE_POSITION_SEQUENCE)
                .element(tags::IMAGE_POSITION_PATIENT)
                .unwrap()
                .to_multi_float64()
                .unwrap();
            let d = &series.image.direction;
            for a in 0..3 {
                let want =
                    series.image.origin[a] + d[3 * a + 2] * series.image.spacing[2] * z as f64;
                assert!((ipp[a] - want).abs() < 1e-6, "{ipp:?}");
            }
            let label = segs[usize::from(seg) - 1].0;
            for p in 0..nx * ny {
                let bit = f * nx * ny + p;
                if pixels[bit / 8] >> (bit % 8) & 1 == 1 {
                    assert_eq!(rebuilt[z * nx * ny + p], 0, "two segments at one voxel");
                    rebuilt[z * nx * ny + p] = label;
                }
            }
        }
        assert_eq!(rebuilt, values);

        if let Some(out) = std::env::var_os("AUTOSEG_SEG_OUT") {
            let out = PathBuf::from(out);
            std::fs::create_dir_all(&out).unwrap();
            std::fs::copy(&path, out.join(format!("{name}.dcm"))).unwrap();
            let json = serde_json::json!({
                "source": source,
                "dims": dims,
                "values": values,
                "segments": segs,
            });
            std::fs::write(out.join(format!("{name}.json")), json.to_string()).unwrap();
        }
    }

    #[test]
    fn ct_int16_seg_reads_back() {
        write_and_check("ct_int16", ElementType::U8);
    }

    #[test]
    fn oblique_seg_reads_back() {
        write_and_check("oblique", ElementType::U16);
    }

    /// A Legacy Converted Enhanced CT (one file, five frames): every SEG frame names its source
    /// frame, and the series' references list the one instance once.
    #[test]
    fn multi_frame_source_frames_are_referenced() {
        write_and_check("legacy_ct_oblique", ElementType::U8);
        let series = read_dicom_series(&fixture("legacy_ct_oblique")).unwrap();
        let frames: Vec<Option<usize>> = series.info.slices.iter().map(|s| s.frame).collect();
        let mut sorted: Vec<usize> = frames.iter().map(|f| f.unwrap()).collect();
        sorted.sort_unstable();
        assert_eq!(sorted, [1, 2, 3, 4, 5]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg.dcm");
        let dims = &series.image.dims;
        let labels = RawImage::new(
            dims.clone(),
            series.image.spacing.clone(),
            series.image.origin.clone(),
            series.image.direction.clone(),
            1,
            ElementType::U8,
            vec![1; dims.iter().product()],
        )
        .unwrap();
        write_dicom_seg(&path, &labels, &series, &[(1, "all".into())]).unwrap();
        let obj = open_file(&path).unwrap();
        let referenced = item(&obj, tags::REFERENCED_SERIES_SEQUENCE)
            .element(tags::REFERENCED_INSTANCE_SEQUENCE)
            .unwrap()
            .items()
            .unwrap()
            .len();
        assert_eq!(referenced, 1);
    }

    /// A synthetic series of 5 × 3 pixels (15 bits a frame: frames do not start on a byte; 8
    /// frames: 15 bytes, so one byte of padding) and
    /// an oblique direction; the Python check rebuilds its source from the JSON.
    #[test]
    fn odd_sized_frames_pack_continuously() {
        let (c, s) = (0.8, 0.6);
        // Row cosine (c, s, 0), column cosine (0, 0, -1), normal = row × column.
        let row = [c, s, 0.0];
        let col = [0.0, 0.0, -1.0];
        let n = [
            row[1] * col[2] - row[2] * col[1],
            row[2] * col[0] - row[0] * col[2],
            row[0] * col[1] - row[1] * col[0],
        ];
        let direction = vec![
            row[0], col[0], n[0], row[1], col[1], n[1], row[2], col[2], n[2],
        ];
        let dims = vec![5, 3, 5];
        let image = RawImage::new(
            dims.clone(),
            vec![0.7, 1.3, 2.5],
            vec![10.0, -4.0, 7.0],
            direction,
            1,
            ElementType::I16,
            vec![0; 2 * 75],
        )
        .unwrap();
        let root = "2.25.1234567";
        let info = SeriesInfo {
            patient_id: "SYN".into(),
            patient_name: "Syn^Thetic".into(),
            study_instance_uid: format!("{root}.1"),
            series_instance_uid: format!("{root}.2"),
            frame_of_reference_uid: format!("{root}.3"),
            modality: "MR".into(),
            slices: (0..dims[2])
                .map(|k| SourceSlice {
                    sop_class_uid: "1.2.840.10008.5.1.4.1.1.4".to_string(),
                    sop_instance_uid: format!("{root}.4.{k}"),
                    frame: None,
                })
                .collect(),
            ..SeriesInfo::default()
        };
        let series = DicomSeries { image, info };
        let positions: Vec<Vec<f64>> = (0..dims[2])
            .map(|k| {
                (0..3)
                    .map(|a| {
                        series.image.origin[a]
                            + series.image.direction[3 * a + 2] * series.image.spacing[2] * k as f64
                    })
                    .collect()
            })
            .collect();
        let source = serde_json::json!({
            "study": series.info.study_instance_uid,
            "series": series.info.series_instance_uid,
            "frame_of_reference": series.info.frame_of_reference_uid,
            "patient_id": series.info.patient_id,
            "instances": series
                .info
                .slices
                .iter()
                .map(|s| [&s.sop_class_uid, &s.sop_instance_uid])
                .collect::<Vec<_>>(),
            "positions": positions,
            "orientation": [row[0], row[1], row[2], col[0], col[1], col[2]],
            "pixel_spacing": [1.3, 0.7],
        });
        let values = label_values(&dims);
        write_and_check_series("synthetic_5x3", &series, ElementType::U8, source, values);
    }

    /// No segment voxel: every (segment, slice) frame, all empty, as highdicom.
    #[test]
    fn empty_label_map_gets_every_frame() {
        let series = read_dicom_series(&fixture("ct_int16")).unwrap();
        let values = vec![0; series.image.n_voxels()];
        let source = serde_json::json!("ct_int16");
        write_and_check_series("ct_int16_empty", &series, ElementType::U8, source, values);
    }

    #[test]
    fn bad_inputs_are_refused() {
        let series = read_dicom_series(&fixture("ct_int16")).unwrap();
        let mut labels = series.image.clone();
        labels.forget_source();
        labels.element = ElementType::U8;
        labels.data = vec![0; labels.n_voxels()];
        labels.data[3] = 7;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.dcm");
        let refused = |labels: &RawImage, segs: &[(u16, String)]| match write_dicom_seg(
            &path, labels, &series, segs,
        ) {
            Err(FormatError::InvalidImage { path: p, .. }) => assert_eq!(p, path),
            other => panic!("{other:?}"),
        };
        refused(&labels, &[(1, "a".into())]); // label 7 not listed
        refused(&labels, &[(0, "bg".into()), (7, "x".into())]);
        refused(&labels, &[(7, "x".into()), (7, "y".into())]);
        refused(&labels, &[]);
        let mut float = labels.clone();
        float.element = ElementType::I16;
        float.data = vec![0; 2 * labels.n_voxels()];
        refused(&float, &[(7, "x".into())]);
        let mut moved = labels.clone();
        moved.origin[0] += 1.0;
        refused(&moved, &[(7, "x".into())]);
        assert!(!path.exists());
        write_dicom_seg(&path, &labels, &series, &[(7, "x".into())]).unwrap();
    }
}
