//! Encoding on writing: data bytes in the file's byte order, gzip, zlib or text, and the
//! atomic writer every file goes through (a temporary file renamed over the target).

use std::io::{self, BufWriter, Write};
use std::path::Path;

use flate2::write::{GzEncoder, ZlibEncoder};
use flate2::Compression;

use super::error::FormatError;
use super::payload::{to_little_endian, Encoding, BUFFER};
use super::ElementType;

/// How to encode data bytes on writing.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EncodeSpec {
    pub encoding: Encoding,
    pub element: ElementType,
    pub big_endian: bool,
    /// Text values per line.
    pub line_len: usize,
}

/// One piece of a file to write.
pub(crate) enum Part<'a> {
    /// Bytes written as they are.
    Bytes(&'a [u8]),
    /// Little-endian data, encoded on the way out.
    Data(&'a [u8], EncodeSpec),
}

/// Writes `parts` to `path` atomically (temporary file, then rename).
pub(crate) fn write_parts(path: &Path, parts: &[Part<'_>]) -> Result<(), FormatError> {
    crate::write_atomic_with(path, |file| {
        let mut out = BufWriter::with_capacity(BUFFER, file);
        for part in parts {
            match part {
                Part::Bytes(bytes) => out.write_all(bytes)?,
                Part::Data(data, spec) => write_encoded(&mut out, data, spec)?,
            }
        }
        out.flush()
    })
    .map_err(|source| FormatError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Encodes little-endian `data` as `spec` says into `w`.
pub(crate) fn write_encoded(w: &mut dyn Write, data: &[u8], spec: &EncodeSpec) -> io::Result<()> {
    match spec.encoding {
        Encoding::Raw => write_raw(w, data, spec.element, spec.big_endian),
        Encoding::Gzip => {
            let mut gz = GzEncoder::new(w, Compression::default());
            write_raw(&mut gz, data, spec.element, spec.big_endian)?;
            gz.try_finish()
        }
        Encoding::Zlib => {
            let mut z = ZlibEncoder::new(w, Compression::default());
            write_raw(&mut z, data, spec.element, spec.big_endian)?;
            z.try_finish()
        }
        Encoding::Text => write_text(w, data, spec.element, spec.line_len.max(1)),
    }
}

/// Writes data in the file's byte order, in chunks.
fn write_raw(
    w: &mut dyn Write,
    data: &[u8],
    element: ElementType,
    big_endian: bool,
) -> io::Result<()> {
    if !big_endian || element.size() == 1 {
        return w.write_all(data);
    }
    let chunk = (BUFFER / element.size()) * element.size();
    let mut scratch = Vec::with_capacity(chunk.min(data.len()));
    for piece in data.chunks(chunk) {
        scratch.clear();
        scratch.extend_from_slice(piece);
        to_little_endian(&mut scratch, element, true);
        w.write_all(&scratch)?;
    }
    Ok(())
}

/// Writes values as text, `line_len` per line, each the shortest text that reads back exactly.
fn write_text(
    w: &mut dyn Write,
    data: &[u8],
    element: ElementType,
    line_len: usize,
) -> io::Result<()> {
    let size = element.size();
    for (i, value) in data.chunks_exact(size).enumerate() {
        let text = match element {
            ElementType::F32 => {
                let v = f32::from_le_bytes([value[0], value[1], value[2], value[3]]);
                fmt_f32(v)
            }
            ElementType::F64 => super::geometry::fmt_f64(element.value_f64(value)),
            ElementType::U64 => u64::from_le_bytes(to8(value)).to_string(),
            ElementType::I64 => i64::from_le_bytes(to8(value)).to_string(),
            _ => format!("{}", element.value_f64(value)),
        };
        let sep = if (i + 1) % line_len == 0 { "\n" } else { " " };
        write!(w, "{text}{sep}")?;
    }
    Ok(())
}

fn to8(b: &[u8]) -> [u8; 8] {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    a
}

fn fmt_f32(v: f32) -> String {
    let a = v.abs();
    if a != 0.0 && a.is_finite() && !(1e-5..1e16).contains(&a) {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}
