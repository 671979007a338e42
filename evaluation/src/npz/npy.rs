//! The `.npy` format inside a probability `.npz`: numpy's header (byte for byte on write; versions
//! 1 to 3, either byte order, float32 or float64, C or Fortran order on read) and the data.

use std::io::{self, Read, Write};

use ndarray::{ArrayView4, IxDyn, ShapeBuilder};

/// Why a `.npy` member cannot be read (carried by `NpzError::Npy`, which names the file).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NpyFault {
    /// The stream ends before the 8-byte magic and version.
    #[error("no .npy header: {0}")]
    NoHeader(io::Error),
    /// The magic bytes are not numpy's.
    #[error("not a .npy array (wrong magic bytes)")]
    WrongMagic,
    /// A format version other than 1, 2 or 3.
    #[error(".npy version {major}.{minor} is not supported")]
    Version {
        /// Major version.
        major: u8,
        /// Minor version.
        minor: u8,
    },
    /// The stream ends inside the header.
    #[error("truncated .npy header: {0}")]
    TruncatedHeader(io::Error),
    /// The header dict is not ASCII text.
    #[error("header is not ASCII")]
    NotAscii,
    /// The header dict is not the Python literal numpy writes.
    #[error("malformed header {part}: {header}")]
    MalformedHeader {
        /// The part that could not be parsed, e.g. `(shape)`.
        part: &'static str,
        /// The header dict.
        header: String,
    },
    /// The header dict has a key other than `descr`, `fortran_order` and `shape`.
    #[error("malformed header (unknown key '{key}'): {header}")]
    UnknownKey {
        /// The key.
        key: String,
        /// The header dict.
        header: String,
    },
    /// The element type is not float32 or float64.
    #[error("dtype '{descr}' is not float32 or float64")]
    Dtype {
        /// numpy's `descr`, e.g. `<i8`.
        descr: String,
    },
    /// The shape's byte count overflows.
    #[error("shape {shape:?} is too large")]
    TooLarge {
        /// The declared shape.
        shape: Vec<usize>,
    },
    /// The shape needs more bytes than the (compressed) member can hold.
    #[error("shape {shape:?} needs {needed} bytes but the member holds at most {limit}")]
    ExceedsMember {
        /// The declared shape.
        shape: Vec<usize>,
        /// Bytes the header and data need.
        needed: u64,
        /// Bytes the member can hold at most.
        limit: u64,
    },
    /// The data ends before the shape is filled.
    #[error("data shorter than shape {shape:?} needs: {source}")]
    ShortData {
        /// The declared shape.
        shape: Vec<usize>,
        /// The read error.
        source: io::Error,
    },
    /// The values do not form an array of the shape.
    #[error("shape {shape:?}: {source}")]
    Shape {
        /// The declared shape.
        shape: Vec<usize>,
        /// ndarray's complaint.
        source: ndarray::ShapeError,
    },
}

/// numpy `format.MAGIC_PREFIX`.
const NPY_MAGIC: &[u8; 6] = b"\x93NUMPY";
/// numpy `format.ARRAY_ALIGN`: the header is padded so that the data starts at a multiple.
const NPY_ALIGN: usize = 64;
/// numpy `format.GROWTH_AXIS_MAX_DIGITS`: spare header space for in-place shape growth.
const NPY_GROWTH_DIGITS: usize = 21;
/// Bytes converted per read or write call (a multiple of every item size).
const CHUNK_BYTES: usize = 1 << 20;

/// The element types the reader converts to float32.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dtype {
    F32 { little_endian: bool },
    F64 { little_endian: bool },
}

impl Dtype {
    fn parse(descr: &str) -> Result<Dtype, NpyFault> {
        match descr {
            "<f4" => Ok(Dtype::F32 {
                little_endian: true,
            }),
            ">f4" => Ok(Dtype::F32 {
                little_endian: false,
            }),
            "<f8" => Ok(Dtype::F64 {
                little_endian: true,
            }),
            ">f8" => Ok(Dtype::F64 {
                little_endian: false,
            }),
            _ => Err(NpyFault::Dtype {
                descr: descr.to_string(),
            }),
        }
    }

    fn size(self) -> usize {
        match self {
            Dtype::F32 { .. } => 4,
            Dtype::F64 { .. } => 8,
        }
    }

    /// One value from exactly [`Dtype::size`] bytes.
    fn decode(self, bytes: &[u8]) -> f32 {
        match self {
            Dtype::F32 { little_endian } => {
                let b: [u8; 4] = bytes.try_into().expect("chunks_exact yields 4 bytes");
                if little_endian {
                    f32::from_le_bytes(b)
                } else {
                    f32::from_be_bytes(b)
                }
            }
            Dtype::F64 { little_endian } => {
                let b: [u8; 8] = bytes.try_into().expect("chunks_exact yields 8 bytes");
                let v = if little_endian {
                    f64::from_le_bytes(b)
                } else {
                    f64::from_be_bytes(b)
                };
                v as f32
            }
        }
    }
}

/// The dictionary of a `.npy` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct NpyHeader {
    descr: String,
    fortran_order: bool,
    /// The array's shape.
    pub(super) shape: Vec<usize>,
}

/// Reads one `.npy` stream (header and data); `limit` bounds the bytes it may hold.
pub(super) fn read_npy(
    reader: &mut impl Read,
    limit: u64,
) -> Result<ndarray::ArrayD<f32>, NpyFault> {
    let (header, header_len) = read_npy_header(reader)?;
    let dtype = Dtype::parse(&header.descr)?;
    let n_values = header
        .shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| NpyFault::TooLarge {
            shape: header.shape.clone(),
        })?;
    let needed = (n_values as u64)
        .checked_mul(dtype.size() as u64)
        .and_then(|n| n.checked_add(header_len as u64))
        .ok_or_else(|| NpyFault::TooLarge {
            shape: header.shape.clone(),
        })?;
    if needed > limit {
        return Err(NpyFault::ExceedsMember {
            shape: header.shape,
            needed,
            limit,
        });
    }
    let values = read_values(reader, dtype, n_values).map_err(|source| NpyFault::ShortData {
        shape: header.shape.clone(),
        source,
    })?;
    let shape = IxDyn(&header.shape);
    let array = if header.fortran_order {
        let f = ndarray::ArrayD::from_shape_vec(shape.f(), values);
        f.map(|a| a.as_standard_layout().into_owned())
    } else {
        ndarray::ArrayD::from_shape_vec(shape, values)
    };
    array.map_err(|source| NpyFault::Shape {
        shape: header.shape,
        source,
    })
}

/// Reads magic, version and header; returns the header and its total length in bytes.
pub(super) fn read_npy_header(reader: &mut impl Read) -> Result<(NpyHeader, usize), NpyFault> {
    let mut prefix = [0u8; 8];
    reader.read_exact(&mut prefix).map_err(NpyFault::NoHeader)?;
    if &prefix[..6] != NPY_MAGIC {
        return Err(NpyFault::WrongMagic);
    }
    let (major, minor) = (prefix[6], prefix[7]);
    let len_bytes = match major {
        1 => 2,
        2 | 3 => 4,
        _ => return Err(NpyFault::Version { major, minor }),
    };
    let mut len_buf = [0u8; 4];
    reader
        .read_exact(&mut len_buf[..len_bytes])
        .map_err(NpyFault::TruncatedHeader)?;
    let dict_len = u32::from_le_bytes(len_buf) as usize;
    let mut dict = vec![0u8; dict_len];
    reader
        .read_exact(&mut dict)
        .map_err(NpyFault::TruncatedHeader)?;
    // Versions 1 and 2 are latin-1, version 3 UTF-8; a valid header dict is ASCII either way.
    let text = String::from_utf8(dict).map_err(|_| NpyFault::NotAscii)?;
    let header = parse_header_dict(&text)?;
    Ok((header, 8 + len_bytes + dict_len))
}

/// Reads `n` values of `dtype`, converting chunk by chunk.
fn read_values(reader: &mut impl Read, dtype: Dtype, n: usize) -> io::Result<Vec<f32>> {
    let size = dtype.size();
    let mut values = Vec::with_capacity(n);
    let mut buf = vec![0u8; CHUNK_BYTES];
    while values.len() < n {
        let take = ((n - values.len()) * size).min(CHUNK_BYTES);
        reader.read_exact(&mut buf[..take])?;
        values.extend(buf[..take].chunks_exact(size).map(|b| dtype.decode(b)));
    }
    Ok(values)
}

/// Writes the values of `array` in C order as little-endian float32.
pub(super) fn write_f32_le(out: &mut impl Write, array: ArrayView4<'_, f32>) -> io::Result<()> {
    let mut buf = Vec::with_capacity(CHUNK_BYTES);
    for &v in array.iter() {
        buf.extend_from_slice(&v.to_le_bytes());
        if buf.len() == CHUNK_BYTES {
            out.write_all(&buf)?;
            buf.clear();
        }
    }
    out.write_all(&buf)
}

/// The `.npy` v1.0 header numpy (`format.write_array_header_1_0`) writes for a C-order array:
/// magic, version, length, the dict, spare space and padding to 64 bytes, then a newline.
pub(super) fn npy_header(descr: &str, shape: &[usize]) -> Vec<u8> {
    let shape_repr = match shape {
        [n] => format!("({n},)"),
        _ => {
            let parts: Vec<String> = shape.iter().map(usize::to_string).collect();
            format!("({})", parts.join(", "))
        }
    };
    let mut dict =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_repr}, }}");
    if let Some(first) = shape.first() {
        let digits = first.to_string().len();
        dict.push_str(&" ".repeat(NPY_GROWTH_DIGITS.saturating_sub(digits)));
    }
    // numpy `_wrap_header`: the dict, `padlen` spaces and a newline fill the header to 64 bytes.
    let dict_with_newline = dict.len() + 1;
    let padding = NPY_ALIGN - (NPY_MAGIC.len() + 2 + 2 + dict_with_newline) % NPY_ALIGN;
    let header_len = dict_with_newline + padding;
    let mut out = Vec::with_capacity(10 + header_len);
    out.extend_from_slice(NPY_MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(
        &u16::try_from(header_len)
            .expect("a 4-D header is far below 65536 bytes")
            .to_le_bytes(),
    );
    out.extend_from_slice(dict.as_bytes());
    out.extend(std::iter::repeat_n(b' ', padding));
    out.push(b'\n');
    out
}

/// Parses the Python dict literal of a `.npy` header: `'descr'`, `'fortran_order'` and
/// `'shape'`, in any order.
fn parse_header_dict(text: &str) -> Result<NpyHeader, NpyFault> {
    let bad = |part: &'static str| NpyFault::MalformedHeader {
        part,
        header: text.trim_end().to_string(),
    };
    let inner = text
        .trim()
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .ok_or_else(|| bad("(not a dict)"))?;
    let (mut descr, mut fortran_order, mut shape) = (None, None, None);
    let mut rest = inner.trim_start();
    while !rest.is_empty() {
        let (key, after_key) = quoted(rest).ok_or_else(|| bad("(key)"))?;
        let after_colon = after_key
            .trim_start()
            .strip_prefix(':')
            .ok_or_else(|| bad("(missing ':')"))?
            .trim_start();
        let after_value = match key {
            "descr" => {
                let (value, after) = quoted(after_colon).ok_or_else(|| bad("(descr)"))?;
                descr = Some(value.to_string());
                after
            }
            "fortran_order" => {
                let (value, after) = boolean(after_colon).ok_or_else(|| bad("(fortran_order)"))?;
                fortran_order = Some(value);
                after
            }
            "shape" => {
                let (value, after) = tuple(after_colon).ok_or_else(|| bad("(shape)"))?;
                shape = Some(value);
                after
            }
            _ => {
                return Err(NpyFault::UnknownKey {
                    key: key.to_string(),
                    header: text.trim_end().to_string(),
                })
            }
        };
        let after_value = after_value.trim_start();
        rest = after_value
            .strip_prefix(',')
            .unwrap_or(after_value)
            .trim_start();
        if rest.len() == after_value.len() && !rest.is_empty() {
            return Err(bad("(missing ',')"));
        }
    }
    match (descr, fortran_order, shape) {
        (Some(descr), Some(fortran_order), Some(shape)) => Ok(NpyHeader {
            descr,
            fortran_order,
            shape,
        }),
        _ => Err(bad("(needs descr, fortran_order and shape)")),
    }
}

/// A `'...'` or `"..."` literal at the start of `s`, and what follows it.
fn quoted(s: &str) -> Option<(&str, &str)> {
    let quote = s.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let body = &s[1..];
    let end = body.find(quote)?;
    Some((&body[..end], &body[end + 1..]))
}

/// `True` or `False` at the start of `s`, and what follows it.
fn boolean(s: &str) -> Option<(bool, &str)> {
    if let Some(rest) = s.strip_prefix("True") {
        Some((true, rest))
    } else {
        s.strip_prefix("False").map(|rest| (false, rest))
    }
}

/// A tuple of non-negative integers such as `()`, `(5,)` or `(2, 3)` (Python 2 longs `3L` too)
/// at the start of `s`, and what follows it.
fn tuple(s: &str) -> Option<(Vec<usize>, &str)> {
    let body = s.strip_prefix('(')?;
    let end = body.find(')')?;
    let dims = body[..end]
        .split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(|part| part.trim_end_matches('L').parse::<usize>().ok())
        .collect::<Option<Vec<usize>>>()?;
    Some((dims, &body[end + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array;

    #[test]
    fn reads_fortran_order_big_endian_float64() {
        let values = [1.5f64, 2.5, 3.5, 4.5, 5.5, 6.5];
        let dict = "{'descr': '>f8', 'fortran_order': True, 'shape': (1, 1, 2, 3), }\n";
        let mut bytes = b"\x93NUMPY\x02\x00".to_vec();
        bytes.extend_from_slice(&(dict.len() as u32).to_le_bytes());
        bytes.extend_from_slice(dict.as_bytes());
        for v in values {
            bytes.extend_from_slice(&v.to_be_bytes());
        }
        let array = read_npy(&mut bytes.as_slice(), u64::MAX).unwrap();
        // Fortran order: x varies slowest, so [y][x] = values[x * 2 + y].
        let expected =
            Array::from_shape_vec(IxDyn(&[1, 1, 2, 3]), vec![1.5, 3.5, 5.5, 2.5, 4.5, 6.5]);
        assert_eq!(array, expected.unwrap());
    }

    #[test]
    fn rejects_bad_members_naming_the_fault() {
        let header = npy_header("<i8", &[2]);
        let err = read_npy(&mut header.as_slice(), u64::MAX).unwrap_err();
        assert!(err.to_string().contains("'<i8' is not float32"), "{err}");
        let mut short = npy_header("<f4", &[4]);
        short.extend_from_slice(&[0; 8]);
        let err = read_npy(&mut short.as_slice(), u64::MAX).unwrap_err();
        assert!(matches!(err, NpyFault::ShortData { .. }), "{err}");
        assert!(err.to_string().contains("data shorter"), "{err}");
        let forged = npy_header("<f4", &[1 << 40]);
        let err = read_npy(&mut forged.as_slice(), 4096).unwrap_err();
        assert!(
            matches!(err, NpyFault::ExceedsMember { limit: 4096, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("at most 4096"), "{err}");
        assert!(parse_header_dict("{'descr': '<f4', 'shape': (2,)}").is_err());
        assert!(read_npy(&mut &b"PK\x03\x04 not npy"[..], 100).is_err());
    }
}
