//! MetaImage reading and writing (`.mha` with `ElementDataFile = LOCAL`, `.mhd` with a
//! `.raw`/`.zraw` data file), with the geometry ITK's `MetaImageIO` reports.
//!
//! Read: binary data (`BinaryDataByteOrderMSB`/`ElementByteOrderMSB`), zlib-compressed data
//! (`CompressedData`, with or without `CompressedDataSize`), text data (`BinaryData = False`),
//! `HeaderSize` (bytes before the data; `-1`: the data ends the file), every `MET_*` scalar
//! type (`MET_LONG`/`MET_ULONG` are 4 bytes, as MetaIO defines them) and
//! `ElementNumberOfChannels` components. `TransformMatrix` (or `Rotation`, `Orientation`)
//! lists the axis directions as rows, so ITK's direction is its transpose; `Offset` (or
//! `Origin`, `Position`) is the origin; `ElementSpacing` (or `ElementSize`) the spacing;
//! `AnatomicalOrientation` and `CenterOfRotation` do not change ITK's geometry. Refused with a
//! clear error: `ElementDataFile = LIST` and `%d` file patterns, other object types.
//!
//! Written fresh: `.mha` with the data after the header, compressed (`CompressedData = True`
//! with its size); `.mhd` puts the data in `<name>.zraw` beside it.

mod header;

use std::path::Path;

use super::encode::{self, Part};
use super::error::FormatError;
use super::geometry::{self, checked_bytes, join, orientation_code};
use super::payload::{self, DataRegion, DataSpec, Encoding, Shape, Skip};
use super::source::{self, Snapshot, Source, Stored};
use super::{is_detached, ElementType, Kind, RawImage};
use header::{DataFile, Header};

/// Reads a MetaImage file (`.mha`, or a `.mhd` header with its data file).
///
/// # Errors
/// [`FormatError`] naming the file and the fault: I/O, no `ElementDataFile` line within the
/// header limit, a missing or bad field, an unsupported type, object or multi-file data,
/// dimensions that overflow, data shorter than promised (or a compressed stream longer), a
/// corrupt zlib stream, unusable geometry, or more memory than the ceiling allows.
pub fn read_metaimage(path: &Path) -> Result<RawImage, FormatError> {
    let (mut reader, len) = payload::open(path)?;
    let is_last = |line: &[u8]| header::key_of(line) == Some(b"ElementDataFile".as_slice());
    let (mut text, ended) = payload::read_header(&mut reader, path, is_last)?;
    if !ended {
        return Err(FormatError::MissingField {
            path: path.to_path_buf(),
            field: "ElementDataFile",
        });
    }
    let header = header::parse(&text, path)?;
    let layout = Layout::of(&header, path)?;
    let spec = data_spec(&header, layout.n_bytes, path)?;
    let shape = Shape {
        dims: &header.dims,
        components: header.channels,
    };
    let (data, stored) = match &header.data_file {
        DataFile::Local => {
            let region = DataRegion {
                reader: &mut reader,
                path,
                len,
                pos: text.len() as u64,
            };
            payload::read_data(region, &spec, &shape)?
        }
        DataFile::File(name) => {
            // The whole header file is kept (MetaIO ignores anything after ElementDataFile).
            payload::read_rest(&mut reader, path, &mut text)?;
            payload::read_detached(path, name, &spec, &shape)?
        }
    };
    Ok(assemble(header, layout, &spec, text, data, stored))
}

/// What the header implies beyond its fields: all sizes, the data bytes, ITK's direction.
struct Layout {
    /// `DimSize` then the channels.
    sizes: Vec<usize>,
    n_bytes: usize,
    direction: Vec<f64>,
}

impl Layout {
    fn of(header: &Header, path: &Path) -> Result<Layout, FormatError> {
        let sizes: Vec<usize> = header
            .dims
            .iter()
            .chain([&header.channels])
            .copied()
            .collect();
        let element_bytes = header.element.size();
        let n_bytes =
            checked_bytes(&sizes, element_bytes).ok_or_else(|| FormatError::TooManyVoxels {
                path: path.to_path_buf(),
                sizes: sizes.clone(),
                element_bytes,
            })?;
        let d = header.dims.len();
        let direction = transpose(&header.transform, d);
        geometry::check_geometry(&header.spacing, &header.origin, &direction, d).map_err(
            |source| FormatError::BadGeometry {
                path: path.to_path_buf(),
                source,
            },
        )?;
        Ok(Layout {
            sizes,
            n_bytes,
            direction,
        })
    }
}

/// Builds the image and remembers its source.
fn assemble(
    header: Header,
    layout: Layout,
    spec: &DataSpec,
    text: Vec<u8>,
    data: Vec<u8>,
    stored: Stored,
) -> RawImage {
    let digest = stored.encoded.as_ref().map(|_| source::digest(&data));
    // A header recording the compressed size or a data offset stays valid only for the exact
    // payload it was written with.
    let reencode_ok =
        !header.compressed || (header.compressed_size.is_none() && header.header_size == 0);
    let data_file = match header.data_file {
        DataFile::Local => None,
        DataFile::File(name) => Some(name),
    };
    let mut image = RawImage {
        dims: header.dims,
        spacing: header.spacing,
        origin: header.origin,
        direction: layout.direction,
        components: header.channels,
        element: header.element,
        data,
        source: None,
    };
    let source = Source {
        kind: Kind::MetaImage,
        header: text,
        data_file,
        stored,
        encoding: spec.encoding,
        big_endian: spec.big_endian,
        file_sizes: layout.sizes,
        component_axis: 0,
        snapshot: Snapshot::of(&image),
        digest,
        reencode_ok,
    };
    image.source = Some(Box::new(source));
    image
}

/// The `d × d` transpose of a row-major matrix.
fn transpose(m: &[f64], d: usize) -> Vec<f64> {
    (0..d * d).map(|i| m[(i % d) * d + i / d]).collect()
}

/// Where and how the payload is stored.
fn data_spec(h: &Header, n_bytes: usize, path: &Path) -> Result<DataSpec, FormatError> {
    let unsupported = |what: &str| FormatError::Unsupported {
        path: path.to_path_buf(),
        what: what.to_string(),
    };
    let encoding = match (h.binary, h.compressed) {
        (true, false) => Encoding::Raw,
        (true, true) => Encoding::Zlib,
        (false, false) => Encoding::Text,
        (false, true) => return Err(unsupported("compressed text data (BinaryData = False)")),
    };
    let skip = match h.header_size {
        -1 if encoding != Encoding::Raw => {
            return Err(unsupported("HeaderSize = -1 with compressed or text data"))
        }
        -1 => Skip::FromEnd(0),
        0 => Skip::Forward(0),
        // MetaIO seeks to HeaderSize from the start of the file holding the data.
        n => Skip::Absolute(n as u64),
    };
    Ok(DataSpec {
        encoding,
        element: h.element,
        big_endian: h.big_endian,
        n_bytes,
        line_skip: 0,
        skip,
        inner_skip: 0,
        compressed_len: h.compressed_size,
    })
}

/// Writes `image` as MetaImage: `.mha` (data after the header) or `.mhd` (data in
/// `<name>.zraw`).
///
/// An image read from a MetaImage file of the same kind (`.mha`/`.mhd`) with unchanged geometry
/// and type is written back through its source: byte for byte when its data is unchanged too,
/// else with the same header and encoding where that header stays valid. Any other image gets a
/// fresh header with zlib-compressed data (see the module doc). Atomic: each file is written to
/// a temporary file renamed over the target.
///
/// # Errors
/// [`FormatError::Extension`] unless `path` ends in `.mha` or `.mhd`,
/// [`FormatError::InvalidImage`] for an inconsistent image, [`FormatError::Write`] for I/O.
pub fn write_metaimage(image: &RawImage, path: &Path) -> Result<(), FormatError> {
    if super::Kind::of(path) != Some(Kind::MetaImage) {
        return Err(FormatError::Extension {
            path: path.to_path_buf(),
            expected: ".mha or .mhd",
        });
    }
    image.check().map_err(|source| FormatError::InvalidImage {
        path: path.to_path_buf(),
        source,
    })?;
    if let Some((source, unchanged)) = source::write_back_source(image, Kind::MetaImage, path) {
        return source::write_back(image, source, unchanged, path);
    }
    let spec = encode::EncodeSpec {
        encoding: Encoding::Zlib,
        element: image.element,
        big_endian: false,
        line_len: 1,
    };
    let write_err = |source| FormatError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut compressed = payload::reserve(image.data.len() as u128 / 2 + 64, path)?;
    encode::write_encoded(&mut compressed, &image.data, &spec).map_err(write_err)?;
    if is_detached(path) {
        let stem = path
            .file_stem()
            .map_or_else(|| "data".to_string(), |s| s.to_string_lossy().into_owned());
        let name = format!("{stem}.zraw");
        let header = fresh_header(image, compressed.len(), &name);
        encode::write_parts(
            &payload::resolve_data_file(path, &name),
            &[Part::Bytes(&compressed)],
        )?;
        encode::write_parts(path, &[Part::Bytes(header.as_bytes())])
    } else {
        let header = fresh_header(image, compressed.len(), "LOCAL");
        encode::write_parts(
            path,
            &[Part::Bytes(header.as_bytes()), Part::Bytes(&compressed)],
        )
    }
}

/// A canonical header (keys in the order ITK writes them) for zlib-compressed data of
/// `compressed_len` bytes in `data_file`.
fn fresh_header(image: &RawImage, compressed_len: usize, data_file: &str) -> String {
    let d = image.dims.len();
    let dims: Vec<String> = image.dims.iter().map(usize::to_string).collect();
    let mut lines = vec![
        "ObjectType = Image".to_string(),
        format!("NDims = {d}"),
        "BinaryData = True".to_string(),
        "BinaryDataByteOrderMSB = False".to_string(),
        "CompressedData = True".to_string(),
        format!("CompressedDataSize = {compressed_len}"),
        format!(
            "TransformMatrix = {}",
            join(&transpose(&image.direction, d), " ")
        ),
        format!("Offset = {}", join(&image.origin, " ")),
        format!("CenterOfRotation = {}", vec!["0"; d].join(" ")),
        format!(
            "AnatomicalOrientation = {}",
            orientation_code(&image.direction, d)
        ),
        format!("ElementSpacing = {}", join(&image.spacing, " ")),
        format!("DimSize = {}", dims.join(" ")),
    ];
    if image.components > 1 {
        lines.push(format!("ElementNumberOfChannels = {}", image.components));
    }
    lines.push(format!("ElementType = {}", type_name(image.element)));
    lines.push(format!("ElementDataFile = {data_file}"));
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

/// MetaIO's name of a type.
fn type_name(element: ElementType) -> &'static str {
    match element {
        ElementType::U8 => "MET_UCHAR",
        ElementType::I8 => "MET_CHAR",
        ElementType::U16 => "MET_USHORT",
        ElementType::I16 => "MET_SHORT",
        ElementType::U32 => "MET_UINT",
        ElementType::I32 => "MET_INT",
        ElementType::U64 => "MET_ULONG_LONG",
        ElementType::I64 => "MET_LONG_LONG",
        ElementType::F32 => "MET_FLOAT",
        ElementType::F64 => "MET_DOUBLE",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transform_matrix_rows_are_direction_columns() {
        // SimpleITK writes "TransformMatrix = 0 1 0 -1 0 0 0 0 1" for GetDirection()
        // (0, -1, 0, 1, 0, 0, 0, 0, 1).
        let tm = [0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0];
        assert_eq!(
            transpose(&tm, 3),
            vec![0.0, -1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0]
        );
    }
}
