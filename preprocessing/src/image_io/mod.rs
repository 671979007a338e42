//! The one image I/O interface: every command reads and writes images through here, and the
//! format is chosen by the file's ending as nnU-Net's reader registry chooses its reader by
//! dataset.json's `file_ending`.
//!
//! | ending              | codec                                   | geometry kept for writing |
//! |---------------------|-----------------------------------------|---------------------------|
//! | `.nii.gz`, `.nii`   | [`crate::nifti_io`] (NIfTI-1 and -2)    | the NIfTI header fields   |
//! | `.nrrd`, `.nhdr`    | [`crate::formats`] NRRD                 | ITK spacing/origin/direction |
//! | `.mha`, `.mhd`      | [`crate::formats`] MetaImage            | ITK spacing/origin/direction |
//!
//! Whatever the format, a volume comes back in one convention, nnU-Net's (`SimpleITKIO`):
//! arrays `(c, z, y, x)` with `x` the file's fastest axis, spacing `(z, y, x)` in mm, 2-D files
//! as one slice with z spacing `999 × max(spacing)`. So the same scan gives the same
//! fingerprint and plan in every format. A mask is written in the format its path names, with
//! the geometry of its source ([`crate::Geometry::source`]): a NIfTI source's header fields
//! unchanged, an NRRD or MetaImage source's spacing, origin and direction unchanged (a 2-D
//! source as a 2-D file), as nnU-Net's `write_seg` does.
//!
//! nnU-Net reads `.nrrd`, `.mha` and `.gipl` through SimpleITK; `.nhdr` and `.mhd` (a header
//! with a separate data file) are autoseg's additions. `.gipl` is not read. Multi-component
//! (vector, RGB) NRRD or MetaImage files and 4-D files are refused by name: store each channel
//! as its own file, as for NIfTI.

mod error;
mod itk;

use std::path::Path;

pub use error::ImageError;

use crate::volume::{Image, LabelMap};
use crate::{formats, nifti_io};

/// The file formats autoseg reads and writes, named by their file endings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    /// `.nii.gz`: gzip-compressed NIfTI.
    NiftiGz,
    /// `.nii`: uncompressed NIfTI.
    Nifti,
    /// `.nrrd`: NRRD with attached data.
    Nrrd,
    /// `.nhdr`: NRRD header with a detached data file.
    Nhdr,
    /// `.mha`: MetaImage with attached data.
    Mha,
    /// `.mhd`: MetaImage header with a `.raw`/`.zraw` data file.
    Mhd,
}

impl ImageFormat {
    /// Every format with its ending, in the order [`ImageFormat::detect`] tries them.
    pub const ALL: [(ImageFormat, &'static str); 6] = [
        (ImageFormat::NiftiGz, ".nii.gz"),
        (ImageFormat::Nifti, ".nii"),
        (ImageFormat::Nrrd, ".nrrd"),
        (ImageFormat::Nhdr, ".nhdr"),
        (ImageFormat::Mha, ".mha"),
        (ImageFormat::Mhd, ".mhd"),
    ];

    /// The format of a dataset.json `file_ending` such as `".nii.gz"` (ASCII case ignored).
    pub fn from_ending(ending: &str) -> Option<ImageFormat> {
        Self::ALL
            .iter()
            .find(|(_, e)| e.eq_ignore_ascii_case(ending))
            .map(|&(format, _)| format)
    }

    /// The format a file's name ends in (ASCII case ignored), if any.
    pub fn of_path(path: &Path) -> Option<ImageFormat> {
        let name = path.file_name()?.to_str()?.to_ascii_lowercase();
        Self::ALL
            .iter()
            .find(|(_, e)| name.len() > e.len() && name.ends_with(e))
            .map(|&(format, _)| format)
    }

    /// The ending as dataset.json spells it.
    pub fn ending(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(f, _)| *f == self)
            .map_or("", |&(_, e)| e)
    }

    /// The endings autoseg reads, for messages: `.nii.gz, .nii, ...`.
    pub fn endings() -> String {
        Self::ALL.map(|(_, e)| e).join(", ")
    }

    /// Whether this is one of the NIfTI formats.
    fn is_nifti(self) -> bool {
        matches!(self, ImageFormat::Nifti | ImageFormat::NiftiGz)
    }

    /// The format of `path`, or the error naming the endings autoseg reads.
    fn of(path: &Path) -> Result<ImageFormat, ImageError> {
        Self::of_path(path).ok_or_else(|| ImageError::Ending {
            path: path.to_path_buf(),
            supported: Self::endings(),
        })
    }
}

/// Reads an intensity image as `f32`, shape `(1, z, y, x)`, in the format its ending names.
///
/// # Errors
/// [`ImageError`] naming the file and the fault: an unknown ending, anything the codec refuses
/// (I/O, corrupt or truncated data, sizes over the memory ceiling, ...), more than one
/// component per voxel, or other than 2 or 3 dimensions.
pub fn read_image(path: &Path) -> Result<Image, ImageError> {
    let format = ImageFormat::of(path)?;
    if format.is_nifti() {
        return Ok(nifti_io::read_image(path)?);
    }
    itk::image_from_raw(formats::read_image(path)?, path)
}

/// Reads a label map as `u16`, shape `(1, z, y, x)`, in the format its ending names.
///
/// # Errors
/// As [`read_image`], and [`ImageError::BadLabel`] (or the NIfTI reader's `BadLabel`) for a
/// negative, fractional, NaN or too-large value.
pub fn read_label_map(path: &Path) -> Result<LabelMap, ImageError> {
    let format = ImageFormat::of(path)?;
    if format.is_nifti() {
        return Ok(nifti_io::read_label_map(path)?);
    }
    itk::labels_from_raw(formats::read_image(path)?, path)
}

/// Writes `image` as float32 in the format `path`'s ending names, atomically. `level` is the
/// gzip level of `.nii.gz` files; NRRD and MetaImage files are always compressed (gzip,
/// zlib), as SimpleITK writes them for nnU-Net.
///
/// # Errors
/// [`ImageError`] naming the file: an unknown ending, data whose shape is not the geometry's,
/// a failed write (the target, if it existed, is unchanged).
pub fn write_image(path: &Path, image: &Image, level: u32) -> Result<(), ImageError> {
    let format = ImageFormat::of(path)?;
    if format.is_nifti() {
        return Ok(nifti_io::write_image(path, image, level)?);
    }
    Ok(formats::write_image(
        &itk::raw_from_image(image, path)?,
        path,
    )?)
}

/// Writes `labels` as `u8` when its maximum is below 255, else `u16` (nnU-Net's `write_seg`),
/// in the format `path`'s ending names, with its source's geometry, atomically. `level` as in
/// [`write_image`].
///
/// # Errors
/// As [`write_image`].
pub fn write_label_map(path: &Path, labels: &LabelMap, level: u32) -> Result<(), ImageError> {
    let format = ImageFormat::of(path)?;
    if format.is_nifti() {
        return Ok(nifti_io::write_label_map(path, labels, level)?);
    }
    Ok(formats::write_image(
        &itk::raw_from_labels(labels, path)?,
        path,
    )?)
}

#[cfg(test)]
mod tests;
