//! BMP as Pillow decodes it (the cases written by Pillow and common tools: 8-bit palette,
//! 24- and 32-bit uncompressed), and 8-bit grey BMP writing as Pillow writes mode `L`.

use std::path::Path;

use super::{checked_size, decode_error, zeroed, Array, Labels, PILLOW_MAX_PIXELS};
use crate::formats::{ElementType, FormatError};

/// The most bytes a BMP file may have before its pixel data (headers and palette).
const MAX_FILE: u64 = 1 << 34;

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Decodes a BMP into the array Pillow + imageio give (`H × W` grey or `H × W × 3`).
pub(crate) fn decode(path: &Path) -> Result<Array, FormatError> {
    let io = |source| FormatError::Io {
        path: path.to_path_buf(),
        source,
    };
    let len = std::fs::metadata(path).map_err(io)?.len();
    let bad = |reason: String| decode_error(path, "BMP", reason);
    if len > MAX_FILE {
        return Err(bad(format!(
            "{len} bytes, more than a BMP read here may hold"
        )));
    }
    // The file is read whole once its pixel count is known to be bounded.
    let head = read_prefix(path, 54)?;
    if head.len() < 26 || &head[..2] != b"BM" {
        return Err(FormatError::NotFormat {
            path: path.to_path_buf(),
            format: "BMP",
            reason: "no \"BM\" signature and file header".into(),
        });
    }
    let header_size = u32_at(&head, 14);
    if !matches!(header_size, 40 | 52 | 56 | 64 | 108 | 124) {
        return Err(unsupported(
            path,
            format!("BMP info header of {header_size} bytes"),
        ));
    }
    if head.len() < 54 {
        return Err(bad("truncated info header".into()));
    }
    let width = u32_at(&head, 18) as i32;
    let height = u32_at(&head, 22) as i32;
    let bits = u16_at(&head, 28);
    let compression = u32_at(&head, 30);
    let clr_used = u32_at(&head, 46);
    if width <= 0 || height == 0 || height == i32::MIN {
        return Err(bad(format!("width {width} × height {height}")));
    }
    let (w, h) = (width as usize, height.unsigned_abs() as usize);
    if (w as u64).saturating_mul(h as u64) > PILLOW_MAX_PIXELS {
        return Err(bad(format!(
            "image size ({} pixels) exceeds Pillow's limit of {PILLOW_MAX_PIXELS} pixels, could be a decompression bomb DOS attack",
            (w as u128) * (h as u128)
        )));
    }
    if compression != 0 {
        return Err(unsupported(
            path,
            format!("BMP compression {compression} (only uncompressed BI_RGB is read)"),
        ));
    }
    if !matches!(bits, 8 | 24 | 32) {
        return Err(unsupported(
            path,
            format!("{bits}-bit BMP (8-bit palette, 24- and 32-bit are read)"),
        ));
    }
    let stride = checked_size(path, &[w, usize::from(bits)], 1)?.div_ceil(32) * 4;
    checked_size(path, &[h, w, 3], 1)?;
    let data_len = checked_size(path, &[h, stride], 1)? as u64;
    let offset = u64::from(u32_at(&head, 10));
    let end = offset.saturating_add(data_len);
    if end > len {
        return Err(bad(format!(
            "image file is truncated: the pixel data ends at byte {end}, the file has {len}"
        )));
    }
    let file = std::fs::read(path).map_err(io)?;
    if (file.len() as u64) < end {
        return Err(bad("image file is truncated".into()));
    }
    let pixels = &file[offset as usize..end as usize];
    // The palette: `colors` BGRX entries after the info header.
    let mut grey = false;
    let mut palette = Vec::new();
    if bits == 8 {
        let colors = if clr_used == 0 {
            256
        } else {
            clr_used as usize
        };
        if colors > 256 {
            return Err(bad(format!("{colors} palette colours for 8 bits")));
        }
        let start = 14 + header_size as usize;
        let stop = start + 4 * colors;
        if stop > file.len() {
            return Err(bad("image file is truncated in its palette".into()));
        }
        palette = file[start..stop].to_vec();
        // Pillow: a palette that is the grey ramp (0, 255 for two colours) makes it grey.
        let ramp = |i: usize| if colors == 2 { [0u8, 255][i] } else { i as u8 };
        grey = (0..colors).all(|i| palette[4 * i..4 * i + 3] == [ramp(i); 3]);
        if grey && colors == 2 {
            return Err(unsupported(
                path,
                "an 8-bit BMP with a two-colour black/white palette (Pillow reads it as mode \"1\")"
                    .into(),
            ));
        }
    }
    let channels = if grey { 1 } else { 3 };
    let mut out = zeroed(checked_size(path, &[h, w, channels], 1)?, path)?;
    for y in 0..h {
        // Rows bottom-up unless the height is negative.
        let src_row = if height > 0 { h - 1 - y } else { y };
        let row = &pixels[src_row * stride..(src_row + 1) * stride];
        for x in 0..w {
            let px = y * w + x;
            match bits {
                8 => {
                    let i = usize::from(row[x]);
                    if grey {
                        out[px] = palette.get(4 * i).copied().unwrap_or(0);
                    } else {
                        for c in 0..3 {
                            // BGRX entries; an index past the palette is black.
                            out[3 * px + c] = palette.get(4 * i + 2 - c).copied().unwrap_or(0);
                        }
                    }
                }
                _ => {
                    let n = usize::from(bits / 8);
                    let p = &row[n * x..n * x + 3];
                    out[3 * px..3 * px + 3].copy_from_slice(&[p[2], p[1], p[0]]);
                }
            }
        }
    }
    let shape = if grey { vec![h, w] } else { vec![h, w, 3] };
    Ok(Array {
        shape,
        element: ElementType::U8,
        data: out,
    })
}

fn unsupported(path: &Path, what: String) -> FormatError {
    FormatError::Unsupported {
        path: path.to_path_buf(),
        what,
    }
}

/// The first `n` bytes of the file (fewer when it is shorter).
fn read_prefix(path: &Path, n: usize) -> Result<Vec<u8>, FormatError> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|source| FormatError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut buf = Vec::with_capacity(n);
    file.take(n as u64)
        .read_to_end(&mut buf)
        .map_err(|source| FormatError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(buf)
}

/// Encodes one grey channel (`H × W`, rows top first) as Pillow writes mode `L`: 8 bits with
/// the grey-ramp palette, bottom-up, 96 dpi. 16-bit labels are refused, as Pillow refuses
/// mode `I;16` for BMP.
pub(crate) fn encode_grey(
    path: &Path,
    w: usize,
    h: usize,
    labels: &Labels,
) -> Result<Vec<u8>, FormatError> {
    let Labels::U8(values) = labels else {
        return Err(unsupported(
            path,
            "labels of 255 or more: nnU-Net writes them as uint16, which Pillow cannot write as BMP (\"cannot write mode I;16 as BMP\")".into(),
        ));
    };
    let stride = w.div_ceil(4) * 4;
    let offset = 14 + 40 + 256 * 4;
    let image = stride
        .checked_mul(h)
        .filter(|&n| n + offset <= u32::MAX as usize && w <= i32::MAX as usize)
        .ok_or_else(|| super::invalid(path, format!("{w} × {h} pixels is too large for BMP")))?;
    let mut out = Vec::with_capacity(offset + image);
    out.extend_from_slice(b"BM");
    out.extend_from_slice(&((offset + image) as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&(offset as u32).to_le_bytes());
    out.extend_from_slice(&40u32.to_le_bytes());
    out.extend_from_slice(&(w as i32).to_le_bytes());
    out.extend_from_slice(&(h as i32).to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&8u16.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&(image as u32).to_le_bytes());
    // 96 dpi in pixels per metre, as Pillow writes it.
    out.extend_from_slice(&3780u32.to_le_bytes());
    out.extend_from_slice(&3780u32.to_le_bytes());
    out.extend_from_slice(&256u32.to_le_bytes());
    out.extend_from_slice(&256u32.to_le_bytes());
    for i in 0..=255u8 {
        out.extend_from_slice(&[i, i, i, 0]);
    }
    for y in (0..h).rev() {
        out.extend_from_slice(&values[y * w..(y + 1) * w]);
        out.resize(out.len() + stride - w, 0);
    }
    Ok(out)
}
