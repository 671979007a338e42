//! What a file held besides its voxels ([`Source`]: header text, skipped and trailing bytes,
//! the encoded payload), kept so that an image written back to the same kind of file
//! reproduces it byte for byte, and the write-back itself.

use std::hash::Hasher;
use std::path::{Component, Path};

use super::encode::{write_parts, EncodeSpec, Part};
use super::error::FormatError;
use super::payload::{resolve_data_file, Encoding};
use super::{ElementType, Kind, RawImage};

/// The bytes of a data region other than the decoded voxels, kept for a write-back.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Stored {
    /// Bytes between the end of the header (or the start of a data file) and the payload.
    pub lead: Vec<u8>,
    /// The payload as the file holds it, for encodings that do not re-encode identically
    /// (compressed, text); `None` for raw.
    pub encoded: Option<Vec<u8>>,
    /// Bytes after the payload.
    pub trail: Vec<u8>,
}

/// The geometry and type an image had when it was read.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Snapshot {
    pub dims: Vec<usize>,
    pub spacing: Vec<f64>,
    pub origin: Vec<f64>,
    pub direction: Vec<f64>,
    pub components: usize,
    pub element: ElementType,
}

impl Snapshot {
    pub(crate) fn of(image: &RawImage) -> Snapshot {
        Snapshot {
            dims: image.dims.clone(),
            spacing: image.spacing.clone(),
            origin: image.origin.clone(),
            direction: image.direction.clone(),
            components: image.components,
            element: image.element,
        }
    }

    /// Whether `image` still has this geometry and type (floats compared bit for bit).
    fn matches(&self, image: &RawImage) -> bool {
        let same = |a: &[f64], b: &[f64]| {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
        };
        self.dims == image.dims
            && self.components == image.components
            && self.element == image.element
            && same(&self.spacing, &image.spacing)
            && same(&self.origin, &image.origin)
            && same(&self.direction, &image.direction)
    }
}

/// The file an image was read from, as needed to write it back bit for bit.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Source {
    pub kind: Kind,
    /// The header bytes: the whole header file when detached, else everything before the data
    /// region (header and its terminating line).
    pub header: Vec<u8>,
    /// The data file as the header names it (detached headers only).
    pub data_file: Option<String>,
    pub stored: Stored,
    pub encoding: Encoding,
    pub big_endian: bool,
    /// Sizes of every file axis, components included, in file order.
    pub file_sizes: Vec<usize>,
    /// Index of the component axis among `file_sizes` (0 when scalar or already first).
    pub component_axis: usize,
    pub snapshot: Snapshot,
    /// Digest of the decoded data, when `stored.encoded` must be matched to the data.
    pub digest: Option<u64>,
    /// Whether the header stays valid for re-encoded data (false when it records the
    /// compressed size or skips inside the compressed stream).
    pub reencode_ok: bool,
}

/// Whether a data file name stays inside the header's folder (relative, no `..`): only such a
/// name is reused when a header is written back elsewhere.
pub(crate) fn is_local_name(name: &str) -> bool {
    let path = Path::new(name);
    !name.is_empty()
        && path
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

/// Digest of decoded data, to tell whether it changed since it was read.
pub(crate) fn digest(data: &[u8]) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    hasher.write(data);
    hasher.finish()
}

/// Moves the component axis from position `k` of the file's axes (sizes `inner` before it,
/// `outer` after it) to the front, or back when `to_file`. `size` is bytes per component.
pub(crate) fn move_component_axis(
    data: &[u8],
    size: usize,
    (inner, components, outer): (usize, usize, usize),
    to_file: bool,
) -> Vec<u8> {
    let mut out = vec![0u8; data.len()];
    for o in 0..outer {
        for c in 0..components {
            for i in 0..inner {
                let file = ((o * components + c) * inner + i) * size;
                let image = ((o * inner + i) * components + c) * size;
                let (src, dst) = if to_file {
                    (image, file)
                } else {
                    (file, image)
                };
                out[dst..dst + size].copy_from_slice(&data[src..src + size]);
            }
        }
    }
    out
}

/// Whether `image` can be written through its source to `target` (same format, same kind of
/// file, same geometry and type; a detached data file whose name stays in the folder).
/// Returns the source and whether the kept payload still matches the data.
pub(crate) fn write_back_source<'a>(
    image: &'a RawImage,
    kind: Kind,
    target: &Path,
) -> Option<(&'a Source, bool)> {
    let source = image.source.as_deref()?;
    let detached = super::is_detached(target);
    let usable = source.kind == kind
        && detached == source.data_file.is_some()
        && source.data_file.as_deref().is_none_or(is_local_name)
        && source.snapshot.matches(image);
    if !usable {
        return None;
    }
    let unchanged = match (&source.stored.encoded, source.digest) {
        (Some(_), Some(d)) => digest(&image.data) == d,
        _ => true,
    };
    (unchanged || source.reencode_ok).then_some((source, unchanged))
}

/// Writes `image` back through `source` to `target` (and its data file, when detached).
pub(crate) fn write_back(
    image: &RawImage,
    source: &Source,
    unchanged: bool,
    target: &Path,
) -> Result<(), FormatError> {
    let spec = EncodeSpec {
        encoding: source.encoding,
        element: image.element,
        big_endian: source.big_endian,
        line_len: source.file_sizes.first().copied().unwrap_or(1),
    };
    let file_data;
    let payload = match (&source.stored.encoded, unchanged) {
        (Some(encoded), true) => Part::Bytes(encoded),
        _ if source.component_axis == 0 => Part::Data(&image.data, spec),
        _ => {
            let k = source.component_axis;
            let inner = source.file_sizes[..k].iter().product();
            let outer = source.file_sizes[k + 1..].iter().product();
            let axes = (inner, image.components, outer);
            file_data = move_component_axis(&image.data, image.element.size(), axes, true);
            Part::Data(&file_data, spec)
        }
    };
    let region = [
        Part::Bytes(&source.stored.lead),
        payload,
        Part::Bytes(&source.stored.trail),
    ];
    match &source.data_file {
        Some(name) => {
            write_parts(&resolve_data_file(target, name), &region)?;
            write_parts(target, &[Part::Bytes(&source.header)])
        }
        None => {
            let [lead, payload, trail] = region;
            write_parts(target, &[Part::Bytes(&source.header), lead, payload, trail])
        }
    }
}
