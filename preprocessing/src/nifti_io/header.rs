//! The NIfTI-1 (348-byte) and NIfTI-2 (540-byte) headers: parsing from bytes in either byte
//! order, and the NIfTI-1 little-endian header we write.

use crate::volume::HeaderGeometry;

/// Size of a NIfTI-1 header.
pub(crate) const NIFTI1_HEADER_LEN: usize = 348;
/// Size of a NIfTI-2 header.
pub(crate) const NIFTI2_HEADER_LEN: usize = 540;
/// Data offset of a single-file NIfTI-1 written by us: header plus the 4-byte extension flag.
pub(crate) const NIFTI1_VOX_OFFSET: usize = 352;

/// Which header layout a file uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    /// 348-byte header, 16-bit dims, f32 fields.
    Nifti1,
    /// 540-byte header, 64-bit dims, f64 fields.
    Nifti2,
}

/// A header's fields that reading needs, widened to `i64`/`f64`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RawHeader {
    /// Layout the header was read from.
    pub version: Version,
    /// True when the file's numbers are big-endian.
    pub big_endian: bool,
    /// NIfTI datatype code.
    pub datatype: i16,
    /// `dim[0..8]`.
    pub dim: [i64; 8],
    /// Byte offset of the voxel data.
    pub vox_offset: f64,
    /// `scl_slope`.
    pub scl_slope: f64,
    /// `scl_inter`.
    pub scl_inter: f64,
    /// The geometry fields.
    pub geometry: HeaderGeometry,
}

/// Why a byte block is not a header we can read.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum HeaderFault {
    /// `sizeof_hdr` is neither 348 nor 540 in either byte order.
    NotNifti {
        /// The first four bytes, little-endian.
        sizeof_hdr: i32,
    },
    /// The magic string is not `n+1`/`n+2` (`ni1` means a .hdr/.img pair).
    BadMagic {
        /// The magic bytes found.
        found: Vec<u8>,
    },
}

/// Little/big-endian field reader over a header block.
struct Fields<'a> {
    bytes: &'a [u8],
    big_endian: bool,
}

impl Fields<'_> {
    fn array<const N: usize>(&self, at: usize) -> [u8; N] {
        let mut a: [u8; N] = self.bytes[at..at + N]
            .try_into()
            .expect("callers check the block is a whole header before reading fields");
        if self.big_endian {
            a.reverse();
        }
        a
    }
    fn i16(&self, at: usize) -> i16 {
        i16::from_le_bytes(self.array(at))
    }
    fn i32(&self, at: usize) -> i32 {
        i32::from_le_bytes(self.array(at))
    }
    fn i64(&self, at: usize) -> i64 {
        i64::from_le_bytes(self.array(at))
    }
    fn f32(&self, at: usize) -> f64 {
        f64::from(f32::from_le_bytes(self.array(at)))
    }
    fn f64(&self, at: usize) -> f64 {
        f64::from_le_bytes(self.array(at))
    }
}

/// Reads `sizeof_hdr` from the first four bytes: the layout and the byte order.
pub(crate) fn detect(first4: [u8; 4]) -> Result<(Version, bool), HeaderFault> {
    let le = i32::from_le_bytes(first4);
    let be = i32::from_be_bytes(first4);
    match (le, be) {
        (348, _) => Ok((Version::Nifti1, false)),
        (_, 348) => Ok((Version::Nifti1, true)),
        (540, _) => Ok((Version::Nifti2, false)),
        (_, 540) => Ok((Version::Nifti2, true)),
        _ => Err(HeaderFault::NotNifti { sizeof_hdr: le }),
    }
}

/// Parses a whole header block (`NIFTI1_HEADER_LEN` or `NIFTI2_HEADER_LEN` bytes as `detect`
/// said).
pub(crate) fn parse(
    bytes: &[u8],
    version: Version,
    big_endian: bool,
) -> Result<RawHeader, HeaderFault> {
    let f = Fields { bytes, big_endian };
    match version {
        Version::Nifti1 => parse_nifti1(&f),
        Version::Nifti2 => parse_nifti2(&f),
    }
}

fn check_magic(found: &[u8], expected: &[u8]) -> Result<(), HeaderFault> {
    if found == expected {
        Ok(())
    } else {
        Err(HeaderFault::BadMagic {
            found: found.to_vec(),
        })
    }
}

fn parse_nifti1(f: &Fields<'_>) -> Result<RawHeader, HeaderFault> {
    check_magic(&f.bytes[344..348], b"n+1\0")?;
    let geometry = HeaderGeometry {
        pixdim: std::array::from_fn(|i| f.f32(76 + 4 * i)),
        xyzt_units: f.bytes[123],
        qform_code: f.i16(252),
        sform_code: f.i16(254),
        quatern: std::array::from_fn(|i| f.f32(256 + 4 * i)),
        qoffset: std::array::from_fn(|i| f.f32(268 + 4 * i)),
        srow: std::array::from_fn(|r| std::array::from_fn(|c| f.f32(280 + 16 * r + 4 * c))),
    };
    Ok(RawHeader {
        version: Version::Nifti1,
        big_endian: f.big_endian,
        datatype: f.i16(70),
        dim: std::array::from_fn(|i| i64::from(f.i16(40 + 2 * i))),
        vox_offset: f.f32(108),
        scl_slope: f.f32(112),
        scl_inter: f.f32(116),
        geometry,
    })
}

fn parse_nifti2(f: &Fields<'_>) -> Result<RawHeader, HeaderFault> {
    check_magic(&f.bytes[4..12], b"n+2\0\r\n\x1a\n")?;
    let geometry = HeaderGeometry {
        pixdim: std::array::from_fn(|i| f.f64(104 + 8 * i)),
        xyzt_units: f.i32(500).clamp(0, 255) as u8,
        qform_code: f.i32(344).clamp(i16::MIN.into(), i16::MAX.into()) as i16,
        sform_code: f.i32(348).clamp(i16::MIN.into(), i16::MAX.into()) as i16,
        quatern: std::array::from_fn(|i| f.f64(352 + 8 * i)),
        qoffset: std::array::from_fn(|i| f.f64(376 + 8 * i)),
        srow: std::array::from_fn(|r| std::array::from_fn(|c| f.f64(400 + 32 * r + 8 * c))),
    };
    Ok(RawHeader {
        version: Version::Nifti2,
        big_endian: f.big_endian,
        datatype: f.i16(12),
        dim: std::array::from_fn(|i| f.i64(16 + 8 * i)),
        vox_offset: f.i64(168) as f64,
        scl_slope: f.f64(176),
        scl_inter: f.f64(184),
        geometry,
    })
}

/// Little-endian field writer into a header block.
struct Writer<'a>(&'a mut [u8]);

impl Writer<'_> {
    fn put(&mut self, at: usize, bytes: &[u8]) {
        self.0[at..at + bytes.len()].copy_from_slice(bytes);
    }
    fn i16(&mut self, at: usize, v: i16) {
        self.put(at, &v.to_le_bytes());
    }
    fn f32(&mut self, at: usize, v: f64) {
        self.put(at, &(v as f32).to_le_bytes());
    }
}

/// What [`encode_nifti1`] needs besides the geometry.
pub(crate) struct WriteSpec {
    /// Spatial dims `[x, y, z]` (NIfTI order), each within `1..=i16::MAX`.
    pub dims_xyz: [i16; 3],
    /// NIfTI datatype code.
    pub datatype: i16,
    /// Bits per voxel.
    pub bitpix: i16,
}

/// A little-endian single-file NIfTI-1 header plus the 4-byte empty extension flag (352 bytes),
/// carrying `geometry` unchanged and no intensity scaling.
pub(crate) fn encode_nifti1(
    spec: &WriteSpec,
    geometry: &HeaderGeometry,
) -> [u8; NIFTI1_VOX_OFFSET] {
    let mut block = [0u8; NIFTI1_VOX_OFFSET];
    let mut w = Writer(&mut block);
    w.put(0, &(NIFTI1_HEADER_LEN as i32).to_le_bytes());
    w.put(38, b"r");
    let [x, y, z] = spec.dims_xyz;
    for (i, d) in [3, x, y, z, 1, 1, 1, 1].into_iter().enumerate() {
        w.i16(40 + 2 * i, d);
    }
    w.i16(70, spec.datatype);
    w.i16(72, spec.bitpix);
    for (i, &p) in geometry.pixdim.iter().enumerate() {
        w.f32(76 + 4 * i, p);
    }
    w.f32(108, NIFTI1_VOX_OFFSET as f64);
    w.f32(112, 1.0);
    w.put(123, &[geometry.xyzt_units]);
    w.put(148, b"autoseg");
    w.i16(252, geometry.qform_code);
    w.i16(254, geometry.sform_code);
    for i in 0..3 {
        w.f32(256 + 4 * i, geometry.quatern[i]);
        w.f32(268 + 4 * i, geometry.qoffset[i]);
    }
    for (r, row) in geometry.srow.iter().enumerate() {
        for (c, &v) in row.iter().enumerate() {
            w.f32(280 + 16 * r + 4 * c, v);
        }
    }
    w.put(344, b"n+1\0");
    block
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::Spacing;

    #[test]
    fn encoded_header_parses_back_with_the_same_fields() {
        let mut g = HeaderGeometry::axis_aligned(Spacing([3.0, 2.0, 1.5]), [1.0, 2.0, 3.0]);
        g.quatern = [0.25, -0.5, 0.125];
        g.pixdim[0] = -1.0;
        let spec = WriteSpec {
            dims_xyz: [7, 8, 9],
            datatype: 16,
            bitpix: 32,
        };
        let block = encode_nifti1(&spec, &g);
        assert_eq!(
            detect(block[..4].try_into().unwrap()),
            Ok((Version::Nifti1, false))
        );
        let h = parse(&block[..NIFTI1_HEADER_LEN], Version::Nifti1, false).unwrap();
        assert_eq!(h.geometry, g);
        assert_eq!(h.dim, [3, 7, 8, 9, 1, 1, 1, 1]);
        assert_eq!(
            (h.datatype, h.vox_offset, h.scl_slope, h.scl_inter),
            (16, 352.0, 1.0, 0.0)
        );
    }

    #[test]
    fn detect_recognises_both_versions_and_byte_orders() {
        assert_eq!(detect(348i32.to_be_bytes()), Ok((Version::Nifti1, true)));
        assert_eq!(detect(540i32.to_le_bytes()), Ok((Version::Nifti2, false)));
        assert_eq!(detect(540i32.to_be_bytes()), Ok((Version::Nifti2, true)));
        assert_eq!(
            detect(*b"\x1f\x8b\x08\x00"),
            Err(HeaderFault::NotNifti {
                sizeof_hdr: 559_903
            })
        );
    }
}
