//! nnU-Net 2.8.1's `NaturalImage2DIO` (PNG, BMP, 2-D TIFF) and `Tiff3DIO` (3-D TIFF stacks with
//! a `.json` spacing sidecar) as native codecs around [`RawImage`].
//!
//! # What the readers return
//! nnU-Net reads with `skimage.io.imread` (Pillow through imageio for `.png`/`.bmp`, tifffile
//! for `.tif`) or `tifffile.imread`, then casts to `float32`. These readers keep the element
//! type the Python library gives (`u8`, `u16`, `f32`, ...: the values are those of nnU-Net's
//! `float32` array, exactly), and map nnU-Net's array to a [`RawImage`], fastest axis first:
//!
//! | reader                | nnU-Net's array, spacing        | [`RawImage`]                                        |
//! |-----------------------|---------------------------------|-----------------------------------------------------|
//! | [`read_natural`]      | `(c, 1, H, W)`, `(999, 1, 1)`   | dims `[W, H, 1]`, spacing `[1, 1, 999]`, `c` components |
//! | [`read_tiff3d`]       | `(1, Z, Y, X)`, sidecar or 1s   | dims `[X, Y, Z]`, spacing the sidecar's reversed, 1 component |
//!
//! Origin is zero and direction the identity (nnU-Net reports neither). The channels of an RGB(A)
//! image are the components of one pixel, in the file's order (R, G, B[, A]): nnU-Net's
//! `transpose((2, 0, 1))` makes them its channel axis in that order.
//!
//! # nnU-Net's behaviour, matched
//! * `NaturalImage2DIO.supported_file_endings` is `.png`, `.bmp`, `.tif` (not `.tiff`);
//!   `Tiff3DIO`'s is `.tif`, `.tiff`. `read_seg` is `read_images` for natural images.
//! * skimage's axis rule: an array of 3+ dimensions whose last axis is not 3 or 4 long but whose
//!   third-last is, has that axis moved last. A TIFF stack of 3 or 4 slices is therefore read by
//!   `NaturalImage2DIO` as an RGB(A) image; a grey+alpha PNG (`H × W × 2`) is refused unless it
//!   is 3 or 4 rows high (then its rows become channels, as in nnU-Net).
//! * `NaturalImage2DIO` accepts 2-D arrays (one channel) and 3-D arrays whose last axis is 3 or
//!   4 long; anything else is refused ([`FormatError::NotAccepted`]).
//! * Pillow's decoding: palette PNG/BMP → RGB (a PNG's `tRNS` ignored: 3 channels), 1-bit grey
//!   PNG → 0/1, 2- and 4-bit grey scaled to 8 bits, 16-bit RGB(A) and grey+alpha PNG → their
//!   high bytes (16-bit grey stays `u16`), 32-bit BMP → RGB (the fourth byte ignored), an 8-bit
//!   BMP whose palette is the grey ramp → grey. Images above Pillow's decompression-bomb limit
//!   (178 956 970 pixels) are refused as Pillow refuses them.
//! * `Tiff3DIO.read_images` needs exactly 3 dimensions (a single RGB page `H × W × 3` counts:
//!   dims `[3, W, H]`). Its sidecar is the image's path with the ending **and five more
//!   characters** (`_0000`) cut, plus `.json` (`case_0000.tif` → `case.json`; cut as nnU-Net
//!   cuts the path string, even when the name has no `_0000`). `read_seg`'s sidecar cuts the
//!   ending only (`case.tif` → `case.json`) and requires positive spacings. The key is
//!   `"spacing"`, three numbers in nnU-Net's axis order `(z, y, x)`. Without a sidecar nnU-Net
//!   prints `WARNING no spacing file found ... Assuming spacing (1, 1, 1).`: these readers log
//!   the same warning and report `sidecar: None`. A sidecar without the key, or with other than
//!   three entries, is an error, as in nnU-Net.
//! * `write_seg`: values as `uint8` when the maximum is below 255, else `uint16` (so a
//!   maximum of exactly 255 is written as 16 bits). `NaturalImage2DIO` writes with
//!   `skimage.io.imsave` (PNG 8/16-bit grey, BMP 8-bit grey (16-bit is refused, as Pillow
//!   refuses it), uncompressed TIFF); `Tiff3DIO` writes a deflate (`zlib`) TIFF stack and the
//!   sidecar `{"spacing": [z, y, x]}` beside it (ending cut), indented as `save_json` does.
//!
//! # Which reader reads a `.tif`
//! nnU-Net's registry (`determine_reader_writer_from_file_ending` with an example file) takes
//! the first class of `LIST_OF_IO_CLASSES` = `NaturalImage2DIO, SimpleITKIO, Tiff3DIO,
//! NibabelIO, NibabelIOWithReorient` whose `supported_file_endings` holds the ending and whose
//! `read_images` reads the example file. For `.png`/`.bmp` that is `NaturalImage2DIO`; for
//! `.tiff` `Tiff3DIO`; for `.tif` `NaturalImage2DIO` when [`read_natural`] reads the example
//! (2-D pages, RGB pages, and stacks of 3 or 4 slices), else `Tiff3DIO` when [`read_tiff3d`]
//! does (`SimpleITKIO` does not list `.tif`). [`reader_for`] applies the rule.
//!
//! # Deviations
//! * Spacings must be positive and finite for [`RawImage`]: a sidecar with zero or negative
//!   spacing is refused by [`read_tiff3d`] too (nnU-Net's `read_images` would take it).
//! * Writers refuse negative, fractional or non-finite labels and labels above 65 535 (nnU-Net
//!   would wrap them in `astype`).
//! * Not read (refused by name): BMP other than 8-bit palette, 24- and 32-bit uncompressed (no
//!   RLE, bit fields, 1/4/16-bit, no two-colour 8-bit "1" mode); TIFF samples other than
//!   8/16/32/64 bits (bilevel, 16-bit float), pages of different shapes or types in one file.
//!   Every PNG colour type and bit depth is read (interlaced too; APNG as its default image).
//! * A TIFF's pixel data may not expand past 4096:1 of the file's size, a PNG's past deflate's
//!   1032:1, so that a small file cannot make the decoders allocate much.
//!
//! **Sizes** are checked before any allocation: width × height × channels × bytes in checked
//! arithmetic against [`crate::limits`], and the decoders' own limits set to the same bound.
//! Writes are atomic.

mod bmp;
mod png_codec;
mod tif;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use super::geometry::identity;
use super::payload::reserve;
use super::{ElementType, FormatError, RawImage};

/// The file endings `NaturalImage2DIO` lists (lower case, with the dot).
pub const NATURAL_ENDINGS: &[&str] = &[".png", ".bmp", ".tif"];
/// The file endings `Tiff3DIO` lists (lower case, with the dot).
pub const TIFF3D_ENDINGS: &[&str] = &[".tif", ".tiff"];
/// The spacing `NaturalImage2DIO` reports, in nnU-Net's order `(z, y, x)`.
pub const NATURAL_SPACING: [f64; 3] = [999.0, 1.0, 1.0];
/// Pillow's decompression-bomb limit (`2 * Image.MAX_IMAGE_PIXELS`): larger PNG and BMP
/// images are refused.
pub const PILLOW_MAX_PIXELS: u64 = 2 * 89_478_485;

/// Which of nnU-Net's two readers reads a file (see the module docs for the rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NaturalReader {
    /// `NaturalImage2DIO`: [`read_natural`] / [`write_natural_seg`].
    NaturalImage2D,
    /// `Tiff3DIO`: [`read_tiff3d`] / [`read_tiff3d_seg`] / [`write_tiff3d_seg`].
    Tiff3D,
}

/// A 3-D TIFF as `Tiff3DIO` reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Tiff3d {
    /// The stack: dims `[X, Y, Z]`, spacing the sidecar's `(z, y, x)` reversed (or 1s).
    pub image: RawImage,
    /// The sidecar the spacing came from; `None` when there was none and the spacing is
    /// `(1, 1, 1)` (nnU-Net prints a warning; a `tracing` warning is logged).
    pub sidecar: Option<PathBuf>,
}

/// A decoded array in C order (slowest axis first), as numpy holds what skimage/tifffile give.
#[derive(Debug)]
pub(crate) struct Array {
    pub shape: Vec<usize>,
    pub element: ElementType,
    /// Little-endian elements, C order.
    pub data: Vec<u8>,
}

/// The lower-case ending nnU-Net sees: `'.' + name.split('.')[-1]`.
fn ending_of(path: &Path) -> String {
    let text = path.to_string_lossy();
    let last = text.rsplit('.').next().unwrap_or("");
    format!(".{}", last.to_ascii_lowercase())
}

/// Reads an image as `NaturalImage2DIO.read_images` (and `read_seg`) does.
///
/// # Errors
/// [`FormatError::Extension`] for an ending other than `.png`, `.bmp`, `.tif`;
/// [`FormatError::Io`], [`FormatError::Decode`], [`FormatError::Unsupported`],
/// [`FormatError::OverCeiling`] from decoding; [`FormatError::NotAccepted`] for an array
/// nnU-Net refuses (grey+alpha, more than 3 dimensions, ...).
pub fn read_natural(path: &Path) -> Result<RawImage, FormatError> {
    let ending = ending_of(path);
    let array = match ending.as_str() {
        ".png" => png_codec::decode(path)?,
        ".bmp" => bmp::decode(path)?,
        ".tif" => tif::decode(path)?,
        _ => {
            return Err(FormatError::Extension {
                path: path.to_path_buf(),
                expected: ".png, .bmp or .tif",
            })
        }
    };
    natural_from_array(array, path)
}

/// Reads a `.tif` file as nnU-Net's registry reads one: as [`read_natural`] when
/// `NaturalImage2DIO` accepts its array, else as [`read_tiff3d`] (`seg`: [`read_tiff3d_seg`]).
/// The file is decoded once (trying one reader after the other would decode a stack twice).
///
/// # Errors
/// As [`read_tiff3d`].
pub fn read_tif(path: &Path, seg: bool) -> Result<RawImage, FormatError> {
    let array = tif::decode(path)?;
    if natural_accepts(&skimage_shape(&array.shape)) {
        return natural_from_array(array, path);
    }
    let extra_cut = if seg { 0 } else { 5 };
    Ok(tiff3d_from_array(array, path, extra_cut, seg)?.image)
}

/// Whether `NaturalImage2DIO` accepts an array of `shape` (after skimage's axis rule): 2-D, or
/// 3-D with 3 or 4 channels last.
fn natural_accepts(shape: &[usize]) -> bool {
    matches!(shape, [_, _] | [_, _, 3 | 4])
}

/// `NaturalImage2DIO`'s image of a decoded array (skimage's axis rule applied first).
fn natural_from_array(array: Array, path: &Path) -> Result<RawImage, FormatError> {
    let array = skimage_axes(array, path)?;
    let refuse = |reason: String| FormatError::NotAccepted {
        path: path.to_path_buf(),
        reader: "NaturalImage2DIO",
        reason,
    };
    let (h, w, c) = match array.shape[..] {
        [h, w] => (h, w, 1),
        [h, w, c] if c == 3 || c == 4 => (h, w, c),
        [..] if array.shape.len() == 3 => {
            return Err(refuse(format!(
                "an image of three dimensions must have 3 or 4 channels last (RGB or RGBA); its shape is {:?}",
                array.shape
            )))
        }
        _ => {
            return Err(refuse(format!(
                "only 2-D images are read; the array's shape is {:?}",
                array.shape
            )))
        }
    };
    let spacing: Vec<f64> = NATURAL_SPACING.iter().rev().copied().collect();
    RawImage::new(
        vec![w, h, 1],
        spacing,
        vec![0.0; 3],
        identity(3),
        c,
        array.element,
        array.data,
    )
    .map_err(|source| FormatError::BadGeometry {
        path: path.to_path_buf(),
        source,
    })
}

/// skimage's `imread` rule: an array of 3+ dimensions whose last axis is not 3 or 4 long but
/// whose third-last is has that axis moved last (`swapaxes(-1, -3)`, `swapaxes(-2, -3)`).
fn skimage_axes(array: Array, path: &Path) -> Result<Array, FormatError> {
    let n = array.shape.len();
    if skimage_shape(&array.shape) == array.shape {
        return Ok(array);
    }
    // (..., a, b, c) -> (..., b, c, a)
    let (a, b, c) = (array.shape[n - 3], array.shape[n - 2], array.shape[n - 1]);
    let outer: usize = array.shape[..n - 3].iter().product();
    let size = array.element.size();
    let mut data = reserve(array.data.len() as u128, path)?;
    data.resize(array.data.len(), 0);
    let block = a * b * c;
    for o in 0..outer {
        for i in 0..a {
            for j in 0..b {
                for k in 0..c {
                    let src = (o * block + (i * b + j) * c + k) * size;
                    let dst = (o * block + (j * c + k) * a + i) * size;
                    data[dst..dst + size].copy_from_slice(&array.data[src..src + size]);
                }
            }
        }
    }
    Ok(Array {
        shape: skimage_shape(&array.shape),
        element: array.element,
        data,
    })
}

/// The shape [`skimage_axes`] gives an array of `shape`: `(..., a, b, c)` becomes
/// `(..., b, c, a)` when `c` is not 3 or 4 long and `a` is.
fn skimage_shape(shape: &[usize]) -> Vec<usize> {
    let mut shape = shape.to_vec();
    let n = shape.len();
    if n >= 3 && ![3, 4].contains(&shape[n - 1]) && [3, 4].contains(&shape[n - 3]) {
        shape[n - 3..].rotate_left(1);
    }
    shape
}

/// Writes a segmentation as `NaturalImage2DIO.write_seg` does: `u8` when its maximum is below
/// 255, else `u16`; `.png` (8/16-bit grey), `.bmp` (8-bit only, as Pillow), `.tif`
/// (uncompressed).
///
/// `seg` is one channel with dims `[W, H]` or `[W, H, 1]`, any element type holding integral
/// values in `0..=65535`.
///
/// # Errors
/// [`FormatError::Extension`] for another ending; [`FormatError::InvalidImage`] for a
/// segmentation of another shape or with labels that cannot be written;
/// [`FormatError::Unsupported`] for a 16-bit BMP; [`FormatError::Write`] when writing fails.
pub fn write_natural_seg(seg: &RawImage, path: &Path) -> Result<(), FormatError> {
    let ending = ending_of(path);
    if !NATURAL_ENDINGS.contains(&ending.as_str()) {
        return Err(FormatError::Extension {
            path: path.to_path_buf(),
            expected: ".png, .bmp or .tif",
        });
    }
    let (w, h) = match seg.dims[..] {
        [w, h] | [w, h, 1] if seg.components == 1 => (w, h),
        _ => {
            return Err(invalid(
                path,
                format!(
                    "a natural-image segmentation has dims [W, H] or [W, H, 1] and one component; this one has dims {:?} and {} components",
                    seg.dims, seg.components
                ),
            ))
        }
    };
    let labels = Labels::of(seg, path)?;
    let bytes = match ending.as_str() {
        ".png" => png_codec::encode_grey(path, w, h, &labels)?,
        ".bmp" => bmp::encode_grey(path, w, h, &labels)?,
        _ => tif::encode(path, &[h, w], &labels, false)?,
    };
    write_bytes(path, &bytes)
}

/// Reads a 3-D TIFF as `Tiff3DIO.read_images` does (sidecar: the path with its ending and five
/// more characters cut, plus `.json`).
///
/// # Errors
/// [`FormatError::Extension`] for an ending other than `.tif`/`.tiff`; decoding errors as
/// [`read_natural`]; [`FormatError::NotAccepted`] when the array is not 3-D;
/// [`FormatError::Sidecar`] for a sidecar that cannot be read or lacks three spacings.
pub fn read_tiff3d(path: &Path) -> Result<Tiff3d, FormatError> {
    read_tiff3d_as(path, 5, false)
}

/// Reads a 3-D TIFF segmentation as `Tiff3DIO.read_seg` does (sidecar: the path with its ending
/// cut, plus `.json`; spacings must be positive).
///
/// # Errors
/// As [`read_tiff3d`].
pub fn read_tiff3d_seg(path: &Path) -> Result<Tiff3d, FormatError> {
    read_tiff3d_as(path, 0, true)
}

fn read_tiff3d_as(path: &Path, extra_cut: usize, seg: bool) -> Result<Tiff3d, FormatError> {
    let ending = ending_of(path);
    if !TIFF3D_ENDINGS.contains(&ending.as_str()) {
        return Err(FormatError::Extension {
            path: path.to_path_buf(),
            expected: ".tif or .tiff",
        });
    }
    tiff3d_from_array(tif::decode(path)?, path, extra_cut, seg)
}

/// `Tiff3DIO`'s image of a decoded array, its spacing from the sidecar named by `extra_cut`.
fn tiff3d_from_array(
    array: Array,
    path: &Path,
    extra_cut: usize,
    seg: bool,
) -> Result<Tiff3d, FormatError> {
    let ending = ending_of(path);
    let [z, y, x] = array.shape[..] else {
        return Err(FormatError::NotAccepted {
            path: path.to_path_buf(),
            reader: "Tiff3DIO",
            reason: format!(
                "only 3D images are supported; the array's shape is {:?}",
                array.shape
            ),
        });
    };
    let sidecar = sidecar_path(path, ending.chars().count() + extra_cut)?;
    let (spacing, found) = if sidecar.is_file() {
        (read_sidecar(path, &sidecar, seg)?, Some(sidecar))
    } else {
        let what = if seg { "segmentation" } else { "images" };
        tracing::warn!(
            "WARNING no spacing file found for {what} {}\nAssuming spacing (1, 1, 1).",
            path.display()
        );
        ([1.0; 3], None)
    };
    let image = RawImage::new(
        vec![x, y, z],
        spacing.iter().rev().copied().collect(),
        vec![0.0; 3],
        identity(3),
        1,
        array.element,
        array.data,
    )
    .map_err(|source| FormatError::BadGeometry {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(Tiff3d {
        image,
        sidecar: found,
    })
}

/// nnU-Net's sidecar name: the path string with its last `cut` characters replaced by `.json`.
fn sidecar_path(path: &Path, cut: usize) -> Result<PathBuf, FormatError> {
    let Some(text) = path.to_str() else {
        return Err(FormatError::Unsupported {
            path: path.to_path_buf(),
            what: "a path that is not UTF-8 (the spacing sidecar is named by cutting characters)"
                .into(),
        });
    };
    let keep = text.chars().count().saturating_sub(cut);
    let stem: String = text.chars().take(keep).collect();
    Ok(PathBuf::from(format!("{stem}.json")))
}

/// The `"spacing"` of a sidecar, in nnU-Net's order `(z, y, x)`.
fn read_sidecar(image: &Path, sidecar: &Path, positive: bool) -> Result<[f64; 3], FormatError> {
    let fault = |reason: String| FormatError::Sidecar {
        path: image.to_path_buf(),
        sidecar: sidecar.to_path_buf(),
        reason,
    };
    let meta = std::fs::metadata(sidecar).map_err(|source| FormatError::Io {
        path: sidecar.to_path_buf(),
        source,
    })?;
    if meta.len() > 1 << 20 {
        return Err(fault(format!(
            "{} bytes, more than a spacing file holds",
            meta.len()
        )));
    }
    let text = std::fs::read(sidecar).map_err(|source| FormatError::Io {
        path: sidecar.to_path_buf(),
        source,
    })?;
    let value: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| fault(format!("not JSON: {e}")))?;
    let Some(spacing) = value.get("spacing") else {
        return Err(fault("no key \"spacing\"".into()));
    };
    let list = spacing
        .as_array()
        .ok_or_else(|| fault(format!("\"spacing\" is {spacing}, not a list")))?;
    if list.len() != 3 {
        return Err(fault(format!(
            "spacing must have 3 entries, one for each dimension of the image; it has {}",
            list.len()
        )));
    }
    let mut out = [0.0; 3];
    for (o, v) in out.iter_mut().zip(list) {
        *o = v
            .as_f64()
            .ok_or_else(|| fault(format!("spacing entry {v} is not a number")))?;
    }
    if positive && out.iter().any(|&s| s <= 0.0) {
        return Err(fault(format!("Spacing must be > 0, spacing: {out:?}")));
    }
    Ok(out)
}

/// Writes a segmentation as `Tiff3DIO.write_seg` does: a deflate-compressed TIFF stack (`u8`
/// when the maximum is below 255, else `u16`) and the sidecar `{"spacing": [z, y, x]}` named
/// as the image with its ending cut (`case.tif` → `case.json`).
///
/// `seg` is one channel with dims `[X, Y, Z]` and integral labels in `0..=65535`; its spacing
/// goes to the sidecar in nnU-Net's order (reversed).
///
/// # Errors
/// [`FormatError::Extension`] for an ending other than `.tif`/`.tiff`;
/// [`FormatError::InvalidImage`] for another shape or labels that cannot be written;
/// [`FormatError::Write`] when writing fails (the sidecar is written after the image).
pub fn write_tiff3d_seg(seg: &RawImage, path: &Path) -> Result<(), FormatError> {
    let ending = ending_of(path);
    if !TIFF3D_ENDINGS.contains(&ending.as_str()) {
        return Err(FormatError::Extension {
            path: path.to_path_buf(),
            expected: ".tif or .tiff",
        });
    }
    let [x, y, z] = seg.dims[..] else {
        return Err(invalid(
            path,
            format!(
                "a 3-D segmentation has dims [X, Y, Z]; this one has {:?}",
                seg.dims
            ),
        ));
    };
    if seg.components != 1 {
        return Err(invalid(
            path,
            format!(
                "a segmentation has one component, this one {}",
                seg.components
            ),
        ));
    }
    let labels = Labels::of(seg, path)?;
    let bytes = tif::encode(path, &[z, y, x], &labels, true)?;
    write_bytes(path, &bytes)?;
    let sidecar = sidecar_path(path, ending.chars().count())?;
    let spacing: Vec<String> = seg.spacing.iter().rev().map(|&s| py_float(s)).collect();
    let json = format!(
        "{{\n    \"spacing\": [\n        {}\n    ]\n}}",
        spacing.join(",\n        ")
    );
    write_bytes(&sidecar, json.as_bytes())
}

/// A float as Python's `repr` writes it (`1.0`, `0.5`, `1e-05`, `1e+16`).
fn py_float(v: f64) -> String {
    let a = v.abs();
    if a != 0.0 && !(1e-4..1e16).contains(&a) {
        let text = format!("{v:e}");
        let (mantissa, exp) = text.split_once('e').unwrap_or((&text, "0"));
        let exp: i32 = exp.parse().unwrap_or(0);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    } else if v.fract() == 0.0 {
        format!("{v:.1}")
    } else {
        format!("{v}")
    }
}

/// Labels checked for writing, as the type nnU-Net picks.
pub(crate) enum Labels {
    /// Maximum below 255.
    U8(Vec<u8>),
    /// Maximum 255 or more.
    U16(Vec<u16>),
}

impl Labels {
    fn of(seg: &RawImage, path: &Path) -> Result<Labels, FormatError> {
        let size = seg.element.size();
        let mut max = 0u16;
        let mut values = Vec::new();
        values
            .try_reserve_exact(seg.data.len() / size)
            .map_err(|_| FormatError::OutOfMemory {
                path: path.to_path_buf(),
                bytes: seg.data.len() as u128,
            })?;
        for (i, chunk) in seg.data.chunks_exact(size).enumerate() {
            let v = seg.element.value_f64(chunk);
            if !(v.is_finite() && v.fract() == 0.0 && (0.0..=65535.0).contains(&v)) {
                return Err(invalid(
                    path,
                    format!("label {v} at index {i} is not an integer in 0..=65535"),
                ));
            }
            let v = v as u16;
            max = max.max(v);
            values.push(v);
        }
        Ok(if max < 255 {
            Labels::U8(values.into_iter().map(|v| v as u8).collect())
        } else {
            Labels::U16(values)
        })
    }
}

fn invalid(path: &Path, reason: String) -> FormatError {
    FormatError::InvalidImage {
        path: path.to_path_buf(),
        source: super::InvalidImage::new(reason),
    }
}

fn write_bytes(path: &Path, bytes: &[u8]) -> Result<(), FormatError> {
    super::encode::write_parts(path, &[super::encode::Part::Bytes(bytes)])
}

/// Which reader nnU-Net's registry picks for `path` as its example file: the first of
/// `NaturalImage2DIO`, `Tiff3DIO` that lists the ending and reads the file.
///
/// # Errors
/// The last reader's error when neither reads it, or [`FormatError::Extension`] when neither
/// lists the ending.
pub fn reader_for(path: &Path) -> Result<NaturalReader, FormatError> {
    let ending = ending_of(path);
    let mut last = None;
    if NATURAL_ENDINGS.contains(&ending.as_str()) {
        match read_natural(path) {
            Ok(_) => return Ok(NaturalReader::NaturalImage2D),
            Err(e) => last = Some(e),
        }
    }
    if TIFF3D_ENDINGS.contains(&ending.as_str()) {
        match read_tiff3d(path) {
            Ok(_) => return Ok(NaturalReader::Tiff3D),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| FormatError::Extension {
        path: path.to_path_buf(),
        expected: ".png, .bmp, .tif or .tiff",
    }))
}

/// Checks `sizes × element_bytes` against the memory ceiling and `isize::MAX`; the byte count.
pub(crate) fn checked_size(
    path: &Path,
    shape: &[usize],
    element_bytes: usize,
) -> Result<usize, FormatError> {
    let bytes = super::geometry::checked_bytes(shape, element_bytes).ok_or_else(|| {
        FormatError::TooManyVoxels {
            path: path.to_path_buf(),
            sizes: shape.to_vec(),
            element_bytes,
        }
    })?;
    crate::limits::check_volume_bytes(bytes as u128).map_err(|memory| {
        FormatError::OverCeiling {
            path: path.to_path_buf(),
            dims: shape.to_vec(),
            components: 1,
            memory,
        }
    })?;
    Ok(bytes)
}

/// Opens `path` and reads its length (the decoders bound what a file may expand to by it).
pub(crate) fn open_with_len(path: &Path) -> Result<(std::fs::File, u64), FormatError> {
    let io = |source| FormatError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    Ok((file, len))
}

/// A zeroed buffer of `n` bytes, reserved fallibly.
pub(crate) fn zeroed(n: usize, path: &Path) -> Result<Vec<u8>, FormatError> {
    let mut v = reserve(n as u128, path)?;
    v.resize(n, 0);
    Ok(v)
}

/// A decoder's error as [`FormatError::Decode`].
pub(crate) fn decode_error(
    path: &Path,
    format: &'static str,
    reason: impl ToString,
) -> FormatError {
    FormatError::Decode {
        path: path.to_path_buf(),
        format,
        reason: reason.to_string(),
    }
}
