//! NRRD reading and writing (`.nrrd` with the data attached, `.nhdr` with a detached data
//! file), with the geometry ITK's `NrrdImageIO` reports.
//!
//! Read: encodings raw, gzip and ascii; `line skip` and `byte skip` (`-1`: data at the end of
//! the file); every `type` spelling teem accepts; one non-domain axis (a `kinds` entry such as
//! `vector` or `list`) becomes the components, moved to the fastest position as ITK does.
//! Spacing is the length of each `space directions` vector and the direction its unit vector
//! (a column of [`RawImage::direction`]); RAS (x and y) and LAS (y) spaces are flipped to LPS,
//! as SimpleITK 2.5 reads them; without a
//! space, `spacings` (NaN = 1) and, with `axis mins`, the cell- or node-centred origin.
//! Refused with a clear error: the multi-file `data file` forms (`LIST`, `%d` patterns), the
//! encodings hex, bzip2 and zrl, `block` data, masked 3-D tensor kinds.
//!
//! Written fresh: `NRRD0004`, `space: left-posterior-superior` for 3-D images (`space
//! dimension: d` otherwise, as ITK writes), `space directions`, `space origin`, `kinds`,
//! gzip encoding; `.nhdr` puts the data in `<name>.raw.gz` beside it.

mod header;

use std::path::Path;

use super::encode::{self, Part};
use super::error::FormatError;
use super::geometry::{self, checked_bytes, identity, join};
use super::payload::{self, DataRegion, DataSpec, Encoding, Shape, Skip};
use super::source::{self, Snapshot, Source, Stored};
use super::{is_detached, ElementType, Kind, RawImage};
use header::{AxisKind, Center, Frame, Header};

/// Reads an NRRD file (`.nrrd`, or a `.nhdr` header with its data file).
///
/// # Errors
/// [`FormatError`] naming the file and the fault: I/O, not NRRD, a missing, duplicated or bad
/// field, an unsupported encoding/type/space/kind or multi-file data, dimensions that
/// overflow, data shorter than promised (or a compressed stream longer), a corrupt gzip
/// stream, unusable geometry (zero spacing, singular direction), or more memory than the
/// ceiling allows.
pub fn read_nrrd(path: &Path) -> Result<RawImage, FormatError> {
    let (mut reader, len) = payload::open(path)?;
    let head = std::io::BufRead::fill_buf(&mut reader).map_err(|source| FormatError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if !head.starts_with(b"NRRD000") {
        return Err(FormatError::NotFormat {
            path: path.to_path_buf(),
            format: "NRRD",
            reason: "the file does not start with the magic NRRD000x".to_string(),
        });
    }
    let (mut text, ended) =
        payload::read_header(&mut reader, path, |line| payload::trim_eol(line).is_empty())?;
    let header = header::parse(&text, path)?;
    let layout = interpret(&header, path)?;
    let spec = data_spec(&header, &layout, path)?;
    let shape = Shape {
        dims: &layout.dims,
        components: layout.components,
    };
    let (file_data, stored) = match &header.data_file {
        Some(name) => {
            // Anything after a blank line in a detached header is kept with the header.
            payload::read_rest(&mut reader, path, &mut text)?;
            payload::read_detached(path, name, &spec, &shape)?
        }
        None if !ended => {
            return Err(FormatError::BadHeader {
                path: path.to_path_buf(),
                reason: "the header ends without a blank line and names no data file".to_string(),
            })
        }
        None => {
            let region = DataRegion {
                reader: &mut reader,
                path,
                len,
                pos: text.len() as u64,
            };
            payload::read_data(region, &spec, &shape)?
        }
    };
    Ok(assemble(layout, header, text, file_data, stored, spec))
}

/// Builds the image (components moved first) and remembers its source.
fn assemble(
    layout: Layout,
    header: Header,
    text: Vec<u8>,
    file_data: Vec<u8>,
    stored: Stored,
    spec: DataSpec,
) -> RawImage {
    let size = layout.element.size();
    let k = layout.component_axis;
    let data = if k == 0 {
        file_data
    } else {
        let inner = header.sizes[..k].iter().product();
        let outer = header.sizes[k + 1..].iter().product();
        let axes = (inner, layout.components, outer);
        source::move_component_axis(&file_data, size, axes, false)
    };
    let digest = stored.encoded.as_ref().map(|_| source::digest(&data));
    let mut image = RawImage {
        dims: layout.dims,
        spacing: layout.spacing,
        origin: layout.origin,
        direction: layout.direction,
        components: layout.components,
        element: layout.element,
        data,
        source: None,
    };
    let source = Source {
        kind: Kind::Nrrd,
        header: text,
        data_file: header.data_file,
        stored,
        encoding: spec.encoding,
        big_endian: spec.big_endian,
        file_sizes: header.sizes,
        component_axis: k,
        snapshot: Snapshot::of(&image),
        digest,
        reencode_ok: spec.inner_skip == 0,
    };
    image.source = Some(Box::new(source));
    image
}

/// The image a header describes, before its data is read.
struct Layout {
    dims: Vec<usize>,
    spacing: Vec<f64>,
    origin: Vec<f64>,
    direction: Vec<f64>,
    components: usize,
    component_axis: usize,
    element: ElementType,
}

/// The domain axes, the component axis and the geometry in LPS, as ITK's `NrrdImageIO`.
fn interpret(h: &Header, path: &Path) -> Result<Layout, FormatError> {
    let (domain, components, component_axis) = axes(h, path)?;
    if checked_bytes(&h.sizes, h.element.size()).is_none() {
        return Err(FormatError::TooManyVoxels {
            path: path.to_path_buf(),
            sizes: h.sizes.clone(),
            element_bytes: h.element.size(),
        });
    }
    let (spacing, direction) = spacing_and_direction(h, &domain, path)?;
    let origin = origin(h, &domain);
    let dims: Vec<usize> = domain.iter().map(|&a| h.sizes[a]).collect();
    geometry::check_geometry(&spacing, &origin, &direction, dims.len()).map_err(|source| {
        FormatError::BadGeometry {
            path: path.to_path_buf(),
            source,
        }
    })?;
    Ok(Layout {
        dims,
        spacing,
        origin,
        direction,
        components,
        component_axis,
        element: h.element,
    })
}

/// The domain axes, the number of components and the component axis (0 when scalar), as
/// teem's `nrrdDomainAxesGet`/`nrrdRangeAxesGet` and ITK's checks on them.
fn axes(h: &Header, path: &Path) -> Result<(Vec<usize>, usize, usize), FormatError> {
    let unsupported = |what: String| FormatError::Unsupported {
        path: path.to_path_buf(),
        what,
    };
    let kinds = h
        .kinds
        .clone()
        .unwrap_or_else(|| vec![AxisKind::Domain; h.sizes.len()]);
    let (domain, range): (Vec<usize>, Vec<usize>) =
        (0..kinds.len()).partition(|&a| kinds[a] == AxisKind::Domain);
    if range.len() > 1 {
        return Err(unsupported(format!(
            "{} non-domain axes (at most one, the components)",
            range.len()
        )));
    }
    if domain.is_empty() {
        return Err(unsupported("no domain (spatial) axis".to_string()));
    }
    if h.space_dim > 0 && h.space_dim != domain.len() {
        return Err(unsupported(format!(
            "{} domain axes in a {}-D space (ITK requires them equal)",
            domain.len(),
            h.space_dim
        )));
    }
    let Some(&a) = range.first() else {
        return Ok((domain, 1, 0));
    };
    if let AxisKind::Range {
        name,
        size: Some(size),
    } = kinds[a]
    {
        if h.sizes[a] != size {
            return Err(FormatError::BadField {
                path: path.to_path_buf(),
                field: "sizes".to_string(),
                value: h.sizes[a].to_string(),
                reason: format!("axis {a} of kind {name} must have size {size}"),
            });
        }
    }
    Ok((domain, h.sizes[a], a))
}

/// Flips a vector from the header's space to LPS.
fn to_lps(frame: Frame, v: &mut [f64]) {
    let flip: &[usize] = match frame {
        Frame::Ras => &[0, 1],
        Frame::Las => &[1],
        Frame::AsIs => &[],
    };
    for &i in flip {
        if let Some(x) = v.get_mut(i) {
            *x = -*x;
        }
    }
}

/// Spacing per domain axis and the direction matrix (axis directions as columns).
fn spacing_and_direction(
    h: &Header,
    domain: &[usize],
    path: &Path,
) -> Result<(Vec<f64>, Vec<f64>), FormatError> {
    let d = domain.len();
    let mut spacing = vec![1.0; d];
    let mut direction = identity(d);
    for (j, &a) in domain.iter().enumerate() {
        let given = h.spacings.as_ref().map(|s| s[a]).filter(|s| !s.is_nan());
        if h.space_dim == 0 {
            spacing[j] = given.unwrap_or(1.0);
            continue;
        }
        if given.is_some() {
            return Err(FormatError::Unsupported {
                path: path.to_path_buf(),
                what: format!("axis {a} has both a space and a spacing (ITK refuses this)"),
            });
        }
        let Some(mut v) = h.directions.as_ref().and_then(|dirs| dirs[a].clone()) else {
            continue; // ITK keeps the default: spacing 1, identity column.
        };
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm == 0.0 || !norm.is_finite() {
            return Err(FormatError::BadField {
                path: path.to_path_buf(),
                field: "space directions".to_string(),
                value: format!("{v:?}"),
                reason: format!("axis {a}'s vector has no usable length"),
            });
        }
        to_lps(h.frame, &mut v);
        spacing[j] = norm;
        for (row, x) in v.iter().enumerate() {
            direction[row * d + j] = x / norm;
        }
    }
    Ok((spacing, direction))
}

/// The origin: `space origin` in LPS, or without a space the centre of the first sample from
/// `axis mins` (teem's `nrrdOriginCalculate`, cell-centred unless `centers` says node).
fn origin(h: &Header, domain: &[usize]) -> Vec<f64> {
    let d = domain.len();
    if h.space_dim > 0 {
        return match &h.origin {
            Some(o) if !o[0].is_nan() => {
                let mut o = o.clone();
                to_lps(h.frame, &mut o);
                o
            }
            _ => vec![0.0; d],
        };
    }
    let Some(mins) = &h.mins else {
        return vec![0.0; d];
    };
    let spacing_of = |a: usize| h.spacings.as_ref().map(|s| s[a]).filter(|s| s.is_finite());
    let max_of = |a: usize| h.maxs.as_ref().map(|m| m[a]).filter(|m| m.is_finite());
    let complete = domain
        .iter()
        .all(|&a| mins[a].is_finite() && (spacing_of(a).is_some() || max_of(a).is_some()));
    if !complete {
        return vec![0.0; d];
    }
    domain
        .iter()
        .map(|&a| {
            let cell = h.centers.as_ref().map_or(Center::Cell, |c| c[a]) != Center::Node;
            let size = h.sizes[a] as f64;
            let denom = if cell { size } else { size - 1.0 };
            let step =
                spacing_of(a).unwrap_or_else(|| (max_of(a).unwrap_or(0.0) - mins[a]) / denom);
            mins[a] + if cell { step / 2.0 } else { 0.0 }
        })
        .collect()
}

/// Where and how the payload is stored.
fn data_spec(h: &Header, layout: &Layout, path: &Path) -> Result<DataSpec, FormatError> {
    let unsupported = |what: &str| FormatError::Unsupported {
        path: path.to_path_buf(),
        what: what.to_string(),
    };
    let needs_endian = h.element.size() > 1 && h.encoding != Encoding::Text;
    if needs_endian && h.big_endian.is_none() {
        return Err(FormatError::MissingField {
            path: path.to_path_buf(),
            field: "endian",
        });
    }
    let n_bytes = checked_bytes(&h.sizes, h.element.size()).unwrap_or(usize::MAX);
    let (skip, inner_skip) = match (h.encoding, h.byte_skip) {
        (Encoding::Gzip, s) if s < 0 => return Err(unsupported("a negative byte skip with gzip")),
        (Encoding::Gzip, s) => (Skip::Forward(0), s as u64),
        (Encoding::Text, s) if s < 0 => return Err(unsupported("a negative byte skip with ascii")),
        (_, s) if s < 0 => (Skip::FromEnd(s.unsigned_abs() - 1), 0),
        (_, s) => (Skip::Forward(s as u64), 0),
    };
    debug_assert_eq!(layout.element, h.element);
    Ok(DataSpec {
        encoding: h.encoding,
        element: h.element,
        big_endian: h.big_endian.unwrap_or(false),
        n_bytes,
        line_skip: h.line_skip,
        skip,
        inner_skip,
        compressed_len: None,
    })
}

/// Writes `image` as NRRD: `.nrrd` (data attached) or `.nhdr` (data in `<name>.raw.gz`).
///
/// An image read from a NRRD file of the same kind (attached or detached) with unchanged
/// geometry and type is written back through its source: byte for byte when its data is
/// unchanged too, else with the same header and encoding. Any other image gets a fresh header
/// (see the module doc). Atomic: each file is written to a temporary file renamed over the
/// target.
///
/// # Errors
/// [`FormatError::Extension`] unless `path` ends in `.nrrd` or `.nhdr`,
/// [`FormatError::InvalidImage`] for an inconsistent image, [`FormatError::Write`] for I/O.
pub fn write_nrrd(image: &RawImage, path: &Path) -> Result<(), FormatError> {
    if super::Kind::of(path) != Some(Kind::Nrrd) {
        return Err(FormatError::Extension {
            path: path.to_path_buf(),
            expected: ".nrrd or .nhdr",
        });
    }
    image.check().map_err(|source| FormatError::InvalidImage {
        path: path.to_path_buf(),
        source,
    })?;
    if let Some((source, unchanged)) = source::write_back_source(image, Kind::Nrrd, path) {
        return source::write_back(image, source, unchanged, path);
    }
    let spec = encode::EncodeSpec {
        encoding: Encoding::Gzip,
        element: image.element,
        big_endian: false,
        line_len: 1,
    };
    if is_detached(path) {
        let name = format!("{}.raw.gz", stem(path));
        let header = fresh_header(image, Some(&name));
        encode::write_parts(
            &payload::resolve_data_file(path, &name),
            &[Part::Data(&image.data, spec)],
        )?;
        encode::write_parts(path, &[Part::Bytes(header.as_bytes())])
    } else {
        let header = fresh_header(image, None);
        encode::write_parts(
            path,
            &[
                Part::Bytes(header.as_bytes()),
                Part::Data(&image.data, spec),
            ],
        )
    }
}

/// The file name of `path` without its extension.
fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "data".to_string())
}

/// A canonical header for `image` (gzip; `data_file` for a detached header).
fn fresh_header(image: &RawImage, data_file: Option<&str>) -> String {
    let d = image.dims.len();
    let vector = image.components > 1;
    let mut sizes: Vec<String> = image.dims.iter().map(usize::to_string).collect();
    let mut kinds = vec!["domain"; d];
    let mut directions: Vec<String> = (0..d)
        .map(|j| {
            let v: Vec<f64> = (0..d)
                .map(|row| image.direction[row * d + j] * image.spacing[j])
                .collect();
            format!("({})", join(&v, ","))
        })
        .collect();
    if vector {
        sizes.insert(0, image.components.to_string());
        kinds.insert(0, "vector");
        directions.insert(0, "none".to_string());
    }
    let space = if d == 3 {
        "space: left-posterior-superior".to_string()
    } else {
        format!("space dimension: {d}")
    };
    let mut lines = vec![
        "NRRD0004".to_string(),
        "# Complete NRRD file format specification at:".to_string(),
        "# http://teem.sourceforge.net/nrrd/format.html".to_string(),
        format!("type: {}", type_name(image.element)),
        format!("dimension: {}", sizes.len()),
        space,
        format!("sizes: {}", sizes.join(" ")),
        format!("space directions: {}", directions.join(" ")),
        format!("kinds: {}", kinds.join(" ")),
    ];
    if image.element.size() > 1 {
        lines.push("endian: little".to_string());
    }
    lines.push("encoding: gzip".to_string());
    lines.push(format!("space origin: ({})", join(&image.origin, ",")));
    match data_file {
        Some(name) => lines.push(format!("data file: {name}")),
        None => lines.push(String::new()),
    }
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

/// teem's canonical name of a type.
fn type_name(element: ElementType) -> &'static str {
    match element {
        ElementType::I8 => "signed char",
        ElementType::U8 => "unsigned char",
        ElementType::I16 => "short",
        ElementType::U16 => "unsigned short",
        ElementType::I32 => "int",
        ElementType::U32 => "unsigned int",
        ElementType::I64 => "long long int",
        ElementType::U64 => "unsigned long long int",
        ElementType::F32 => "float",
        ElementType::F64 => "double",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_header_reads_back_with_the_same_geometry() {
        let direction = vec![0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0];
        let data: Vec<u8> = (0..24u8).collect();
        let image = RawImage::new(
            vec![2, 3, 2],
            vec![0.5, 2.0, 3.0],
            vec![1.0, -2.0, 3.5],
            direction,
            2,
            ElementType::U8,
            data,
        )
        .unwrap();
        let text = fresh_header(&image, None);
        let h = header::parse(text.as_bytes(), Path::new("t.nrrd")).unwrap();
        let layout = interpret(&h, Path::new("t.nrrd")).unwrap();
        assert_eq!(layout.dims, image.dims);
        assert_eq!(layout.components, 2);
        assert_eq!(layout.spacing, image.spacing);
        assert_eq!(layout.origin, image.origin);
        assert_eq!(layout.direction, image.direction);
    }
}
