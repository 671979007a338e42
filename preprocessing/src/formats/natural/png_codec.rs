//! PNG as Pillow (through imageio, as `skimage.io.imread` calls it) decodes it, and 8/16-bit
//! grey PNG writing.

use std::io::{BufReader, Cursor};
use std::path::Path;

use super::{checked_size, decode_error, open_with_len, zeroed, Array, Labels, PILLOW_MAX_PIXELS};
use crate::formats::{ElementType, FormatError};

/// Decodes a PNG into the array Pillow + imageio give (`H × W` or `H × W × c`).
pub(crate) fn decode(path: &Path) -> Result<Array, FormatError> {
    let (file, file_len) = open_with_len(path)?;
    let ceiling = usize::try_from(crate::limits::volume_ceiling()).unwrap_or(usize::MAX);
    let mut decoder =
        png::Decoder::new_with_limits(BufReader::new(file), png::Limits { bytes: ceiling });
    decoder.set_transformations(png::Transformations::IDENTITY);
    let mut reader = decoder
        .read_info()
        .map_err(|e| decode_error(path, "PNG", e))?;
    let (w, h, color, depth, palette) = {
        let info = reader.info();
        (
            info.width as usize,
            info.height as usize,
            info.color_type,
            info.bit_depth as u8,
            info.palette.as_ref().map(|p| p.to_vec()),
        )
    };
    if (w as u64).saturating_mul(h as u64) > PILLOW_MAX_PIXELS {
        return Err(decode_error(
            path,
            "PNG",
            format!(
                "image size ({} pixels) exceeds Pillow's limit of {PILLOW_MAX_PIXELS} pixels, could be a decompression bomb DOS attack",
                (w as u128) * (h as u128)
            ),
        ));
    }
    let samples = color.samples();
    // The raw frame: rows of packed samples, each row whole bytes.
    let row_bits = (w as u128) * (samples as u128) * u128::from(depth);
    let line = usize::try_from(row_bits.div_ceil(8)).map_err(|_| FormatError::TooManyVoxels {
        path: path.to_path_buf(),
        sizes: vec![h, w, samples],
        element_bytes: 1,
    })?;
    let raw_len = checked_size(path, &[h, line], 1)?;
    // Deflate expands at most 1032:1: a file too small for its size is refused unallocated.
    let most = u128::from(file_len).saturating_mul(1032);
    if (raw_len as u128).saturating_add(h as u128) > most {
        return Err(decode_error(
            path,
            "PNG",
            format!(
                "image file is truncated: {w} × {h} pixels need {raw_len} bytes, more than {file_len} compressed bytes can hold"
            ),
        ));
    }
    // What Pillow gives: channels and element type.
    let (channels, element) = match (color, depth) {
        (png::ColorType::Grayscale, 16) => (1, ElementType::U16),
        (png::ColorType::Grayscale, _) => (1, ElementType::U8),
        (png::ColorType::Rgb, _) | (png::ColorType::Indexed, _) => (3, ElementType::U8),
        (png::ColorType::GrayscaleAlpha, 16) => (4, ElementType::U8),
        (png::ColorType::GrayscaleAlpha, _) => (2, ElementType::U8),
        (png::ColorType::Rgba, _) => (4, ElementType::U8),
    };
    let out_len = checked_size(path, &[h, w, channels], element.size())?;
    let mut raw = zeroed(raw_len, path)?;
    reader
        .next_frame(&mut raw)
        .map_err(|e| decode_error(path, "PNG", e))?;
    let mut out = zeroed(out_len, path)?;
    let sample = |row: &[u8], i: usize| -> u16 {
        match depth {
            16 => u16::from_be_bytes([row[2 * i], row[2 * i + 1]]),
            8 => u16::from(row[i]),
            d => {
                let per = 8 / usize::from(d);
                let byte = row[i / per];
                let shift = 8 - usize::from(d) * (i % per + 1);
                u16::from(byte >> shift) & ((1 << d) - 1)
            }
        }
    };
    for y in 0..h {
        let row = &raw[y * line..(y + 1) * line];
        for x in 0..w {
            let px = y * w + x;
            match (color, depth) {
                (png::ColorType::Grayscale, 16) => {
                    out[2 * px..2 * px + 2].copy_from_slice(&sample(row, x).to_le_bytes());
                }
                (png::ColorType::Grayscale, d) => {
                    let v = sample(row, x);
                    // Pillow: 1-bit is mode "1" (0/1); 2- and 4-bit are scaled to 8 bits.
                    out[px] = match d {
                        1 => v as u8,
                        2 => (v * 0x55) as u8,
                        4 => (v * 0x11) as u8,
                        _ => v as u8,
                    };
                }
                (png::ColorType::Indexed, _) => {
                    let index = usize::from(sample(row, x));
                    let pal = palette.as_deref().unwrap_or(&[]);
                    for c in 0..3 {
                        out[3 * px + c] = pal.get(3 * index + c).copied().unwrap_or(0);
                    }
                }
                (png::ColorType::GrayscaleAlpha, 16) => {
                    // Pillow reads it as RGBA ("LA;16B"): L, L, L, A, high bytes.
                    let l = (sample(row, 2 * x) >> 8) as u8;
                    let a = (sample(row, 2 * x + 1) >> 8) as u8;
                    out[4 * px..4 * px + 4].copy_from_slice(&[l, l, l, a]);
                }
                _ => {
                    // 8 bits as they are, 16 bits as their high bytes (Pillow's "RGB;16B").
                    for c in 0..channels {
                        let v = sample(row, samples * x + c);
                        out[channels * px + c] = if depth == 16 { (v >> 8) as u8 } else { v as u8 };
                    }
                }
            }
        }
    }
    let shape = if channels == 1 {
        vec![h, w]
    } else {
        vec![h, w, channels]
    };
    Ok(Array {
        shape,
        element,
        data: out,
    })
}

/// Encodes one grey channel (`H × W`, rows top first) as an 8- or 16-bit grey PNG.
pub(crate) fn encode_grey(
    path: &Path,
    w: usize,
    h: usize,
    labels: &Labels,
) -> Result<Vec<u8>, FormatError> {
    let size = |n: usize| {
        u32::try_from(n)
            .map_err(|_| super::invalid(path, format!("{n} pixels is too wide for PNG")))
    };
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(Cursor::new(&mut out), size(w)?, size(h)?);
        encoder.set_color(png::ColorType::Grayscale);
        let data: Vec<u8> = match labels {
            Labels::U8(v) => {
                encoder.set_depth(png::BitDepth::Eight);
                v.clone()
            }
            Labels::U16(v) => {
                encoder.set_depth(png::BitDepth::Sixteen);
                v.iter().flat_map(|x| x.to_be_bytes()).collect()
            }
        };
        let fail = |e: png::EncodingError| FormatError::Write {
            path: path.to_path_buf(),
            source: std::io::Error::other(e),
        };
        let mut writer = encoder.write_header().map_err(fail)?;
        writer.write_image_data(&data).map_err(fail)?;
        writer.finish().map_err(fail)?;
    }
    Ok(out)
}
