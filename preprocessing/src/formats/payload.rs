//! Reading the data part of both formats: header lines within a bound, detached data files,
//! and the voxel payload (raw, gzip/zlib, text) with every size checked before it is
//! allocated: the bytes promised against the bytes the file holds (raw) or can expand to
//! (compressed), then the memory ceiling, then a fallible reservation.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::bufread::{MultiGzDecoder, ZlibDecoder};

use super::error::{shorten, FormatError};
use super::source::Stored;
use super::ElementType;
use crate::limits;

/// The longest header either reader accepts (key/value pairs included).
pub(crate) const HEADER_LIMIT: u64 = 16 << 20;
/// The largest expansion a deflate stream can achieve (1032:1): bounds what a compressed
/// payload of a given size can hold, so a forged header cannot make us reserve more.
const MAX_DEFLATE_RATIO: u128 = 1032;
/// Read and write buffer.
pub(crate) const BUFFER: usize = 1 << 20;

/// How the voxel bytes are stored in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    /// The bytes as they are (in the file's byte order).
    Raw,
    /// A gzip stream of the raw bytes (NRRD `gzip`).
    Gzip,
    /// A zlib (or gzip) stream of the raw bytes (MetaImage `CompressedData`).
    Zlib,
    /// Values written as text, separated by white space (or commas).
    Text,
}

/// Where the payload starts, relative to where the header ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Skip {
    /// This many bytes after the current position (and any skipped lines).
    Forward(u64),
    /// The payload ends this many bytes before the end of the file (NRRD `byte skip: -1` is
    /// `FromEnd(0)`, MetaImage `HeaderSize = -1` too).
    FromEnd(u64),
    /// At this offset from the start of the file (MetaImage `HeaderSize`).
    Absolute(u64),
}

/// What the header says about the payload.
#[derive(Debug, Clone)]
pub(crate) struct DataSpec {
    pub encoding: Encoding,
    pub element: ElementType,
    pub big_endian: bool,
    /// Decoded bytes (checked: fits `isize`).
    pub n_bytes: usize,
    /// Lines to skip before the byte skip (NRRD `line skip`).
    pub line_skip: u64,
    /// Where the payload starts in the file.
    pub skip: Skip,
    /// Bytes to drop at the start of the decompressed stream (NRRD `byte skip` with gzip).
    pub inner_skip: u64,
    /// The compressed size, when the header gives it (MetaImage `CompressedDataSize`).
    pub compressed_len: Option<u64>,
}

/// Opens `path` buffered and returns it with its length.
pub(crate) fn open(path: &Path) -> Result<(BufReader<File>, u64), FormatError> {
    let io_err = |source| FormatError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io_err)?;
    let len = file.metadata().map_err(io_err)?.len();
    Ok((BufReader::with_capacity(BUFFER, file), len))
}

/// Reads header lines (each with its `\n`) until `is_last` accepts one or the file ends,
/// within [`HEADER_LIMIT`] bytes. Returns the bytes and whether `is_last` ended them.
pub(crate) fn read_header(
    reader: &mut impl BufRead,
    path: &Path,
    mut is_last: impl FnMut(&[u8]) -> bool,
) -> Result<(Vec<u8>, bool), FormatError> {
    let too_long = || FormatError::BadHeader {
        path: path.to_path_buf(),
        reason: format!("no end of header within the first {HEADER_LIMIT} bytes"),
    };
    let mut header = Vec::new();
    loop {
        let start = header.len();
        let room = HEADER_LIMIT - start as u64;
        if room == 0 {
            return Err(too_long());
        }
        let got = reader
            .by_ref()
            .take(room)
            .read_until(b'\n', &mut header)
            .map_err(|source| FormatError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        if got == 0 {
            return Ok((header, false));
        }
        if !header.ends_with(b"\n") && header.len() as u64 >= HEADER_LIMIT {
            return Err(too_long());
        }
        if is_last(&header[start..]) {
            return Ok((header, true));
        }
    }
}

/// A header line without its line ending (`\n` or `\r\n`).
pub(crate) fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Resolves a detached data file named in `header_path`: relative names next to the header.
pub(crate) fn resolve_data_file(header_path: &Path, name: &str) -> PathBuf {
    let name = Path::new(name);
    if name.is_absolute() {
        return name.to_path_buf();
    }
    header_path
        .parent()
        .map_or_else(|| name.to_path_buf(), |dir| dir.join(name))
}

/// Appends the rest of a detached header file to `text` (kept for the write-back).
pub(crate) fn read_rest(
    reader: &mut BufReader<File>,
    path: &Path,
    text: &mut Vec<u8>,
) -> Result<(), FormatError> {
    let io_err = |source| FormatError::Io {
        path: path.to_path_buf(),
        source,
    };
    let room = HEADER_LIMIT.saturating_sub(text.len() as u64) + 1;
    reader
        .by_ref()
        .take(room)
        .read_to_end(text)
        .map_err(io_err)?;
    if text.len() as u64 > HEADER_LIMIT {
        return Err(FormatError::BadHeader {
            path: path.to_path_buf(),
            reason: format!("a detached header file longer than {HEADER_LIMIT} bytes"),
        });
    }
    Ok(())
}

/// Reads the payload from the detached data file `name` of the header at `header_path`.
pub(crate) fn read_detached(
    header_path: &Path,
    name: &str,
    spec: &DataSpec,
    shape: &Shape<'_>,
) -> Result<(Vec<u8>, Stored), FormatError> {
    let data_path = resolve_data_file(header_path, name);
    let (mut reader, len) = open(&data_path)?;
    let region = DataRegion {
        reader: &mut reader,
        path: &data_path,
        len,
        pos: 0,
    };
    read_data(region, spec, shape)
}

/// Where a payload is read from: the file, its length and the current position.
pub(crate) struct DataRegion<'a> {
    pub reader: &'a mut BufReader<File>,
    pub path: &'a Path,
    pub len: u64,
    pub pos: u64,
}

/// The spatial shape, for error messages.
pub(crate) struct Shape<'a> {
    pub dims: &'a [usize],
    pub components: usize,
}

/// Reads and decodes the payload `spec` describes, checking every size before reserving
/// memory. Returns little-endian data in file layout and what else the region held.
pub(crate) fn read_data(
    region: DataRegion<'_>,
    spec: &DataSpec,
    shape: &Shape<'_>,
) -> Result<(Vec<u8>, Stored), FormatError> {
    let DataRegion {
        reader,
        path,
        len,
        pos,
    } = region;
    check_sizes(spec, path, u128::from(len.saturating_sub(pos)), shape)?;
    let mut lead = skip_lines(reader, path, spec.line_skip, len - pos)?;
    let pos = pos + lead.len() as u64;
    let start = payload_start(spec, path, len, pos)?;
    lead.extend(read_vec(reader, path, start - pos, spec.n_bytes as u128)?);
    let (data, encoded, end) = read_payload(reader, path, spec, len, start)?;
    let trail = read_vec(reader, path, len - end, 0)?;
    let stored = Stored {
        lead,
        encoded,
        trail,
    };
    Ok((data, stored))
}

/// Refuses, before anything is read or reserved, what `remaining` bytes of file cannot hold
/// (raw: fewer bytes than promised; compressed: a payload that cannot expand that far), then
/// what would pass the memory ceiling (the data plus the file bytes kept for a write-back).
fn check_sizes(
    spec: &DataSpec,
    path: &Path,
    remaining: u128,
    shape: &Shape<'_>,
) -> Result<(), FormatError> {
    match spec.encoding {
        Encoding::Raw if remaining < spec.n_bytes as u128 => {
            return Err(too_short(path, spec.n_bytes as u128, remaining));
        }
        Encoding::Gzip | Encoding::Zlib => {
            let clen = spec.compressed_len.map_or(remaining, u128::from);
            if clen > remaining {
                return Err(too_short(path, clen, remaining));
            }
            check_ratio(path, spec, clen as u64)?;
        }
        _ => {}
    }
    let decoded_extra = if spec.encoding == Encoding::Raw {
        0
    } else {
        spec.n_bytes as u128
    };
    limits::check_volume_bytes(remaining + decoded_extra).map_err(|memory| {
        FormatError::OverCeiling {
            path: path.to_path_buf(),
            dims: shape.dims.to_vec(),
            components: shape.components,
            memory,
        }
    })
}

/// A decoded payload: the little-endian data, the encoded bytes when they must be kept, and
/// the offset where the payload ends.
type Decoded = (Vec<u8>, Option<Vec<u8>>, u64);

/// Reads and decodes the payload starting at `start`.
fn read_payload(
    reader: &mut BufReader<File>,
    path: &Path,
    spec: &DataSpec,
    len: u64,
    start: u64,
) -> Result<Decoded, FormatError> {
    let available = len - start;
    match spec.encoding {
        Encoding::Raw => {
            let n = spec.n_bytes as u64;
            let mut data = read_vec(reader, path, n, spec.n_bytes as u128)?;
            to_little_endian(&mut data, spec.element, spec.big_endian);
            Ok((data, None, start + n))
        }
        Encoding::Gzip | Encoding::Zlib => {
            let clen = spec.compressed_len.unwrap_or(available);
            if clen > available {
                return Err(too_short(path, u128::from(clen), u128::from(available)));
            }
            check_ratio(path, spec, clen)?;
            let encoded = read_vec(reader, path, clen, u128::from(clen))?;
            let mut data = inflate(&encoded, spec, path)?;
            to_little_endian(&mut data, spec.element, spec.big_endian);
            Ok((data, Some(encoded), start + clen))
        }
        Encoding::Text => {
            let text = read_vec(reader, path, available, spec.n_bytes as u128)?;
            let n_values = spec.n_bytes / spec.element.size();
            let data = parse_text(&text, spec.element, n_values, path)?;
            Ok((data, Some(text), len))
        }
    }
}

fn too_short(path: &Path, expected: u128, found: u128) -> FormatError {
    FormatError::DataTooShort {
        path: path.to_path_buf(),
        expected,
        found,
    }
}

/// Reads `n` lines (each up to and including its `\n`), within `limit` bytes.
fn skip_lines(
    reader: &mut BufReader<File>,
    path: &Path,
    n: u64,
    limit: u64,
) -> Result<Vec<u8>, FormatError> {
    let mut lead = Vec::new();
    for _ in 0..n {
        let room = limit - lead.len() as u64;
        let got = reader
            .by_ref()
            .take(room)
            .read_until(b'\n', &mut lead)
            .map_err(|source| FormatError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        if got == 0 || !lead.ends_with(b"\n") {
            return Err(FormatError::BadHeader {
                path: path.to_path_buf(),
                reason: format!("the file ends before the {n} lines to skip"),
            });
        }
    }
    Ok(lead)
}

/// The absolute offset where the payload starts, checked against the file.
fn payload_start(spec: &DataSpec, path: &Path, len: u64, pos: u64) -> Result<u64, FormatError> {
    let n = spec.n_bytes as u64;
    let start = match spec.skip {
        Skip::Forward(k) => pos.checked_add(k),
        Skip::FromEnd(trailing) => len.checked_sub(n).and_then(|s| s.checked_sub(trailing)),
        Skip::Absolute(offset) => Some(offset),
    };
    let needed = if spec.encoding == Encoding::Raw { n } else { 0 };
    match start {
        Some(s) if s >= pos && s.checked_add(needed).is_some_and(|end| end <= len) => Ok(s),
        Some(s) if s < pos => Err(FormatError::BadHeader {
            path: path.to_path_buf(),
            reason: format!("the data would start at byte {s}, inside the header (ends at {pos})"),
        }),
        _ => Err(too_short(
            path,
            u128::from(n) + u128::from(pos),
            u128::from(len),
        )),
    }
}

/// Refuses a payload that cannot expand to what the header promises.
fn check_ratio(path: &Path, spec: &DataSpec, clen: u64) -> Result<(), FormatError> {
    let expected = spec.n_bytes as u128 + u128::from(spec.inner_skip);
    let most = u128::from(clen) * MAX_DEFLATE_RATIO + 64;
    if expected > most {
        return Err(FormatError::CompressedTooSmall {
            path: path.to_path_buf(),
            expected,
            compressed: clen,
            most,
        });
    }
    Ok(())
}

/// Reads exactly `n` bytes into memory reserved fallibly; `expected` is what an error reports
/// the header needed.
fn read_vec(
    reader: &mut BufReader<File>,
    path: &Path,
    n: u64,
    expected: u128,
) -> Result<Vec<u8>, FormatError> {
    let mut buf = reserve(n as u128, path)?;
    buf.resize(n as usize, 0);
    let got = fill(reader, &mut buf).map_err(|source| FormatError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if got < buf.len() {
        return Err(too_short(path, expected.max(n as u128), got as u128));
    }
    Ok(buf)
}

/// An empty vector with room for `n` bytes, reserved fallibly.
pub(crate) fn reserve(n: u128, path: &Path) -> Result<Vec<u8>, FormatError> {
    let oom = || FormatError::OutOfMemory {
        path: path.to_path_buf(),
        bytes: n,
    };
    let n = usize::try_from(n).map_err(|_| oom())?;
    let mut buf = Vec::new();
    buf.try_reserve_exact(n).map_err(|_| oom())?;
    Ok(buf)
}

/// Fills `buf` from `reader`; `Ok(filled)` is short only at the end of the stream.
fn fill(reader: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(k) => filled += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Decompresses exactly `inner_skip + n_bytes` bytes and keeps the last `n_bytes`; a stream
/// that ends earlier or holds more is an error, and so is a corrupt one.
fn inflate(encoded: &[u8], spec: &DataSpec, path: &Path) -> Result<Vec<u8>, FormatError> {
    let gzip = encoded.starts_with(&[0x1f, 0x8b]);
    if spec.encoding == Encoding::Gzip && !gzip {
        return Err(FormatError::Corrupt {
            path: path.to_path_buf(),
            source: io::Error::new(io::ErrorKind::InvalidData, "no gzip magic bytes"),
        });
    }
    let mut decoder: Box<dyn Read + '_> = if gzip {
        Box::new(MultiGzDecoder::new(encoded))
    } else {
        Box::new(ZlibDecoder::new(encoded))
    };
    let corrupt = |source| FormatError::Corrupt {
        path: path.to_path_buf(),
        source,
    };
    let expected = spec.n_bytes as u128 + u128::from(spec.inner_skip);
    let skipped =
        io::copy(&mut decoder.by_ref().take(spec.inner_skip), &mut io::sink()).map_err(corrupt)?;
    if skipped < spec.inner_skip {
        return Err(too_short(path, expected, u128::from(skipped)));
    }
    let mut data = reserve(spec.n_bytes as u128, path)?;
    data.resize(spec.n_bytes, 0);
    let got = fill(&mut decoder, &mut data).map_err(corrupt)?;
    if got < data.len() {
        return Err(too_short(path, expected, u128::from(skipped) + got as u128));
    }
    let mut probe = [0u8; 1];
    if fill(&mut decoder, &mut probe).map_err(corrupt)? > 0 {
        return Err(FormatError::DataTooLong {
            path: path.to_path_buf(),
            expected,
        });
    }
    Ok(data)
}

/// Swaps every element to little-endian when the file is big-endian.
pub(crate) fn to_little_endian(data: &mut [u8], element: ElementType, big_endian: bool) {
    if big_endian && element.size() > 1 {
        data.chunks_exact_mut(element.size())
            .for_each(<[u8]>::reverse);
    }
}

/// Parses `n` text values of `element` (separated by white space or commas) into
/// little-endian bytes; anything after the `n`th value is ignored, as teem and MetaIO do.
fn parse_text(
    text: &[u8],
    element: ElementType,
    n: usize,
    path: &Path,
) -> Result<Vec<u8>, FormatError> {
    let mut tokens = text
        .split(|b| b.is_ascii_whitespace() || *b == b',')
        .filter(|t| !t.is_empty());
    // Every value takes at least one byte and one separator.
    if (text.len() as u128) < (n as u128).saturating_mul(2).saturating_sub(1) {
        return Err(FormatError::TooFewValues {
            path: path.to_path_buf(),
            expected: n,
            found: tokens.count(),
        });
    }
    let mut data = reserve(n as u128 * element.size() as u128, path)?;
    for index in 0..n {
        let Some(token) = tokens.next() else {
            return Err(FormatError::TooFewValues {
                path: path.to_path_buf(),
                expected: n,
                found: index,
            });
        };
        let text = String::from_utf8_lossy(token);
        let bad = || FormatError::BadText {
            path: path.to_path_buf(),
            index,
            token: shorten(&text),
            element: element_name(element),
        };
        parse_value(&text, element, &mut data).ok_or_else(bad)?;
    }
    Ok(data)
}

fn element_name(element: ElementType) -> &'static str {
    match element {
        ElementType::U8 => "u8",
        ElementType::I8 => "i8",
        ElementType::U16 => "u16",
        ElementType::I16 => "i16",
        ElementType::U32 => "u32",
        ElementType::I32 => "i32",
        ElementType::U64 => "u64",
        ElementType::I64 => "i64",
        ElementType::F32 => "f32",
        ElementType::F64 => "f64",
    }
}

/// Appends one text value as little-endian bytes; `None` when it does not parse or fit.
fn parse_value(text: &str, element: ElementType, out: &mut Vec<u8>) -> Option<()> {
    match element {
        ElementType::F32 => out.extend(text.parse::<f32>().ok()?.to_le_bytes()),
        ElementType::F64 => out.extend(text.parse::<f64>().ok()?.to_le_bytes()),
        _ => {
            // Integers; an integral float ("3.0", "1e3") is accepted as MetaIO reads doubles.
            let v: i128 = text.parse::<i128>().ok().or_else(|| {
                let f = text.parse::<f64>().ok()?;
                (f.is_finite() && f.fract() == 0.0 && f.abs() < 1.8e19).then_some(f as i128)
            })?;
            match element {
                ElementType::U8 => out.extend(u8::try_from(v).ok()?.to_le_bytes()),
                ElementType::I8 => out.extend(i8::try_from(v).ok()?.to_le_bytes()),
                ElementType::U16 => out.extend(u16::try_from(v).ok()?.to_le_bytes()),
                ElementType::I16 => out.extend(i16::try_from(v).ok()?.to_le_bytes()),
                ElementType::U32 => out.extend(u32::try_from(v).ok()?.to_le_bytes()),
                ElementType::I32 => out.extend(i32::try_from(v).ok()?.to_le_bytes()),
                ElementType::U64 => out.extend(u64::try_from(v).ok()?.to_le_bytes()),
                _ => out.extend(i64::try_from(v).ok()?.to_le_bytes()),
            }
        }
    }
    Some(())
}
