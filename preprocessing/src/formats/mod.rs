//! Native NRRD, MetaImage and GIPL codecs: readers and writers around one neutral struct,
//! [`RawImage`], whose geometry is what SimpleITK reports for the same file; and a DICOM
//! series reader ([`read_dicom_series`], a folder of single-frame files or one enhanced
//! multi-frame file, native or compressed, to one [`RawImage`]) with
//! a DICOM SEG writer for label maps on its grid ([`write_dicom_seg`]).
//!
//! | format    | files                          | encodings read            | written as            |
//! |-----------|--------------------------------|---------------------------|-----------------------|
//! | NRRD      | `.nrrd`, `.nhdr` + data file   | raw, gzip, ascii          | gzip, LPS space       |
//! | MetaImage | `.mha`, `.mhd` + `.raw`/`.zraw`| binary, zlib, ascii       | zlib (CompressedData) |
//! | GIPL      | `.gipl`                        | big-endian binary         | as SimpleITK writes it |
//!
//! nnU-Net's `NaturalImage2DIO` (`.png`, `.bmp`, `.tif`) and `Tiff3DIO` (`.tif`, `.tiff` stacks
//! with a `.json` spacing sidecar) have their own readers and writers, [`read_natural`],
//! [`write_natural_seg`], [`read_tif`], [`read_tiff3d`], [`read_tiff3d_seg`], [`write_tiff3d_seg`], and the
//! registry's rule for a `.tif`, [`reader_for`].
//!
//! Geometry is given as ITK gives it: `spacing` and `origin` per spatial axis, `direction` the
//! row-major `d × d` matrix whose **columns** are the axis directions, all in LPS
//! (`GetSpacing`/`GetOrigin`/`GetDirection` of SimpleITK). NRRD files in RAS or LAS space are
//! converted to LPS as ITK's `NrrdImageIO` does; other spaces (`scanner-xyz`,
//! `3D-right-handed`, ...) are taken as they are. MetaImage's `TransformMatrix` lists the axis
//! directions as its rows, so the direction is its transpose (verified against SimpleITK 2.5).
//! GIPL holds no direction: it reads as the identity (axes of negative spacings reversed), as
//! ITK's `GiplImageIO` gives it ([`read_gipl`]).
//!
//! **Write-back:** an image read from a file remembers that file (header text, comments,
//! key/value pairs, skipped and trailing bytes, the encoded payload). Written back unchanged to
//! the same kind of file (`.nrrd`/`.nhdr`/`.mha`/`.mhd`/`.gipl`), it reproduces the file byte
//! for byte (and its data file, named as before, beside the new header). With changed voxels
//! but the same geometry and type, the header is kept and the voxels re-encoded in the file's
//! encoding, unless the header records what new voxels would change (MetaImage
//! `CompressedDataSize` or `HeaderSize` with compressed data, a gzip NRRD's byte skip). Those,
//! images with another geometry or type, data files named outside the header's folder, and new
//! images get a fresh canonical header; [`RawImage::forget_source`] asks for one.
//!
//! # Example
//! ```no_run
//! use std::path::Path;
//! use autoseg_preprocessing::formats::{read_image, write_image};
//!
//! let image = read_image(Path::new("case_0000.nrrd"))?;
//! println!("{:?} voxels of {:?} mm, {:?}", image.dims, image.spacing, image.element);
//! write_image(&image, Path::new("case_0000.mha"))?;
//! # Ok::<(), autoseg_preprocessing::formats::FormatError>(())
//! ```
//!
//! **Architecture invariant** (as `nifti_io`): no size read from a file is allocated before it
//! is checked: dims multiply with checked arithmetic, the bytes a header promises are compared
//! with what the file holds (raw) or with what its compressed size can expand to, decompression
//! stops at exactly the promised size (more or less is an error), everything kept in memory is
//! checked against [`crate::limits`], and memory is reserved fallibly. Writes are atomic
//! (`write_atomic`): a temporary file renamed over the target.

mod dicom;
mod encode;
mod error;
mod geometry;
mod gipl;
mod metaimage;
mod natural;
mod nrrd;
mod payload;
mod source;

#[cfg(test)]
mod tests;

use std::path::Path;

pub use dicom::{
    read_dicom_series, write_dicom_seg, DicomSeries, SeriesFault, SeriesInfo, SourceSlice,
    ORIENTATION_TOLERANCE, SEG_SOP_CLASS_UID, SPACING_TOLERANCE, TILT_TOLERANCE,
};
pub use error::{FormatError, InvalidImage};
pub use gipl::{read_gipl, write_gipl};
pub use metaimage::{read_metaimage, write_metaimage};
pub use natural::{
    read_natural, read_tif, read_tiff3d, read_tiff3d_seg, reader_for, write_natural_seg,
    write_tiff3d_seg, NaturalReader, Tiff3d, NATURAL_ENDINGS, NATURAL_SPACING, PILLOW_MAX_PIXELS,
    TIFF3D_ENDINGS,
};
pub use nrrd::{read_nrrd, write_nrrd};

use source::Source;

/// The voxel component types the formats share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ElementType {
    /// Unsigned 8-bit (`uchar`, `MET_UCHAR`).
    U8,
    /// Signed 8-bit (`signed char`, `MET_CHAR`).
    I8,
    /// Unsigned 16-bit (`ushort`, `MET_USHORT`).
    U16,
    /// Signed 16-bit (`short`, `MET_SHORT`).
    I16,
    /// Unsigned 32-bit (`uint`, `MET_UINT`, `MET_ULONG`).
    U32,
    /// Signed 32-bit (`int`, `MET_INT`, `MET_LONG`).
    I32,
    /// Unsigned 64-bit (`ulonglong`, `MET_ULONG_LONG`).
    U64,
    /// Signed 64-bit (`longlong`, `MET_LONG_LONG`).
    I64,
    /// IEEE 754 single precision (`float`, `MET_FLOAT`).
    F32,
    /// IEEE 754 double precision (`double`, `MET_DOUBLE`).
    F64,
}

impl ElementType {
    /// Bytes per component.
    pub fn size(self) -> usize {
        match self {
            ElementType::U8 | ElementType::I8 => 1,
            ElementType::U16 | ElementType::I16 => 2,
            ElementType::U32 | ElementType::I32 | ElementType::F32 => 4,
            ElementType::U64 | ElementType::I64 | ElementType::F64 => 8,
        }
    }

    /// Whether the type is a floating-point type.
    pub fn is_float(self) -> bool {
        matches!(self, ElementType::F32 | ElementType::F64)
    }

    /// One little-endian component as `f64` (exact for every type but 64-bit integers beyond
    /// 2^53). `bytes` holds exactly [`ElementType::size`] bytes.
    fn value_f64(self, bytes: &[u8]) -> f64 {
        let arr = |b: &[u8]| -> [u8; 8] {
            let mut a = [0u8; 8];
            a[..b.len()].copy_from_slice(b);
            a
        };
        let a = arr(bytes);
        match self {
            ElementType::U8 => f64::from(a[0]),
            ElementType::I8 => f64::from(a[0] as i8),
            ElementType::U16 => f64::from(u16::from_le_bytes([a[0], a[1]])),
            ElementType::I16 => f64::from(i16::from_le_bytes([a[0], a[1]])),
            ElementType::U32 => f64::from(u32::from_le_bytes([a[0], a[1], a[2], a[3]])),
            ElementType::I32 => f64::from(i32::from_le_bytes([a[0], a[1], a[2], a[3]])),
            ElementType::F32 => f64::from(f32::from_le_bytes([a[0], a[1], a[2], a[3]])),
            ElementType::U64 => u64::from_le_bytes(a) as f64,
            ElementType::I64 => i64::from_le_bytes(a) as f64,
            ElementType::F64 => f64::from_le_bytes(a),
        }
    }
}

/// An image as a file holds it, before any mapping to autoseg's geometry.
///
/// # Shapes
/// `dims` is in file order, fastest axis first (`x, y, z[, ...]`); `data` holds
/// `dims.iter().product() * components` components of `element`, components of one voxel
/// adjacent, then x fastest: `data[((z * ny + y) * nx + x) * components + c]` (in elements).
#[derive(Clone)]
pub struct RawImage {
    /// Voxels per spatial axis, fastest first.
    pub dims: Vec<usize>,
    /// Voxel size per spatial axis (mm).
    pub spacing: Vec<f64>,
    /// Position of the first voxel's centre, LPS (ITK's `GetOrigin`).
    pub origin: Vec<f64>,
    /// Row-major `d × d` direction cosines in LPS; column `j` is axis `j`'s direction
    /// (ITK's `GetDirection`).
    pub direction: Vec<f64>,
    /// Components per voxel (1 for a scalar image).
    pub components: usize,
    /// The component type.
    pub element: ElementType,
    /// The voxels as little-endian bytes, decoded (decompressed, byte-swapped).
    pub data: Vec<u8>,
    /// The file this image was read from, for a bit-identical write-back.
    pub(crate) source: Option<Box<Source>>,
}

impl RawImage {
    /// A new image (not read from a file: a writer gives it a canonical header).
    ///
    /// # Errors
    /// [`InvalidImage`] when the parts do not fit together: no dims or more than 16, a zero dim,
    /// spacing/origin/direction of the wrong length, zero or non-finite spacing, non-finite
    /// origin, a singular or non-finite direction, zero components, or `data` of the wrong
    /// length.
    pub fn new(
        dims: Vec<usize>,
        spacing: Vec<f64>,
        origin: Vec<f64>,
        direction: Vec<f64>,
        components: usize,
        element: ElementType,
        data: Vec<u8>,
    ) -> Result<RawImage, InvalidImage> {
        let image = RawImage {
            dims,
            spacing,
            origin,
            direction,
            components,
            element,
            data,
            source: None,
        };
        image.check()?;
        Ok(image)
    }

    /// Number of voxels (the product of `dims`).
    pub fn n_voxels(&self) -> usize {
        self.dims.iter().product()
    }

    /// Every component as `f64`, in `data` order.
    pub fn to_f64(&self) -> Vec<f64> {
        let size = self.element.size();
        self.data
            .chunks_exact(size)
            .map(|c| self.element.value_f64(c))
            .collect()
    }

    /// Checks that the parts fit together (see [`RawImage::new`]).
    ///
    /// # Errors
    /// [`InvalidImage`] naming the first fault.
    pub fn check(&self) -> Result<(), InvalidImage> {
        geometry::check_image(self)
    }

    /// Whether this image still remembers the file it was read from.
    pub fn has_source(&self) -> bool {
        self.source.is_some()
    }

    /// Forgets the file this image was read from, so that writers give it a canonical header.
    pub fn forget_source(&mut self) {
        self.source = None;
    }
}

/// Images are equal when their geometry, type and voxels are (where they were read from does
/// not matter).
impl PartialEq for RawImage {
    fn eq(&self, other: &RawImage) -> bool {
        self.dims == other.dims
            && self.spacing == other.spacing
            && self.origin == other.origin
            && self.direction == other.direction
            && self.components == other.components
            && self.element == other.element
            && self.data == other.data
    }
}

/// Geometry and type in full; the voxels and the source only summarised.
impl std::fmt::Debug for RawImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawImage")
            .field("dims", &self.dims)
            .field("spacing", &self.spacing)
            .field("origin", &self.origin)
            .field("direction", &self.direction)
            .field("components", &self.components)
            .field("element", &self.element)
            .field("data", &format_args!("[{} bytes]", self.data.len()))
            .field("source", &self.source.as_ref().map(|s| s.kind))
            .finish()
    }
}

/// Reads an NRRD (`.nrrd`, `.nhdr`), MetaImage (`.mha`, `.mhd`) or GIPL (`.gipl`) file, chosen
/// by extension.
///
/// # Errors
/// [`FormatError::Extension`] for any other extension, else as [`read_nrrd`] /
/// [`read_metaimage`] / [`read_gipl`].
pub fn read_image(path: &Path) -> Result<RawImage, FormatError> {
    match Kind::of(path) {
        Some(Kind::Nrrd) => read_nrrd(path),
        Some(Kind::MetaImage) => read_metaimage(path),
        Some(Kind::Gipl) => read_gipl(path),
        None => Err(FormatError::Extension {
            path: path.to_path_buf(),
            expected: ".nrrd, .nhdr, .mha, .mhd or .gipl",
        }),
    }
}

/// Writes `image` as NRRD, MetaImage or GIPL, chosen by the extension of `path`.
///
/// # Errors
/// [`FormatError::Extension`] for any other extension, else as [`write_nrrd`] /
/// [`write_metaimage`] / [`write_gipl`].
pub fn write_image(image: &RawImage, path: &Path) -> Result<(), FormatError> {
    match Kind::of(path) {
        Some(Kind::Nrrd) => write_nrrd(image, path),
        Some(Kind::MetaImage) => write_metaimage(image, path),
        Some(Kind::Gipl) => write_gipl(image, path),
        None => Err(FormatError::Extension {
            path: path.to_path_buf(),
            expected: ".nrrd, .nhdr, .mha, .mhd or .gipl",
        }),
    }
}

/// The formats with a header and a source to write back, by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Nrrd,
    MetaImage,
    Gipl,
}

impl Kind {
    fn of(path: &Path) -> Option<Kind> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "nrrd" | "nhdr" => Some(Kind::Nrrd),
            "mha" | "mhd" => Some(Kind::MetaImage),
            "gipl" => Some(Kind::Gipl),
            _ => None,
        }
    }
}

/// Whether `path` names a detached header (`.nhdr`, `.mhd`) rather than a single file.
fn is_detached(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("nhdr") || e.eq_ignore_ascii_case("mhd"))
}
