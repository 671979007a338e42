//! NIfTI I/O: hand-built files of every datatype and byte order, the affine rules, refusals of
//! broken files, write/read round trips, the real ITK head, and a deterministic mutation fuzz.

mod errors;
mod fuzz;
mod real_files;
mod roundtrip;

use std::io::Write;

/// Datatypes as `(NIfTI code, bytes per voxel, signed, float)`.
pub const DATATYPES: [(i16, usize, bool, bool); 10] = [
    (2, 1, false, false),
    (256, 1, true, false),
    (4, 2, true, false),
    (512, 2, false, false),
    (8, 4, true, false),
    (768, 4, false, false),
    (1024, 8, true, false),
    (1280, 8, false, false),
    (16, 4, true, true),
    (64, 8, true, true),
];

/// Every header field the tests vary; `Spec::new` gives a valid 3-D little-endian file.
#[derive(Clone)]
pub struct Spec {
    pub datatype: i16,
    pub bitpix: i16,
    pub big_endian: bool,
    pub dim: [i16; 8],
    pub pixdim: [f32; 8],
    pub vox_offset: f32,
    pub slope: f32,
    pub inter: f32,
    pub xyzt_units: u8,
    pub qform_code: i16,
    pub sform_code: i16,
    pub quatern: [f32; 3],
    pub qoffset: [f32; 3],
    pub srow: [[f32; 4]; 3],
    pub magic: [u8; 4],
}

impl Spec {
    /// A `[x, y, z]` grid of `datatype` with voxel size 1.5 x 2 x 3 mm, sform and qform unset.
    pub fn new(datatype: i16, xyz: [i16; 3]) -> Spec {
        let size = DATATYPES
            .iter()
            .find(|d| d.0 == datatype)
            .map_or(1, |d| d.1);
        Spec {
            datatype,
            bitpix: (size * 8) as i16,
            big_endian: false,
            dim: [3, xyz[0], xyz[1], xyz[2], 1, 1, 1, 1],
            pixdim: [1.0, 1.5, 2.0, 3.0, 0.0, 0.0, 0.0, 0.0],
            vox_offset: 352.0,
            slope: 0.0,
            inter: 0.0,
            xyzt_units: 2,
            qform_code: 0,
            sform_code: 0,
            quatern: [0.0; 3],
            qoffset: [0.0; 3],
            srow: [[0.0; 4]; 3],
            magic: *b"n+1\0",
        }
    }

    /// The 352-byte header block (header plus empty extension flag).
    pub fn header(&self) -> Vec<u8> {
        let mut b = vec![0u8; 352];
        let be = self.big_endian;
        let mut put = |at: usize, bytes: &[u8]| {
            let mut v = bytes.to_vec();
            if be {
                v.reverse();
            }
            b[at..at + v.len()].copy_from_slice(&v);
        };
        put(0, &348i32.to_le_bytes());
        for (i, d) in self.dim.iter().enumerate() {
            put(40 + 2 * i, &d.to_le_bytes());
        }
        put(70, &self.datatype.to_le_bytes());
        put(72, &self.bitpix.to_le_bytes());
        for (i, p) in self.pixdim.iter().enumerate() {
            put(76 + 4 * i, &p.to_le_bytes());
        }
        put(108, &self.vox_offset.to_le_bytes());
        put(112, &self.slope.to_le_bytes());
        put(116, &self.inter.to_le_bytes());
        put(123, &[self.xyzt_units]);
        put(252, &self.qform_code.to_le_bytes());
        put(254, &self.sform_code.to_le_bytes());
        for i in 0..3 {
            put(256 + 4 * i, &self.quatern[i].to_le_bytes());
            put(268 + 4 * i, &self.qoffset[i].to_le_bytes());
        }
        for (r, row) in self.srow.iter().enumerate() {
            for (c, v) in row.iter().enumerate() {
                put(280 + 16 * r + 4 * c, &v.to_le_bytes());
            }
        }
        b[344..348].copy_from_slice(&self.magic);
        b
    }

    /// The same fields as a 544-byte NIfTI-2 header block (540-byte header plus the extension
    /// flag; the data follows at 544).
    pub fn nifti2_header(&self) -> Vec<u8> {
        let mut b = vec![0u8; 544];
        let be = self.big_endian;
        let mut put = |at: usize, bytes: &[u8]| {
            let mut v = bytes.to_vec();
            if be {
                v.reverse();
            }
            b[at..at + v.len()].copy_from_slice(&v);
        };
        put(0, &540i32.to_le_bytes());
        put(12, &self.datatype.to_le_bytes());
        put(14, &self.bitpix.to_le_bytes());
        for (i, &d) in self.dim.iter().enumerate() {
            put(16 + 8 * i, &i64::from(d).to_le_bytes());
        }
        for (i, &p) in self.pixdim.iter().enumerate() {
            put(104 + 8 * i, &f64::from(p).to_le_bytes());
        }
        put(168, &544i64.to_le_bytes());
        put(176, &f64::from(self.slope).to_le_bytes());
        put(184, &f64::from(self.inter).to_le_bytes());
        put(344, &i32::from(self.qform_code).to_le_bytes());
        put(348, &i32::from(self.sform_code).to_le_bytes());
        for i in 0..3 {
            put(352 + 8 * i, &f64::from(self.quatern[i]).to_le_bytes());
            put(376 + 8 * i, &f64::from(self.qoffset[i]).to_le_bytes());
        }
        for (r, row) in self.srow.iter().enumerate() {
            for (c, &v) in row.iter().enumerate() {
                put(400 + 32 * r + 8 * c, &f64::from(v).to_le_bytes());
            }
        }
        put(500, &i32::from(self.xyzt_units).to_le_bytes());
        b[4..12].copy_from_slice(b"n+2\0\r\n\x1a\n");
        b
    }

    /// [`Spec::nifti2_header`] followed by `values`.
    pub fn nifti2_file(&self, values: &[f64]) -> Vec<u8> {
        let mut out = self.nifti2_header();
        out.extend(encode(self.datatype, self.big_endian, values));
        out
    }

    /// Header followed by `values` encoded in this spec's datatype and byte order.
    pub fn file(&self, values: &[f64]) -> Vec<u8> {
        let mut out = self.header();
        out.resize(self.vox_offset.max(352.0) as usize, 0);
        out.extend(encode(self.datatype, self.big_endian, values));
        out
    }
}

/// `values` in the datatype `code`, in the given byte order.
pub fn encode(code: i16, big_endian: bool, values: &[f64]) -> Vec<u8> {
    values
        .iter()
        .flat_map(|&v| {
            let mut b = match code {
                2 => (v as u8).to_le_bytes().to_vec(),
                256 => (v as i8).to_le_bytes().to_vec(),
                4 => (v as i16).to_le_bytes().to_vec(),
                512 => (v as u16).to_le_bytes().to_vec(),
                8 => (v as i32).to_le_bytes().to_vec(),
                768 => (v as u32).to_le_bytes().to_vec(),
                1024 => (v as i64).to_le_bytes().to_vec(),
                1280 => (v as u64).to_le_bytes().to_vec(),
                16 => (v as f32).to_le_bytes().to_vec(),
                64 => v.to_le_bytes().to_vec(),
                _ => panic!("test helper: unknown datatype {code}"),
            };
            if big_endian {
                b.reverse();
            }
            b
        })
        .collect()
}

/// gzip-compresses `bytes` (default level).
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// Folder of the committed ITK head files.
pub fn itk_head_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/data/itk_head")
}
