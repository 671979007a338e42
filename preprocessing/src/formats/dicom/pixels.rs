//! The stored values of every frame of a file: native pixel data split into frames, or
//! encapsulated fragments grouped into frames (one per fragment, all of them for one frame,
//! or as the basic offset table says) and decoded by [`codec`](super::codec).

use std::path::Path;

use dicom_core::value::{PrimitiveValue, Value};
use dicom_dictionary_std::tags;
use dicom_object::DefaultDicomObject;

use super::super::FormatError;
use super::codec::{Codec, FrameShape};

/// Each frame's stored values as little-endian bytes, colour by pixel.
///
/// # Errors
/// [`FormatError::MissingField`] without PixelData; [`FormatError::DataTooShort`] for native
/// data shorter than `frames` frames; [`FormatError::Unsupported`] for an encapsulated
/// transfer syntax not read; [`FormatError::BadField`] when the fragments do not make
/// `frames` frames; [`FormatError::Decode`] when a frame does not decode to its size.
pub(super) fn frames(
    path: &Path,
    object: &DefaultDicomObject,
    shape: FrameShape,
    n_frames: usize,
    planar: bool,
) -> Result<Vec<Vec<u8>>, FormatError> {
    let element = match object.element_opt(tags::PIXEL_DATA) {
        Ok(Some(e)) => e,
        _ => {
            return Err(FormatError::MissingField {
                path: path.to_path_buf(),
                field: "PixelData",
            })
        }
    };
    let frame_len = shape.len();
    match element.value() {
        Value::Primitive(p) => {
            let expected = frame_len * n_frames;
            let Some(mut bytes) = le_bytes(p, expected) else {
                return Err(FormatError::DataTooShort {
                    path: path.to_path_buf(),
                    expected: expected as u128,
                    found: p.to_bytes().len() as u128,
                });
            };
            // A single-frame file (a series' usual slice): its bytes are the frame, uncopied.
            if n_frames == 1 && !planar && frame_len > 0 {
                bytes.truncate(frame_len);
                return Ok(vec![bytes]);
            }
            let mut out = Vec::new();
            for frame in bytes.chunks_exact(frame_len.max(1)).take(n_frames) {
                out.push(if planar {
                    interleave(frame, shape.pixels())
                } else {
                    frame.to_vec()
                });
            }
            Ok(out)
        }
        Value::PixelSequence(seq) => {
            let ts = object
                .meta()
                .transfer_syntax()
                .trim_end_matches(['\0', ' ']);
            let codec = Codec::of(ts).map_err(|what| FormatError::Unsupported {
                path: path.to_path_buf(),
                what,
            })?;
            if codec == Codec::JpegBaseline && shape.bytes != 1 {
                return Err(FormatError::Unsupported {
                    path: path.to_path_buf(),
                    what: format!(
                        "JPEG Baseline with BitsAllocated {} (it holds 8-bit samples)",
                        8 * shape.bytes
                    ),
                });
            }
            let fragments = seq.fragments();
            let groups =
                group_fragments(fragments, seq.offset_table(), n_frames).map_err(|reason| {
                    FormatError::BadField {
                        path: path.to_path_buf(),
                        field: "PixelData".to_string(),
                        value: format!(
                            "{} fragment(s), {} offset(s)",
                            fragments.len(),
                            seq.offset_table().len()
                        ),
                        reason,
                    }
                })?;
            let mut out = Vec::new();
            for (k, range) in groups.into_iter().enumerate() {
                let data: Vec<u8> = if range.len() == 1 {
                    fragments[range.start].clone()
                } else {
                    fragments[range].concat()
                };
                let frame = codec
                    .decode(&data, shape)
                    .map_err(|reason| FormatError::Decode {
                        path: path.to_path_buf(),
                        format: codec.name(),
                        reason: format!("frame {}: {reason}", k + 1),
                    })?;
                out.push(frame);
            }
            Ok(out)
        }
        Value::Sequence(_) => Err(FormatError::BadField {
            path: path.to_path_buf(),
            field: "PixelData".to_string(),
            value: "a sequence".to_string(),
            reason: "pixel data must be a value or encapsulated fragments".to_string(),
        }),
    }
}

/// Colour by plane (R plane, G plane, B plane; one byte each) to colour by pixel.
fn interleave(frame: &[u8], n: usize) -> Vec<u8> {
    (0..n * 3).map(|i| frame[(i % 3) * n + i / 3]).collect()
}

/// The fragment ranges of each frame: all fragments for one frame, one fragment per frame,
/// or the runs the basic offset table starts (offsets of item headers from the first).
#[allow(clippy::single_range_in_vec_init)] // One frame's range of fragments, not its indices.
fn group_fragments(
    fragments: &[Vec<u8>],
    offsets: &[u32],
    n_frames: usize,
) -> Result<Vec<std::ops::Range<usize>>, String> {
    if fragments.is_empty() {
        return Err("no fragments".to_string());
    }
    if n_frames == 1 {
        return Ok(vec![0..fragments.len()]);
    }
    if fragments.len() < n_frames {
        return Err(format!(
            "{} fragment(s) cannot hold NumberOfFrames {n_frames} frames",
            fragments.len()
        ));
    }
    if offsets.is_empty() {
        if fragments.len() == n_frames {
            return Ok((0..n_frames).map(|k| k..k + 1).collect());
        }
        return Err(format!(
            "{} fragments for {n_frames} frames and no basic offset table to tell which \
             fragments make each frame",
            fragments.len()
        ));
    }
    if offsets.len() != n_frames {
        return Err(format!(
            "the basic offset table lists {} frames where NumberOfFrames is {n_frames}",
            offsets.len()
        ));
    }
    // The offset of each fragment's item header, relative to the first.
    let mut starts = Vec::with_capacity(fragments.len());
    let mut at = 0u64;
    for f in fragments {
        starts.push(at);
        at += 8 + f.len() as u64;
    }
    let mut first = Vec::with_capacity(n_frames);
    for (k, &o) in offsets.iter().enumerate() {
        let idx = starts.binary_search(&u64::from(o)).map_err(|_| {
            format!(
                "basic offset {o} of frame {} is not a fragment's start",
                k + 1
            )
        })?;
        if first.last().is_some_and(|&prev| idx <= prev) || (k == 0 && idx != 0) {
            return Err(format!(
                "basic offset {o} of frame {} does not follow the previous frame's",
                k + 1
            ));
        }
        first.push(idx);
    }
    Ok((0..n_frames)
        .map(|k| first[k]..first.get(k + 1).copied().unwrap_or(fragments.len()))
        .collect())
}

/// The first `expected` bytes of the pixel data, little-endian whatever the host and the
/// transfer syntax (the parser decoded OW values to native `u16`s); `None` when shorter.
fn le_bytes(value: &PrimitiveValue, expected: usize) -> Option<Vec<u8>> {
    fn collect<T: Copy, const N: usize>(
        values: &[T],
        expected: usize,
        le: impl Fn(T) -> [u8; N],
    ) -> Option<Vec<u8>> {
        if values.len().checked_mul(N)? < expected {
            return None;
        }
        let mut out = Vec::new();
        out.try_reserve_exact(expected).ok()?;
        for v in values.iter().take(expected.div_ceil(N)) {
            out.extend_from_slice(&le(*v));
        }
        out.truncate(expected);
        Some(out)
    }
    match value {
        PrimitiveValue::U8(v) => collect(v, expected, |x: u8| [x]),
        PrimitiveValue::U16(v) => collect(v, expected, u16::to_le_bytes),
        PrimitiveValue::I16(v) => collect(v, expected, i16::to_le_bytes),
        PrimitiveValue::U32(v) => collect(v, expected, u32::to_le_bytes),
        PrimitiveValue::I32(v) => collect(v, expected, i32::to_le_bytes),
        PrimitiveValue::F32(v) => collect(v, expected, f32::to_le_bytes),
        PrimitiveValue::F64(v) => collect(v, expected, f64::to_le_bytes),
        PrimitiveValue::U64(v) => collect(v, expected, u64::to_le_bytes),
        PrimitiveValue::I64(v) => collect(v, expected, i64::to_le_bytes),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::group_fragments;

    #[test]
    #[allow(clippy::single_range_in_vec_init)] // One frame's range of fragments.
    fn fragments_group_into_frames() {
        let f = |n: usize| vec![0u8; n];
        let frags = vec![f(10), f(4), f(6), f(2)];
        assert_eq!(group_fragments(&frags, &[], 1).unwrap(), vec![0..4]);
        assert_eq!(
            group_fragments(&frags, &[], 4).unwrap(),
            vec![0..1, 1..2, 2..3, 3..4]
        );
        // Item headers are 8 bytes: fragments start at 0, 18, 30, 44.
        assert_eq!(
            group_fragments(&frags, &[0, 30], 2).unwrap(),
            vec![0..2, 2..4]
        );
        assert!(group_fragments(&frags, &[], 2).is_err());
        assert!(group_fragments(&frags, &[0, 29], 2).is_err());
        assert!(group_fragments(&frags, &[30, 0], 2).is_err());
        assert!(group_fragments(&frags, &[0, 0], 2).is_err());
        assert!(group_fragments(&frags, &[0], 2).is_err());
        assert!(group_fragments(&frags, &[], 5).is_err());
        assert!(group_fragments(&[], &[], 1).is_err());
    }
}
