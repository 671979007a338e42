//! Decoders of one encapsulated DICOM frame into stored values (little-endian, colour by
//! pixel): RLE Lossless by hand (PS3.5 annex G), JPEG lossless and baseline through
//! jpeg-decoder, JPEG 2000 through hayro-jpeg2000. Each checks the frame's size against the
//! header before decoding and returns exactly `rows · cols · samples · bytes` bytes, or a
//! reason; a decoder that panics is caught and reported as a failure.

use std::panic::{catch_unwind, AssertUnwindSafe};

/// What a frame must decode to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FrameShape {
    /// Rows (height).
    pub(super) rows: usize,
    /// Columns (width).
    pub(super) cols: usize,
    /// Samples per pixel (1 or 3).
    pub(super) samples: usize,
    /// Bytes per stored value (BitsAllocated / 8).
    pub(super) bytes: usize,
}

impl FrameShape {
    /// Pixels of one frame.
    pub(super) fn pixels(self) -> usize {
        self.rows * self.cols
    }

    /// Bytes of one decoded frame (the caller checked that this does not overflow).
    pub(super) fn len(self) -> usize {
        self.pixels() * self.samples * self.bytes
    }
}

/// The compressed encodings read, by transfer syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Codec {
    /// RLE Lossless (1.2.840.10008.1.2.5).
    Rle,
    /// JPEG Lossless, process 14 (.4.57) and its selection value 1 (.4.70).
    JpegLossless,
    /// JPEG Baseline, 8-bit (.4.50).
    JpegBaseline,
    /// JPEG 2000, lossless only (.4.90) or lossy (.4.91).
    Jpeg2000,
}

impl Codec {
    /// The codec of a transfer syntax UID; `Err` names an encapsulated syntax not read.
    pub(super) fn of(ts: &str) -> Result<Codec, String> {
        Ok(match ts {
            "1.2.840.10008.1.2.5" => Codec::Rle,
            "1.2.840.10008.1.2.4.57" | "1.2.840.10008.1.2.4.70" => Codec::JpegLossless,
            "1.2.840.10008.1.2.4.50" => Codec::JpegBaseline,
            "1.2.840.10008.1.2.4.90" | "1.2.840.10008.1.2.4.91" => Codec::Jpeg2000,
            "1.2.840.10008.1.2.4.80" | "1.2.840.10008.1.2.4.81" => {
                return Err(format!(
                    "JPEG-LS pixel data (transfer syntax {ts}): no pure-Rust JPEG-LS decoder is \
                     available; convert the series (e.g. gdcmconv --raw)"
                ))
            }
            "1.2.840.10008.1.2.4.51" => {
                return Err(format!(
                    "JPEG Extended (12-bit lossy, transfer syntax {ts}) pixel data"
                ))
            }
            _ => {
                return Err(format!(
                    "encapsulated pixel data in transfer syntax {ts} (read: RLE Lossless, JPEG \
                     Lossless, JPEG Baseline 8-bit, JPEG 2000)"
                ))
            }
        })
    }

    /// The name used in errors.
    pub(super) fn name(self) -> &'static str {
        match self {
            Codec::Rle => "DICOM RLE",
            Codec::JpegLossless => "DICOM JPEG Lossless",
            Codec::JpegBaseline => "DICOM JPEG Baseline",
            Codec::Jpeg2000 => "DICOM JPEG 2000",
        }
    }

    /// Decodes one frame to exactly `shape.len()` bytes.
    pub(super) fn decode(self, data: &[u8], shape: FrameShape) -> Result<Vec<u8>, String> {
        let out = match self {
            Codec::Rle => rle(data, shape)?,
            Codec::JpegLossless | Codec::JpegBaseline => guarded(|| jpeg(data, shape))?,
            Codec::Jpeg2000 => guarded(|| jpeg2000(data, shape))?,
        };
        if out.len() != shape.len() {
            return Err(format!(
                "the frame decoded to {} bytes where the header needs {}",
                out.len(),
                shape.len()
            ));
        }
        Ok(out)
    }
}

/// Runs a third-party decoder, turning a panic into an error.
fn guarded(f: impl FnOnce() -> Result<Vec<u8>, String>) -> Result<Vec<u8>, String> {
    catch_unwind(AssertUnwindSafe(f))
        .unwrap_or_else(|_| Err("the decoder failed on this stream (it panicked)".to_string()))
}

/// A zero-filled buffer of `n` bytes, reserved fallibly.
fn buffer(n: usize) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    out.try_reserve_exact(n)
        .map_err(|_| format!("cannot reserve {n} bytes for the frame"))?;
    out.resize(n, 0);
    Ok(out)
}

/// RLE Lossless (PS3.5 G): a 64-byte header of the segment count and up to 15 offsets, then
/// one PackBits segment per byte plane (most significant byte first, sample by sample).
fn rle(data: &[u8], shape: FrameShape) -> Result<Vec<u8>, String> {
    if data.len() < 64 {
        return Err(format!(
            "the RLE header needs 64 bytes, the frame has {}",
            data.len()
        ));
    }
    let word = |i: usize| u32::from_le_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]]);
    let n_segments = word(0) as usize;
    let want = shape.samples * shape.bytes;
    if n_segments != want {
        return Err(format!(
            "the RLE header lists {n_segments} segments where {} samples of {} bytes need {want}",
            shape.samples, shape.bytes
        ));
    }
    let offsets: Vec<usize> = (0..n_segments).map(|k| word(4 + 4 * k) as usize).collect();
    let pixels = shape.pixels();
    let mut out = buffer(shape.len())?;
    let mut plane = Vec::new();
    for (k, &start) in offsets.iter().enumerate() {
        let end = offsets.get(k + 1).copied().unwrap_or(data.len());
        if start < 64 || start > end || end > data.len() {
            return Err(format!(
                "RLE segment {} spans bytes {start}..{end} of a {}-byte frame",
                k + 1,
                data.len()
            ));
        }
        packbits(&data[start..end], pixels, &mut plane)
            .map_err(|e| format!("RLE segment {}: {e}", k + 1))?;
        let (sample, byte) = (k / shape.bytes, k % shape.bytes);
        // Segment `byte` 0 holds the most significant bytes; output is little-endian.
        let at = shape.bytes - 1 - byte;
        for (p, &v) in plane.iter().enumerate() {
            out[(p * shape.samples + sample) * shape.bytes + at] = v;
        }
    }
    Ok(out)
}

/// Decodes a PackBits segment into `out` (cleared), stopping at `n` bytes; fewer is an error.
fn packbits(seg: &[u8], n: usize, out: &mut Vec<u8>) -> Result<(), String> {
    out.clear();
    let mut i = 0;
    while out.len() < n && i < seg.len() {
        let h = seg[i] as i8;
        i += 1;
        if h >= 0 {
            let count = h as usize + 1;
            let lit = seg.get(i..i + count).ok_or_else(|| {
                format!("a literal run of {count} bytes passes the segment's end")
            })?;
            out.extend_from_slice(&lit[..count.min(n - out.len())]);
            i += count;
        } else if h != -128 {
            let count = (1 - h as isize) as usize;
            let v = *seg
                .get(i)
                .ok_or_else(|| "a replicate run passes the segment's end".to_string())?;
            let count = count.min(n - out.len());
            out.extend(std::iter::repeat_n(v, count));
            i += 1;
        }
    }
    if out.len() < n {
        return Err(format!(
            "decodes to {} bytes where the frame needs {n}",
            out.len()
        ));
    }
    Ok(())
}

/// JPEG (lossless process 14 or baseline) through jpeg-decoder.
fn jpeg(data: &[u8], shape: FrameShape) -> Result<Vec<u8>, String> {
    let mut decoder = jpeg_decoder::Decoder::new(data);
    decoder.set_max_decoding_buffer_size(shape.len().max(1));
    decoder.read_info().map_err(|e| e.to_string())?;
    let info = decoder
        .info()
        .ok_or_else(|| "no JPEG frame header".to_string())?;
    if (usize::from(info.width), usize::from(info.height)) != (shape.cols, shape.rows) {
        return Err(format!(
            "the JPEG frame is {}x{} where the header says {}x{} (columns x rows)",
            info.width, info.height, shape.cols, shape.rows
        ));
    }
    use jpeg_decoder::PixelFormat as F;
    let (samples, bytes) = match info.pixel_format {
        F::L8 => (1, 1),
        F::L16 => (1, 2),
        F::RGB24 => (3, 1),
        F::CMYK32 => (4, 1),
    };
    if samples != shape.samples || bytes > shape.bytes {
        return Err(format!(
            "the JPEG stream holds {samples} component(s) of {bytes} byte(s) where the header \
             needs {} of {}",
            shape.samples, shape.bytes
        ));
    }
    let decoded = decoder.decode().map_err(|e| e.to_string())?;
    if decoded.len() != shape.pixels() * samples * bytes {
        return Err(format!(
            "jpeg-decoder gave {} bytes for a {}x{} frame",
            decoded.len(),
            shape.cols,
            shape.rows
        ));
    }
    // Widen to the stored size, little-endian (jpeg-decoder gives 16-bit values native-endian).
    let mut out = Vec::new();
    out.try_reserve_exact(shape.len())
        .map_err(|_| format!("cannot reserve {} bytes for the frame", shape.len()))?;
    let values = decoded.len() / bytes;
    for k in 0..values {
        let v = if bytes == 1 {
            u32::from(decoded[k])
        } else {
            u32::from(u16::from_ne_bytes([decoded[2 * k], decoded[2 * k + 1]]))
        };
        out.extend_from_slice(&v.to_le_bytes()[..shape.bytes]);
    }
    Ok(out)
}

/// The sign bit of each component in a JPEG 2000 codestream's SIZ marker (hayro-jpeg2000
/// always adds the unsigned DC level shift, so signed components need it taken off).
fn component_signs(data: &[u8]) -> Option<Vec<bool>> {
    let soc = data
        .windows(4)
        .position(|w| w == [0xFF, 0x4F, 0xFF, 0x51])?;
    // SIZ: marker, Lsiz, Rsiz, 8 four-byte sizes, Csiz, then 3 bytes per component.
    let siz = data.get(soc + 2..)?;
    let n = usize::from(u16::from_be_bytes([*siz.get(38)?, *siz.get(39)?]));
    (0..n)
        .map(|c| siz.get(40 + 3 * c).map(|s| s & 0x80 != 0))
        .collect()
}

/// JPEG 2000 through hayro-jpeg2000: components rounded, clamped to their precision and, for
/// signed components, shifted back (as OpenJPEG, which GDCM and pydicom use, gives them).
fn jpeg2000(data: &[u8], shape: FrameShape) -> Result<Vec<u8>, String> {
    let settings = hayro_jpeg2000::DecodeSettings {
        resolve_palette_indices: false,
        strict: false,
        target_resolution: None,
    };
    let image = hayro_jpeg2000::Image::new(data, &settings).map_err(|e| e.to_string())?;
    if (image.width() as usize, image.height() as usize) != (shape.cols, shape.rows) {
        return Err(format!(
            "the JPEG 2000 image is {}x{} where the header says {}x{} (columns x rows)",
            image.width(),
            image.height(),
            shape.cols,
            shape.rows
        ));
    }
    let signs = component_signs(data).ok_or_else(|| "no readable SIZ marker".to_string())?;
    let mut context = hayro_jpeg2000::DecoderContext::default();
    let decoded = image.decode(&mut context).map_err(|e| e.to_string())?;
    let components = decoded.components();
    if components.len() != shape.samples || signs.len() != shape.samples {
        return Err(format!(
            "the JPEG 2000 image has {} component(s) where the header needs {}",
            components.len(),
            shape.samples
        ));
    }
    let mut out = buffer(shape.len())?;
    for (c, (component, &signed)) in components.iter().zip(&signs).enumerate() {
        let depth = u32::from(component.bit_depth());
        // f32 holds integers exactly up to 2^24: 16 bits keep the reversible transform exact.
        if depth == 0 || depth > 16 || depth > 8 * shape.bytes as u32 {
            return Err(format!(
                "component {c} has {depth} bits (1 to 16, within BitsAllocated, are read)"
            ));
        }
        let samples = component.samples();
        if samples.len() != shape.pixels() {
            return Err(format!(
                "component {c} holds {} samples for {} pixels",
                samples.len(),
                shape.pixels()
            ));
        }
        let half = f64::from(1u32 << (depth - 1));
        let (shift, lo, hi) = if signed {
            (half, -half, half - 1.0)
        } else {
            (0.0, 0.0, 2.0 * half - 1.0)
        };
        for (p, &v) in samples.iter().enumerate() {
            let v = (f64::from(v).round() - shift).clamp(lo, hi) as i64;
            let at = (p * shape.samples + c) * shape.bytes;
            out[at..at + shape.bytes].copy_from_slice(&v.to_le_bytes()[..shape.bytes]);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packbits_runs_and_bounds() {
        let mut out = Vec::new();
        // A literal of 3, a replicate of 4, a no-op (-128).
        packbits(&[2, 1, 2, 3, 0xFD, 9, 0x80], 7, &mut out).unwrap();
        assert_eq!(out, [1, 2, 3, 9, 9, 9, 9]);
        // A literal passing the end, a replicate without its byte, too little output.
        assert!(packbits(&[5, 1, 2], 6, &mut out).is_err());
        assert!(packbits(&[0xFE], 3, &mut out).is_err());
        assert!(packbits(&[0, 1], 2, &mut out).is_err());
        // Output past the frame (the segment's pad byte) is cut.
        packbits(&[0xFD, 7, 0], 3, &mut out).unwrap();
        assert_eq!(out, [7, 7, 7]);
    }

    #[test]
    fn rle_header_is_checked() {
        let shape = FrameShape {
            rows: 1,
            cols: 2,
            samples: 1,
            bytes: 2,
        };
        let mut frame = vec![0u8; 64];
        frame[0] = 2;
        frame[4] = 64;
        frame[8] = 66;
        frame.extend_from_slice(&[1, 0x12, 0x34, 1, 0x56, 0x78]);
        // Segment 1 (bytes 64..66) is cut: 2 bytes hold a literal header and one of two values.
        assert!(rle(&frame, shape).is_err());
        frame[8] = 67;
        assert_eq!(rle(&frame, shape).unwrap(), [0x56, 0x12, 0x78, 0x34]);
        frame[8] = 200;
        assert!(rle(&frame, shape).is_err());
        frame[0] = 3;
        assert!(rle(&frame, shape).is_err());
        assert!(rle(&frame[..40], shape).is_err());
    }
}
