//! TIFF as tifffile reads it (`tifffile.imread`: every page of one shape and type stacked, a
//! single sample squeezed, tifffile's own `{"shape": [...]}` description honoured), and TIFF
//! writing as tifffile writes a grey image or stack.

use std::io::{BufReader, Cursor};
use std::path::Path;

use tiff::decoder::{Decoder, DecodingResult, Limits};
use tiff::encoder::colortype::{Gray16, Gray8};
use tiff::encoder::{Compression, DeflateLevel, TiffEncoder};
use tiff::tags::Tag;
use tiff::ColorType;

use super::{checked_size, decode_error, open_with_len, Array, Labels};
use crate::formats::{ElementType, FormatError};

/// The most a TIFF's pixel data may expand (LZW's worst case is below 4096:1), so that a
/// small file cannot make the decoder allocate a large buffer.
const MAX_RATIO: u128 = 4096;
/// The most pages read (an IFD chain longer than this is refused).
const MAX_PAGES: usize = 1 << 20;

fn fail(path: &Path, e: tiff::TiffError) -> FormatError {
    match e {
        tiff::TiffError::IoError(source) => FormatError::Decode {
            path: path.to_path_buf(),
            format: "TIFF",
            reason: format!("truncated or unreadable: {source}"),
        },
        tiff::TiffError::UnsupportedError(u) => FormatError::Unsupported {
            path: path.to_path_buf(),
            what: u.to_string(),
        },
        other => decode_error(path, "TIFF", other),
    }
}

/// The page's samples per pixel, bits per sample.
fn layout(color: ColorType) -> (usize, u8) {
    match color {
        ColorType::Gray(b) | ColorType::Palette(b) => (1, b),
        ColorType::GrayA(b) => (2, b),
        ColorType::RGB(b) | ColorType::YCbCr(b) | ColorType::Lab(b) => (3, b),
        ColorType::RGBA(b) | ColorType::CMYK(b) => (4, b),
        ColorType::CMYKA(b) => (5, b),
        ColorType::Multiband {
            bit_depth,
            num_samples,
        } => (usize::from(num_samples), bit_depth),
        _ => (0, 0),
    }
}

/// Decodes a TIFF into the array tifffile gives: `(H, W)`, `(H, W, S)` (`(S, H, W)` for
/// separate sample planes), with the pages first when there are several, or the shape of
/// tifffile's own description.
pub(crate) fn decode(path: &Path) -> Result<Array, FormatError> {
    let (file, file_len) = open_with_len(path)?;
    let ceiling = usize::try_from(crate::limits::volume_ceiling()).unwrap_or(usize::MAX);
    let mut limits = Limits::default();
    limits.decoding_buffer_size = ceiling;
    limits.intermediate_buffer_size = ceiling;
    let mut decoder = Decoder::new(BufReader::new(file))
        .map_err(|e| fail(path, e))?
        .with_limits(limits);
    let mut page_shape: Option<(usize, usize, usize, ElementType, bool)> = None;
    let mut data: Vec<u8> = Vec::new();
    let mut pages = 0usize;
    let description = decoder
        .get_tag_ascii_string(Tag::ImageDescription)
        .ok()
        .filter(|d| d.len() < 4096);
    loop {
        let (w, h) = decoder.dimensions().map_err(|e| fail(path, e))?;
        let (w, h) = (w as usize, h as usize);
        let color = decoder.colortype().map_err(|e| fail(path, e))?;
        let (samples, bits) = layout(color);
        if samples == 0 || !matches!(bits, 8 | 16 | 32 | 64) {
            return Err(FormatError::Unsupported {
                path: path.to_path_buf(),
                what: format!("TIFF pixels of {color:?} (8/16/32/64-bit samples are read)"),
            });
        }
        let planar = decoder
            .find_tag_unsigned::<u16>(Tag::PlanarConfiguration)
            .map_err(|e| fail(path, e))?
            .unwrap_or(1);
        // tifffile gives separate planes as (S, H, W), contiguous samples as (H, W, S).
        let separate = samples > 1 && planar == 2;
        // Checked before the decoder allocates: this page and everything so far.
        let page_bytes = checked_size(path, &[h, w, samples], usize::from(bits / 8))?;
        let so_far = checked_size(path, &[pages + 1, page_bytes], 1)?;
        if so_far as u128 > u128::from(file_len).saturating_mul(MAX_RATIO) {
            return Err(decode_error(
                path,
                "TIFF",
                format!(
                    "{so_far} bytes of pixels in {} pages, more than {file_len} bytes can hold ({MAX_RATIO}:1)",
                    pages + 1
                ),
            ));
        }
        let mut result = DecodingResult::U8(Vec::new());
        decoder
            .read_image_to_buffer(&mut result)
            .map_err(|e| fail(path, e))?;
        let (element, bytes) = le_bytes(result).ok_or_else(|| FormatError::Unsupported {
            path: path.to_path_buf(),
            what: "16-bit float TIFF samples".into(),
        })?;
        if bytes.len() != page_bytes {
            return Err(decode_error(
                path,
                "TIFF",
                format!(
                    "page {pages} decodes to {} bytes, not {page_bytes}",
                    bytes.len()
                ),
            ));
        }
        match page_shape {
            None => page_shape = Some((h, w, samples, element, separate)),
            Some(first) if first == (h, w, samples, element, separate) => {}
            Some(first) => {
                return Err(FormatError::Unsupported {
                    path: path.to_path_buf(),
                    what: format!(
                        "pages of different shapes or types ({:?} {:?}, then {:?} {:?} on page {pages})",
                        [first.0, first.1, first.2], first.3, [h, w, samples], element
                    ),
                })
            }
        }
        data.try_reserve(bytes.len())
            .map_err(|_| FormatError::OutOfMemory {
                path: path.to_path_buf(),
                bytes: (data.len() + bytes.len()) as u128,
            })?;
        data.extend_from_slice(&bytes);
        pages += 1;
        if !decoder.more_images() {
            break;
        }
        if pages >= MAX_PAGES {
            return Err(decode_error(
                path,
                "TIFF",
                format!("more than {MAX_PAGES} pages"),
            ));
        }
        decoder.next_image().map_err(|e| fail(path, e))?;
    }
    let Some((h, w, samples, element, separate)) = page_shape else {
        return Err(decode_error(path, "TIFF", "no image"));
    };
    let mut shape = Vec::new();
    if pages > 1 {
        shape.push(pages);
    }
    if separate {
        shape.extend([samples, h, w]);
    } else {
        shape.extend([h, w]);
        if samples > 1 {
            shape.push(samples);
        }
    }
    // tifffile's shaped description (`{"shape": [1, 5, 7]}`) gives the series' shape.
    if let Some(described) = description.as_deref().and_then(described_shape) {
        let total: Option<usize> = described.iter().try_fold(1usize, |a, &n| a.checked_mul(n));
        if total == Some(shape.iter().product()) {
            shape = described;
        }
    }
    Ok(Array {
        shape,
        element,
        data,
    })
}

/// The shape in tifffile's JSON image description, if it is one.
fn described_shape(text: &str) -> Option<Vec<usize>> {
    let value: serde_json::Value = serde_json::from_str(text.trim_end_matches('\0')).ok()?;
    let list = value.get("shape")?.as_array()?;
    if list.is_empty() || list.len() > 8 {
        return None;
    }
    list.iter()
        .map(|v| v.as_u64().and_then(|n| usize::try_from(n).ok()))
        .collect()
}

/// The decoded samples as little-endian bytes and their element type (`None` for `f16`).
fn le_bytes(result: DecodingResult) -> Option<(ElementType, Vec<u8>)> {
    fn le<T: Copy, const N: usize>(v: &[T], f: impl Fn(T) -> [u8; N]) -> Vec<u8> {
        v.iter().flat_map(|&x| f(x)).collect()
    }
    Some(match result {
        DecodingResult::U8(v) => (ElementType::U8, v),
        DecodingResult::I8(v) => (ElementType::I8, le(&v, i8::to_le_bytes)),
        DecodingResult::U16(v) => (ElementType::U16, le(&v, u16::to_le_bytes)),
        DecodingResult::I16(v) => (ElementType::I16, le(&v, i16::to_le_bytes)),
        DecodingResult::U32(v) => (ElementType::U32, le(&v, u32::to_le_bytes)),
        DecodingResult::I32(v) => (ElementType::I32, le(&v, i32::to_le_bytes)),
        DecodingResult::U64(v) => (ElementType::U64, le(&v, u64::to_le_bytes)),
        DecodingResult::I64(v) => (ElementType::I64, le(&v, i64::to_le_bytes)),
        DecodingResult::F32(v) => (ElementType::F32, le(&v, f32::to_le_bytes)),
        DecodingResult::F64(v) => (ElementType::F64, le(&v, f64::to_le_bytes)),
        _ => return None,
    })
}

/// Encodes labels of `shape` (`[H, W]` or `[Z, H, W]`, C order) as a grey TIFF, one page per
/// slice, with tifffile's shaped description; deflate-compressed when `deflate`.
pub(crate) fn encode(
    path: &Path,
    shape: &[usize],
    labels: &Labels,
    deflate: bool,
) -> Result<Vec<u8>, FormatError> {
    let (h, w) = (shape[shape.len() - 2], shape[shape.len() - 1]);
    let pages: usize = shape[..shape.len() - 2].iter().product();
    let too_big = || super::invalid(path, format!("shape {shape:?} is too large for TIFF"));
    let (w32, h32) = (
        u32::try_from(w).map_err(|_| too_big())?,
        u32::try_from(h).map_err(|_| too_big())?,
    );
    let description = format!(
        "{{\"shape\": [{}]}}",
        shape
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    let werr = |e: tiff::TiffError| FormatError::Write {
        path: path.to_path_buf(),
        source: std::io::Error::other(e),
    };
    let mut out = Cursor::new(Vec::new());
    {
        let mut encoder = TiffEncoder::new(&mut out).map_err(werr)?;
        if deflate {
            encoder = encoder.with_compression(Compression::Deflate(DeflateLevel::Balanced));
        }
        let n = h * w;
        for page in 0..pages {
            match labels {
                Labels::U8(v) => {
                    let mut image = encoder.new_image::<Gray8>(w32, h32).map_err(werr)?;
                    if page == 0 {
                        image
                            .encoder()
                            .write_tag(Tag::ImageDescription, description.as_str())
                            .map_err(werr)?;
                    }
                    image
                        .write_data(&v[page * n..(page + 1) * n])
                        .map_err(werr)?;
                }
                Labels::U16(v) => {
                    let mut image = encoder.new_image::<Gray16>(w32, h32).map_err(werr)?;
                    if page == 0 {
                        image
                            .encoder()
                            .write_tag(Tag::ImageDescription, description.as_str())
                            .map_err(werr)?;
                    }
                    image
                        .write_data(&v[page * n..(page + 1) * n])
                        .map_err(werr)?;
                }
            }
        }
    }
    Ok(out.into_inner())
}
