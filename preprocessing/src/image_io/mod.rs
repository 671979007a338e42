//! The one image I/O interface: every command reads and writes images through here, and the
//! format is chosen by the file's ending as nnU-Net's reader registry chooses its reader by
//! dataset.json's `file_ending`.
//!
//! | ending              | codec                                   | geometry kept for writing |
//! |---------------------|-----------------------------------------|---------------------------|
//! | `.nii.gz`, `.nii`   | [`crate::nifti_io`] (NIfTI-1 and -2)    | the NIfTI header fields   |
//! | `.nrrd`, `.nhdr`    | [`crate::formats`] NRRD                 | ITK spacing/origin/direction |
//! | `.mha`, `.mhd`      | [`crate::formats`] MetaImage            | ITK spacing/origin/direction |
//! | `.gipl`             | [`crate::formats`] GIPL                 | ITK spacing/origin (direction: identity or axis flips) |
//! | `.png`, `.bmp`      | nnU-Net's `NaturalImage2DIO`            | none (spacing 999, 1, 1)  |
//! | `.tif`              | `NaturalImage2DIO`, else `Tiff3DIO`     | `Tiff3DIO`: the `.json` sidecar's spacing |
//! | `.tiff`             | nnU-Net's `Tiff3DIO`                    | the `.json` sidecar's spacing |
//!
//! A **folder** holding one DICOM series is read as one image ([`crate::formats`]'
//! `read_dicom_series`: slices sorted along their normal, spacing from the positions, rescale
//! applied, as SimpleITK's series reader gives it) with its ITK geometry, so a mask predicted
//! from it is written with the series' spacing, origin and direction in the model's format.
//! In a dataset, a series folder named `{CASE}_{XXXX}` is a case's channel
//! ([`crate::dataset`]'s discovery).
//!
//! Natural images and TIFF follow [`crate::formats::natural`] (nnU-Net's readers, quirks
//! included). A `.tif` file is read by the first of nnU-Net's two readers that reads it, as
//! its registry picks a reader. An RGB(A) image gives one channel per colour, as in nnU-Net:
//! dataset.json's `channel_names` then lists three (or four) channels for its one `_0000`
//! file. A mask is written to `.png`/`.bmp` as `NaturalImage2DIO.write_seg` writes it, to
//! `.tiff` as `Tiff3DIO.write_seg` (with its sidecar), and to `.tif` as the former when its
//! source was a natural image (one slice with nnU-Net's z spacing of 999), else as the latter.
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
//! with a separate data file) are autoseg's additions. A GIPL file holds no direction: it reads
//! as SimpleITK reads it (the identity, an axis reversed where its spacing is negative), and a
//! mask is written with its source's spacing and origin (a rotation, which GIPL cannot hold,
//! is dropped as SimpleITK's writer drops it). Multi-component
//! (vector, RGB) NRRD or MetaImage files and 4-D files are refused by name: store each channel
//! as its own file, as for NIfTI.

mod error;
mod itk;
mod stack;

use std::path::Path;

pub use error::ImageError;
pub use stack::{read_stacked, StackError};

use crate::volume::{Image, LabelMap};
use crate::{formats, nifti_io};

/// The file formats autoseg reads and writes, named by their file endings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    /// `.png`: a natural 2-D image (`NaturalImage2DIO`).
    Png,
    /// `.bmp`: a natural 2-D image (`NaturalImage2DIO`).
    Bmp,
    /// `.tif`: a natural 2-D image, else a 3-D stack (`NaturalImage2DIO`, else `Tiff3DIO`).
    Tif,
    /// `.tiff`: a 3-D stack with a spacing sidecar (`Tiff3DIO`).
    Tiff,
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
    /// `.gipl`: GIPL (big-endian, 256-byte header), as ITK's `GiplImageIO` reads and writes it.
    Gipl,
}

impl ImageFormat {
    /// Every format with its ending, in the order `evaluate` tries them on a folder of masks.
    pub const ALL: [(ImageFormat, &'static str); 11] = [
        (ImageFormat::NiftiGz, ".nii.gz"),
        (ImageFormat::Nifti, ".nii"),
        (ImageFormat::Nrrd, ".nrrd"),
        (ImageFormat::Nhdr, ".nhdr"),
        (ImageFormat::Mha, ".mha"),
        (ImageFormat::Mhd, ".mhd"),
        (ImageFormat::Gipl, ".gipl"),
        (ImageFormat::Png, ".png"),
        (ImageFormat::Bmp, ".bmp"),
        (ImageFormat::Tif, ".tif"),
        (ImageFormat::Tiff, ".tiff"),
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

    /// Whether [`write_image`] writes float images in this format (natural-image formats hold
    /// integer segmentations only).
    pub fn writes_images(self) -> bool {
        self.family() != Family::Natural
    }

    /// Whether a file of this format may hold several channels (natural images: RGB, RGBA).
    pub fn may_hold_several_channels(self) -> bool {
        matches!(self, ImageFormat::Png | ImageFormat::Bmp | ImageFormat::Tif)
    }

    /// The codec family that reads this format.
    fn family(self) -> Family {
        match self {
            ImageFormat::Nifti | ImageFormat::NiftiGz => Family::Nifti,
            ImageFormat::Nrrd
            | ImageFormat::Nhdr
            | ImageFormat::Mha
            | ImageFormat::Mhd
            | ImageFormat::Gipl => Family::Itk,
            ImageFormat::Png | ImageFormat::Bmp | ImageFormat::Tif | ImageFormat::Tiff => {
                Family::Natural
            }
        }
    }

    /// The format of `path`, or the error naming the endings autoseg reads.
    fn of(path: &Path) -> Result<ImageFormat, ImageError> {
        Self::of_path(path).ok_or_else(|| ImageError::Ending {
            path: path.to_path_buf(),
            supported: Self::endings(),
        })
    }
}

/// Whether `dir` is a folder holding DICOM files (one with `DICM` at byte 128, as every DICOM
/// Part 10 file has; the first 64 entries are looked at).
pub fn is_dicom_folder(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().take(64).any(|entry| {
        let mut magic = [0u8; 132];
        let path = entry.path();
        path.is_file()
            && std::fs::File::open(&path)
                .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
                .is_ok()
            && &magic[128..] == b"DICM"
    })
}

/// The three codec families behind the formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    /// [`crate::nifti_io`].
    Nifti,
    /// [`crate::formats`]' NRRD, MetaImage and GIPL codecs (SimpleITK's conventions).
    Itk,
    /// [`crate::formats::natural`] (nnU-Net's `NaturalImage2DIO` and `Tiff3DIO`).
    Natural,
}

/// Reads an intensity image as `f32`, shape `(c, z, y, x)`, in the format its ending names (or,
/// for a folder, its DICOM series): one channel, except for RGB(A) natural images (one channel
/// per colour).
///
/// # Errors
/// [`ImageError`] naming the file and the fault: an unknown ending, anything the codec refuses
/// (I/O, corrupt or truncated data, sizes over the memory ceiling, ...), more than one
/// component per voxel (NRRD, MetaImage), or other than 2 or 3 dimensions.
pub fn read_image(path: &Path) -> Result<Image, ImageError> {
    if path.is_dir() {
        return itk::image_from_raw(formats::read_dicom_series(path)?.image, path, false);
    }
    match ImageFormat::of(path)?.family() {
        Family::Nifti => Ok(nifti_io::read_image(path)?),
        Family::Itk => itk::image_from_raw(formats::read_image(path)?, path, false),
        Family::Natural => itk::image_from_raw(read_natural_image(path)?, path, true),
    }
}

/// Reads a label map as `u16`, shape `(1, z, y, x)`, in the format its ending names.
///
/// # Errors
/// As [`read_image`], and [`ImageError::BadLabel`] (or the NIfTI reader's `BadLabel`) for a
/// negative, fractional, NaN or too-large value.
pub fn read_label_map(path: &Path) -> Result<LabelMap, ImageError> {
    match ImageFormat::of(path)?.family() {
        Family::Nifti => Ok(nifti_io::read_label_map(path)?),
        Family::Itk => itk::labels_from_raw(formats::read_image(path)?, path),
        Family::Natural => itk::labels_from_raw(read_natural_seg(path)?, path),
    }
}

/// An image as nnU-Net's registry reads it: `NaturalImage2DIO` for `.png`, `.bmp` and the
/// `.tif` files it reads, `Tiff3DIO.read_images` for the other `.tif` and all `.tiff` files.
fn read_natural_image(path: &Path) -> Result<formats::RawImage, ImageError> {
    match ImageFormat::of(path)? {
        ImageFormat::Tiff => Ok(formats::read_tiff3d(path)?.image),
        ImageFormat::Tif => Ok(formats::read_tif(path, false)?),
        _ => Ok(formats::read_natural(path)?),
    }
}

/// A segmentation as nnU-Net's registry reads it: as [`read_natural_image`], with
/// `Tiff3DIO.read_seg`'s sidecar rule for stacks (`case.tif` → `case.json`).
fn read_natural_seg(path: &Path) -> Result<formats::RawImage, ImageError> {
    match ImageFormat::of(path)? {
        ImageFormat::Tiff => Ok(formats::read_tiff3d_seg(path)?.image),
        ImageFormat::Tif => Ok(formats::read_tif(path, true)?),
        _ => Ok(formats::read_natural(path)?),
    }
}

/// Writes `image` as float32 in the format `path`'s ending names, atomically. `level` is the
/// gzip level of `.nii.gz` files; NRRD and MetaImage files are always compressed (gzip,
/// zlib), as SimpleITK writes them for nnU-Net; GIPL files are not (the format has no
/// compression).
///
/// # Errors
/// [`ImageError`] naming the file: an unknown ending, data whose shape is not the geometry's,
/// a failed write (the target, if it existed, is unchanged).
pub fn write_image(path: &Path, image: &Image, level: u32) -> Result<(), ImageError> {
    match ImageFormat::of(path)?.family() {
        Family::Nifti => Ok(nifti_io::write_image(path, image, level)?),
        Family::Itk => {
            let raw = itk::raw_from_image(image, path)?;
            Ok(formats::write_image(&raw, path)?)
        }
        Family::Natural => Err(ImageError::SegmentationOnly {
            path: path.to_path_buf(),
        }),
    }
}

/// Writes `labels` as `u8` when its maximum is below 255, else `u16` (nnU-Net's `write_seg`),
/// in the format `path`'s ending names, with its source's geometry, atomically. `level` as in
/// [`write_image`].
///
/// # Errors
/// As [`write_image`].
pub fn write_label_map(path: &Path, labels: &LabelMap, level: u32) -> Result<(), ImageError> {
    let format = ImageFormat::of(path)?;
    if format.family() == Family::Nifti {
        return Ok(nifti_io::write_label_map(path, labels, level)?);
    }
    let raw = itk::raw_from_labels(labels, path)?;
    match format {
        ImageFormat::Png | ImageFormat::Bmp => Ok(formats::write_natural_seg(&raw, path)?),
        ImageFormat::Tif if is_natural(labels) => Ok(formats::write_natural_seg(&raw, path)?),
        ImageFormat::Tif | ImageFormat::Tiff => Ok(formats::write_tiff3d_seg(&raw, path)?),
        _ => Ok(formats::write_image(&raw, path)?),
    }
}

/// Writes `labels`, a mask predicted from the DICOM series in `series_folder` (on its grid),
/// as a binary DICOM Segmentation object referring to that series: one segment per entry of
/// `segments` (label value, name), as [`crate::formats`]' `write_dicom_seg` writes it.
///
/// # Errors
/// [`ImageError`] naming the folder or file: the series cannot be read again, the mask is not
/// on its grid, holds a label `segments` does not list, or the file cannot be written.
pub fn write_dicom_seg(
    path: &Path,
    labels: &LabelMap,
    series_folder: &Path,
    segments: &[(u16, String)],
) -> Result<(), ImageError> {
    let series = formats::read_dicom_series(series_folder)?;
    let raw = itk::raw_from_labels(labels, path)?;
    Ok(formats::write_dicom_seg(path, &raw, &series, segments)?)
}

/// Whether a volume's grid is a natural image's: one slice with nnU-Net's z spacing of 999
/// ([`formats::NATURAL_SPACING`]).
fn is_natural<T>(volume: &crate::volume::Volume<T>) -> bool {
    let geometry = &volume.geometry;
    geometry.shape().0[0] == 1 && geometry.spacing().0[0] == formats::NATURAL_SPACING[0]
}

#[cfg(test)]
mod tests;
