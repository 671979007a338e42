//! Streaming voxel decoding: reads the data block in fixed-size chunks straight into one
//! preallocated output buffer, converting datatype, byte order and scaling in the same pass.

use std::io::{self, Read};

/// Voxel datatypes we read (NIfTI `datatype` codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DataType {
    /// `DT_UINT8` (2).
    U8,
    /// `DT_INT8` (256).
    I8,
    /// `DT_INT16` (4).
    I16,
    /// `DT_UINT16` (512).
    U16,
    /// `DT_INT32` (8).
    I32,
    /// `DT_UINT32` (768).
    U32,
    /// `DT_INT64` (1024).
    I64,
    /// `DT_UINT64` (1280).
    U64,
    /// `DT_FLOAT32` (16).
    F32,
    /// `DT_FLOAT64` (64).
    F64,
}

impl DataType {
    /// The datatype of a NIfTI `datatype` code, or `None` for codes we do not read (complex,
    /// RGB, float128, unknown).
    pub fn from_code(code: i16) -> Option<DataType> {
        Some(match code {
            2 => DataType::U8,
            256 => DataType::I8,
            4 => DataType::I16,
            512 => DataType::U16,
            8 => DataType::I32,
            768 => DataType::U32,
            1024 => DataType::I64,
            1280 => DataType::U64,
            16 => DataType::F32,
            64 => DataType::F64,
            _ => return None,
        })
    }

    /// Bytes per voxel.
    pub fn size(self) -> usize {
        match self {
            DataType::U8 | DataType::I8 => 1,
            DataType::I16 | DataType::U16 => 2,
            DataType::I32 | DataType::U32 | DataType::F32 => 4,
            DataType::I64 | DataType::U64 | DataType::F64 => 8,
        }
    }
}

/// Linear intensity scaling `value = raw * slope + inter`, applied in `f64` as nibabel does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scaling {
    /// `scl_slope` (finite, non-zero).
    pub slope: f64,
    /// `scl_inter` (finite).
    pub inter: f64,
}

/// How the data block is laid out.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DataLayout {
    pub datatype: DataType,
    pub big_endian: bool,
    pub n_voxels: usize,
    pub scaling: Option<Scaling>,
}

/// Why decoding stopped.
#[derive(Debug)]
pub(crate) enum DecodeFault<E> {
    /// The stream ended after `got` of the expected bytes.
    Short { got: u64 },
    /// The underlying reader failed (I/O or a corrupt gzip stream).
    Io(io::Error),
    /// The conversion refused a value.
    Value(E),
    /// The output's memory could not be reserved.
    OutOfMemory,
}

/// Voxels per chunk: 256 Ki voxels (at most 2 MiB of raw bytes) keeps the scratch in L2/L3.
const CHUNK_VOXELS: usize = 1 << 18;

/// Fills `buf` completely; `Ok(filled)` is short only at end of stream.
pub(crate) fn fill(reader: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
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

/// Reads `layout.n_voxels` voxels of `N` bytes each, converting each (after optional byte
/// swap) with `convert`. The output's memory is reserved up front (a refusal is
/// [`DecodeFault::OutOfMemory`], not an abort) and filled chunk by chunk, so a stream shorter
/// than its header claims only ever touches the pages its data reached.
fn stream<const N: usize, T, E>(
    reader: &mut dyn Read,
    layout: &DataLayout,
    convert: impl Fn([u8; N]) -> Result<T, E>,
) -> Result<Vec<T>, DecodeFault<E>>
where
    T: Copy + Default,
{
    let mut out = Vec::new();
    out.try_reserve_exact(layout.n_voxels)
        .map_err(|_| DecodeFault::OutOfMemory)?;
    let mut scratch = vec![0u8; CHUNK_VOXELS.min(layout.n_voxels) * N];
    while out.len() < layout.n_voxels {
        let chunk = CHUNK_VOXELS.min(layout.n_voxels - out.len());
        let raw = &mut scratch[..chunk * N];
        let got = fill(reader, raw).map_err(DecodeFault::Io)?;
        if got < raw.len() {
            let before = (out.len() * N) as u64;
            return Err(DecodeFault::Short {
                got: before + got as u64,
            });
        }
        if layout.big_endian {
            raw.chunks_exact_mut(N).for_each(<[u8]>::reverse);
        }
        // One pass straight into the reserved memory (no zeroing first): faster than the
        // zero-filled buffer this replaced, and pages are touched only as data arrives.
        let spare = &mut out.spare_capacity_mut()[..chunk];
        for (d, s) in spare.iter_mut().zip(raw.chunks_exact(N)) {
            let bytes = s.try_into().expect("chunks_exact yields N bytes");
            d.write(convert(bytes).map_err(DecodeFault::Value)?);
        }
        let len = out.len() + chunk;
        // SAFETY: the loop initialised all `chunk` elements after the current length (`raw`
        // holds exactly `chunk * N` bytes, and a refused value returns before this line), and
        // `len <= n_voxels <= capacity` by the reservation above.
        unsafe { out.set_len(len) };
    }
    Ok(out)
}

/// Decodes every voxel to `f64` (exact for all integer types up to 2^53), applies the scaling,
/// and maps the result with `finish`.
pub(crate) fn decode<T, E>(
    reader: &mut dyn Read,
    layout: &DataLayout,
    finish: impl Fn(f64) -> Result<T, E> + Copy,
) -> Result<Vec<T>, DecodeFault<E>>
where
    T: Copy + Default,
{
    let (slope, inter) = layout.scaling.map_or((1.0, 0.0), |s| (s.slope, s.inter));
    let f = move |v: f64| finish(v * slope + inter);
    match layout.datatype {
        DataType::U8 => stream(reader, layout, |b: [u8; 1]| f(f64::from(b[0]))),
        DataType::I8 => stream(reader, layout, |b: [u8; 1]| f(f64::from(b[0] as i8))),
        DataType::I16 => stream(reader, layout, |b| f(f64::from(i16::from_le_bytes(b)))),
        DataType::U16 => stream(reader, layout, |b| f(f64::from(u16::from_le_bytes(b)))),
        DataType::I32 => stream(reader, layout, |b| f(f64::from(i32::from_le_bytes(b)))),
        DataType::U32 => stream(reader, layout, |b| f(f64::from(u32::from_le_bytes(b)))),
        DataType::I64 => stream(reader, layout, |b| f(i64::from_le_bytes(b) as f64)),
        DataType::U64 => stream(reader, layout, |b| f(u64::from_le_bytes(b) as f64)),
        DataType::F32 => stream(reader, layout, |b| f(f64::from(f32::from_le_bytes(b)))),
        DataType::F64 => stream(reader, layout, |b| f(f64::from_le_bytes(b))),
    }
}

/// Decodes to `f32` intensities; unscaled `f32` data is copied bit for bit (NaN payloads kept).
pub(crate) fn decode_image(
    reader: &mut dyn Read,
    layout: &DataLayout,
) -> Result<Vec<f32>, DecodeFault<std::convert::Infallible>> {
    if layout.datatype == DataType::F32 && layout.scaling.is_none() {
        return stream(reader, layout, |b| Ok(f32::from_le_bytes(b)));
    }
    decode(reader, layout, |v| Ok(v as f32))
}

/// Decodes to `u16` labels; any value that is not an integer in `0..=65535` after scaling
/// (negative, fractional, NaN, too large) stops decoding with that value.
pub(crate) fn decode_labels(
    reader: &mut dyn Read,
    layout: &DataLayout,
) -> Result<Vec<u16>, DecodeFault<f64>> {
    decode(reader, layout, |v| {
        if (0.0..=f64::from(u16::MAX)).contains(&v) && v.fract() == 0.0 {
            Ok(v as u16)
        } else {
            Err(v)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(datatype: DataType, big_endian: bool, n: usize) -> DataLayout {
        DataLayout {
            datatype,
            big_endian,
            n_voxels: n,
            scaling: None,
        }
    }

    #[test]
    fn big_endian_int16_with_scaling() {
        let bytes: Vec<u8> = [-2i16, 300].iter().flat_map(|v| v.to_be_bytes()).collect();
        let mut l = layout(DataType::I16, true, 2);
        l.scaling = Some(Scaling {
            slope: 0.5,
            inter: 10.0,
        });
        let v = decode_image(&mut bytes.as_slice(), &l).unwrap();
        assert_eq!(v, vec![9.0, 160.0]);
    }

    #[test]
    fn chunk_boundaries_and_short_streams() {
        let n = CHUNK_VOXELS + 3;
        let bytes: Vec<u8> = (0..n).flat_map(|i| (i as u32).to_le_bytes()).collect();
        let l = layout(DataType::U32, false, n);
        let v = decode_image(&mut bytes.as_slice(), &l).unwrap();
        assert_eq!(v[CHUNK_VOXELS + 2], (CHUNK_VOXELS + 2) as f32);
        let short = &bytes[..bytes.len() - 1];
        match decode_image(&mut &short[..], &l) {
            Err(DecodeFault::Short { got }) => assert_eq!(got, short.len() as u64),
            other => panic!("expected a short stream, got {other:?}"),
        }
    }

    #[test]
    fn labels_refuse_negative_fractional_and_nan() {
        for bad in [-1.0f32, 0.5, f32::NAN, 70_000.0] {
            let bytes = bad.to_le_bytes();
            let r = decode_labels(&mut &bytes[..], &layout(DataType::F32, false, 1));
            assert!(matches!(r, Err(DecodeFault::Value(v)) if v.is_nan() || v == f64::from(bad)));
        }
        let ok = decode_labels(&mut &[7u8, 0][..], &layout(DataType::U8, false, 2)).unwrap();
        assert_eq!(ok, vec![7, 0]);
    }
}
