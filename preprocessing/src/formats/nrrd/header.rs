//! NRRD header parsing: the `NRRD000x` magic, `field: value` lines (field names as teem spells
//! them, case-insensitive, each at most once), `key:=value` pairs and `#` comments, up to the
//! blank line that ends an attached header. Values are checked and typed here; what they mean
//! for the geometry is decided in the parent module.

use std::collections::HashMap;
use std::path::Path;

use super::super::error::{shorten, FormatError};
use super::super::geometry::MAX_DIMS;
use super::super::payload::{trim_eol, Encoding};
use super::super::ElementType;

/// The most coordinates a NRRD space has (`NRRD_SPACE_DIM_MAX`).
const MAX_SPACE_DIM: usize = 8;

/// Field names: canonical spelling first, then the equivalents teem accepts.
const FIELDS: &[&[&str]] = &[
    &["content"],
    &["number"],
    &["type"],
    &["block size", "blocksize"],
    &["dimension"],
    &["space"],
    &["space dimension", "spacedimension"],
    &["sizes"],
    &["spacings"],
    &["thicknesses"],
    &["axis mins", "axismins"],
    &["axis maxs", "axismaxs"],
    &["space directions", "spacedirections"],
    &["centers", "centerings"],
    &["kinds"],
    &["labels"],
    &["units"],
    &["min"],
    &["max"],
    &["old min", "oldmin"],
    &["old max", "oldmax"],
    &["endian"],
    &["encoding"],
    &["line skip", "lineskip"],
    &["byte skip", "byteskip"],
    &["sample units", "sampleunits"],
    &["space units", "spaceunits"],
    &["space origin", "spaceorigin"],
    &["measurement frame", "measurementframe"],
    &["data file", "datafile"],
];

/// The coordinate frame of `space`, as far as the conversion to LPS cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Frame {
    /// `right-anterior-superior`: x and y flip to reach LPS.
    Ras,
    /// `left-anterior-superior`: y flips (what SimpleITK 2.5 does, and A to P needs).
    Las,
    /// LPS, or a space ITK takes as it is (`scanner-xyz`, `3D-right-handed`, ...).
    AsIs,
}

/// Sample centering along an axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Center {
    Cell,
    Node,
    Unknown,
}

/// What an axis holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AxisKind {
    /// `domain`, `space`, `time`, or no kind (teem takes those as domain axes).
    Domain,
    /// A non-domain axis (components); `size` is the length the kind requires, if any.
    Range {
        name: &'static str,
        size: Option<usize>,
    },
}

/// A parsed NRRD header.
#[derive(Debug, Clone)]
pub(super) struct Header {
    pub element: ElementType,
    pub sizes: Vec<usize>,
    pub encoding: Encoding,
    /// `endian: big`; `None` when not given.
    pub big_endian: Option<bool>,
    pub frame: Frame,
    /// 0 when the header has no space.
    pub space_dim: usize,
    /// Per axis: its space direction (`None` for `none`).
    pub directions: Option<Vec<Option<Vec<f64>>>>,
    pub origin: Option<Vec<f64>>,
    pub spacings: Option<Vec<f64>>,
    pub mins: Option<Vec<f64>>,
    pub maxs: Option<Vec<f64>>,
    pub centers: Option<Vec<Center>>,
    pub kinds: Option<Vec<AxisKind>>,
    pub line_skip: u64,
    pub byte_skip: i64,
    pub data_file: Option<String>,
}

/// Parses the header text (magic line included).
pub(super) fn parse(text: &[u8], path: &Path) -> Result<Header, FormatError> {
    let fields = collect_fields(text, path)?;
    Parser { fields, path }.header()
}

/// Checks the magic and gathers `field -> value` (canonical names), refusing unknown fields and
/// duplicates. Comments and key/value pairs are skipped (they stay in the kept header text).
fn collect_fields(text: &[u8], path: &Path) -> Result<HashMap<&'static str, String>, FormatError> {
    let mut lines = text.split_inclusive(|&b| b == b'\n').map(trim_eol);
    let magic = lines.next().unwrap_or_default();
    let ok = magic.len() == 8 && magic.starts_with(b"NRRD000") && (b'1'..=b'6').contains(&magic[7]);
    if !ok {
        return Err(FormatError::NotFormat {
            path: path.to_path_buf(),
            format: "NRRD",
            reason: format!(
                "first line {:?} is not a NRRD0001..NRRD0006 magic",
                shorten(&String::from_utf8_lossy(magic))
            ),
        });
    }
    let mut fields = HashMap::new();
    for line in lines {
        if line.is_empty() {
            break;
        }
        if line.starts_with(b"#") {
            continue;
        }
        let line = String::from_utf8_lossy(line);
        let field = line
            .split_once(": ")
            .and_then(|(name, value)| Some((field_name(name)?, value)));
        match field {
            Some((name, value)) => {
                let value = value.trim_matches([' ', '\t']).to_string();
                if fields.insert(name, value).is_some() {
                    return Err(FormatError::DuplicateField {
                        path: path.to_path_buf(),
                        field: name.to_string(),
                    });
                }
            }
            None if line.contains(":=") => {}
            None => {
                return Err(bad_header(
                    path,
                    &format!(
                        "line {:?} is neither a known field nor a key:=value pair",
                        shorten(&line)
                    ),
                ))
            }
        }
    }
    Ok(fields)
}

fn bad_header(path: &Path, reason: &str) -> FormatError {
    FormatError::BadHeader {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// The canonical name of a field identifier (case-insensitive), if it is one.
fn field_name(name: &str) -> Option<&'static str> {
    FIELDS
        .iter()
        .find(|spellings| spellings.iter().any(|s| s.eq_ignore_ascii_case(name)))
        .map(|spellings| spellings[0])
}

struct Parser<'p> {
    fields: HashMap<&'static str, String>,
    path: &'p Path,
}

impl Parser<'_> {
    fn header(&self) -> Result<Header, FormatError> {
        let element = self.element()?;
        let dimension: usize = self.number("dimension", self.required("dimension")?)?;
        if !(1..=MAX_DIMS).contains(&dimension) {
            return Err(self.bad("dimension", &self.fields["dimension"], "must be 1 to 16"));
        }
        let sizes = self.per_axis("sizes", self.required("sizes")?, dimension, |p, t| {
            p.number::<usize>("sizes", t).and_then(|n| match n {
                0 => Err(p.bad("sizes", t, "a size must be at least 1")),
                n => Ok(n),
            })
        })?;
        let encoding = self.encoding()?;
        let (frame, space_dim) = self.space()?;
        let floats = |name| self.optional_per_axis(name, dimension, |p, t| p.float(name, t));
        let header = Header {
            element,
            sizes,
            encoding,
            big_endian: self.endian()?,
            frame,
            space_dim,
            directions: self.directions(dimension, space_dim)?,
            origin: self.origin(space_dim)?,
            spacings: floats("spacings")?,
            mins: floats("axis mins")?,
            maxs: floats("axis maxs")?,
            centers: self.optional_per_axis("centers", dimension, Parser::center)?,
            kinds: self.optional_per_axis("kinds", dimension, Parser::kind)?,
            line_skip: self
                .fields
                .get("line skip")
                .map_or(Ok(0), |t| self.number("line skip", t))?,
            byte_skip: self
                .fields
                .get("byte skip")
                .map_or(Ok(0), |t| self.number("byte skip", t))?,
            data_file: self.data_file()?,
        };
        Ok(header)
    }

    fn required(&self, field: &'static str) -> Result<&str, FormatError> {
        self.fields
            .get(field)
            .map(String::as_str)
            .ok_or_else(|| FormatError::MissingField {
                path: self.path.to_path_buf(),
                field,
            })
    }

    fn bad(&self, field: &str, value: &str, reason: &str) -> FormatError {
        FormatError::BadField {
            path: self.path.to_path_buf(),
            field: field.to_string(),
            value: shorten(value),
            reason: reason.to_string(),
        }
    }

    fn unsupported(&self, what: String) -> FormatError {
        FormatError::Unsupported {
            path: self.path.to_path_buf(),
            what,
        }
    }

    fn number<T: std::str::FromStr>(&self, field: &str, text: &str) -> Result<T, FormatError> {
        text.trim()
            .parse()
            .map_err(|_| self.bad(field, text, "not a valid number"))
    }

    /// A real number as teem reads it (`nan` and `inf` included).
    fn float(&self, field: &str, text: &str) -> Result<f64, FormatError> {
        self.number(field, text)
    }

    /// Exactly `n` white-space separated values.
    fn per_axis<T>(
        &self,
        field: &str,
        text: &str,
        n: usize,
        parse: impl Fn(&Self, &str) -> Result<T, FormatError>,
    ) -> Result<Vec<T>, FormatError> {
        let items: Vec<&str> = text.split_ascii_whitespace().collect();
        if items.len() != n {
            let reason = format!("{} values for {n} axes", items.len());
            return Err(self.bad(field, text, &reason));
        }
        items.into_iter().map(|t| parse(self, t)).collect()
    }

    fn optional_per_axis<T>(
        &self,
        field: &'static str,
        n: usize,
        parse: impl Fn(&Self, &str) -> Result<T, FormatError>,
    ) -> Result<Option<Vec<T>>, FormatError> {
        self.fields
            .get(field)
            .map(|text| self.per_axis(field, text, n, parse))
            .transpose()
    }

    fn element(&self) -> Result<ElementType, FormatError> {
        let text = self.required("type")?;
        let lower = text.to_ascii_lowercase();
        let element = match lower.as_str() {
            "signed char" | "int8" | "int8_t" => ElementType::I8,
            "uchar" | "unsigned char" | "uint8" | "uint8_t" => ElementType::U8,
            "short" | "short int" | "signed short" | "signed short int" | "int16" | "int16_t" => {
                ElementType::I16
            }
            "ushort" | "unsigned short" | "unsigned short int" | "uint16" | "uint16_t" => {
                ElementType::U16
            }
            "int" | "signed int" | "int32" | "int32_t" => ElementType::I32,
            "uint" | "unsigned int" | "uint32" | "uint32_t" => ElementType::U32,
            "longlong"
            | "long long"
            | "long long int"
            | "signed long long"
            | "signed long long int"
            | "int64"
            | "int64_t" => ElementType::I64,
            "ulonglong"
            | "unsigned long long"
            | "unsigned long long int"
            | "uint64"
            | "uint64_t" => ElementType::U64,
            "float" => ElementType::F32,
            "double" => ElementType::F64,
            _ => return Err(self.unsupported(format!("type {:?}", shorten(text)))),
        };
        Ok(element)
    }

    fn encoding(&self) -> Result<Encoding, FormatError> {
        let text = self.required("encoding")?;
        match text.to_ascii_lowercase().as_str() {
            "raw" => Ok(Encoding::Raw),
            "gz" | "gzip" => Ok(Encoding::Gzip),
            "txt" | "text" | "ascii" => Ok(Encoding::Text),
            _ => Err(self.unsupported(format!(
                "encoding {:?} (raw, gzip and ascii are read)",
                shorten(text)
            ))),
        }
    }

    fn endian(&self) -> Result<Option<bool>, FormatError> {
        let Some(text) = self.fields.get("endian") else {
            return Ok(None);
        };
        match text.to_ascii_lowercase().as_str() {
            "little" => Ok(Some(false)),
            "big" => Ok(Some(true)),
            _ => Err(self.bad("endian", text, "must be little or big")),
        }
    }

    /// The frame and dimension of `space` (or `space dimension`).
    fn space(&self) -> Result<(Frame, usize), FormatError> {
        match (self.fields.get("space"), self.fields.get("space dimension")) {
            (Some(_), Some(text)) => Err(self.bad(
                "space dimension",
                text,
                "given together with space (which implies it)",
            )),
            (None, Some(text)) => {
                let d: usize = self.number("space dimension", text)?;
                if !(1..=MAX_SPACE_DIM).contains(&d) {
                    return Err(self.bad("space dimension", text, "must be 1 to 8"));
                }
                Ok((Frame::AsIs, d))
            }
            (Some(text), None) => self.named_space(text),
            (None, None) => Ok((Frame::AsIs, 0)),
        }
    }

    fn named_space(&self, text: &str) -> Result<(Frame, usize), FormatError> {
        // teem's spellings: hyphens, spaces, or nothing between the words; case-insensitive.
        let key: String = text
            .chars()
            .filter(|c| !matches!(c, '-' | ' '))
            .collect::<String>()
            .to_ascii_lowercase();
        let space = match key.as_str() {
            "rightanteriorsuperior" | "ras" => (Frame::Ras, 3),
            "leftanteriorsuperior" | "las" => (Frame::Las, 3),
            "leftposteriorsuperior" | "lps" => (Frame::AsIs, 3),
            "scannerxyz" | "3drighthanded" | "3dlefthanded" => (Frame::AsIs, 3),
            "rightup" | "rightdown" => (Frame::AsIs, 2),
            "rightanteriorsuperiortime"
            | "rast"
            | "leftanteriorsuperiortime"
            | "last"
            | "leftposteriorsuperiortime"
            | "lpst"
            | "scannerxyztime"
            | "scannerxyzt"
            | "3drighthandedtime"
            | "3dlefthandedtime" => (Frame::AsIs, 4),
            _ => return Err(self.unsupported(format!("space {:?}", shorten(text)))),
        };
        Ok(space)
    }

    fn directions(
        &self,
        dimension: usize,
        space_dim: usize,
    ) -> Result<Option<Vec<Option<Vec<f64>>>>, FormatError> {
        let Some(text) = self.fields.get("space directions") else {
            return Ok(None);
        };
        if space_dim == 0 {
            return Err(self.bad(
                "space directions",
                text,
                "given without space or space dimension",
            ));
        }
        let items = self.vector_list("space directions", text, space_dim)?;
        if items.len() != dimension {
            let reason = format!("{} vectors for {dimension} axes", items.len());
            return Err(self.bad("space directions", text, &reason));
        }
        Ok(Some(items))
    }

    fn origin(&self, space_dim: usize) -> Result<Option<Vec<f64>>, FormatError> {
        let Some(text) = self.fields.get("space origin") else {
            return Ok(None);
        };
        if space_dim == 0 {
            return Err(self.bad(
                "space origin",
                text,
                "given without space or space dimension",
            ));
        }
        match self
            .vector_list("space origin", text, space_dim)?
            .as_slice()
        {
            [Some(v)] => Ok(Some(v.clone())),
            _ => Err(self.bad("space origin", text, "must be one vector")),
        }
    }

    /// `(a,b,c) none (d,e,f) ...`: vectors of `n` numbers, or `none`.
    fn vector_list(
        &self,
        field: &str,
        text: &str,
        n: usize,
    ) -> Result<Vec<Option<Vec<f64>>>, FormatError> {
        let mut rest = text.trim_start();
        let mut out = Vec::new();
        while !rest.is_empty() {
            if rest
                .get(..4)
                .is_some_and(|w| w.eq_ignore_ascii_case("none"))
            {
                out.push(None);
                rest = rest[4..].trim_start();
                continue;
            }
            let Some(inner) = rest.strip_prefix('(') else {
                return Err(self.bad(field, text, "expected (x,y,...) or none"));
            };
            let Some((vector, after)) = inner.split_once(')') else {
                return Err(self.bad(field, text, "a vector misses its closing parenthesis"));
            };
            let values = vector
                .split(',')
                .map(|t| self.float(field, t))
                .collect::<Result<Vec<f64>, _>>()?;
            if values.len() != n {
                let reason = format!("a vector has {} values in a {n}-D space", values.len());
                return Err(self.bad(field, text, &reason));
            }
            out.push(Some(values));
            rest = after.trim_start();
            if out.len() > MAX_DIMS {
                return Err(self.bad(field, text, "more vectors than axes"));
            }
        }
        Ok(out)
    }

    fn center(&self, text: &str) -> Result<Center, FormatError> {
        match text.to_ascii_lowercase().as_str() {
            "cell" => Ok(Center::Cell),
            "node" => Ok(Center::Node),
            "???" | "none" => Ok(Center::Unknown),
            _ => Err(self.bad("centers", text, "must be cell, node, ??? or none")),
        }
    }

    fn kind(&self, text: &str) -> Result<AxisKind, FormatError> {
        let lower = text.to_ascii_lowercase();
        let range = |name, size| Ok(AxisKind::Range { name, size });
        match lower.as_str() {
            "domain" | "space" | "time" | "???" | "none" => Ok(AxisKind::Domain),
            "list" => range("list", None),
            "point" => range("point", None),
            "vector" | "contravariant-vector" => range("vector", None),
            "covariant-vector" => range("covariant-vector", None),
            "normal" => range("normal", None),
            "stub" => range("stub", Some(1)),
            "scalar" => range("scalar", Some(1)),
            "complex" => range("complex", Some(2)),
            "2-vector" => range("2-vector", Some(2)),
            "3-color" => range("3-color", Some(3)),
            "rgb-color" | "rgbcolor" | "rgb" => range("RGB-color", Some(3)),
            "hsv-color" | "hsvcolor" | "hsv" => range("HSV-color", Some(3)),
            "xyz-color" => range("XYZ-color", Some(3)),
            "4-color" => range("4-color", Some(4)),
            "rgba-color" | "rgbacolor" | "rgba" => range("RGBA-color", Some(4)),
            "3-vector" => range("3-vector", Some(3)),
            "3-gradient" => range("3-gradient", Some(3)),
            "3-normal" => range("3-normal", Some(3)),
            "4-vector" => range("4-vector", Some(4)),
            "quaternion" => range("quaternion", Some(4)),
            "2d-symmetric-matrix" | "2d-sym-matrix" | "2d-symmetric-tensor" | "2d-sym-tensor" => {
                range("2D-symmetric-matrix", Some(3))
            }
            "2d-masked-symmetric-matrix"
            | "2d-masked-sym-matrix"
            | "2d-masked-symmetric-tensor"
            | "2d-masked-sym-tensor" => range("2D-masked-symmetric-matrix", Some(4)),
            "2d-matrix" | "2d-tensor" => range("2D-matrix", Some(4)),
            "2d-masked-matrix" | "2d-masked-tensor" => range("2D-masked-matrix", Some(5)),
            "3d-symmetric-matrix" | "3d-sym-matrix" | "3d-symmetric-tensor" | "3d-sym-tensor" => {
                range("3D-symmetric-matrix", Some(6))
            }
            "3d-matrix" | "3d-tensor" => range("3D-matrix", Some(9)),
            "3d-masked-symmetric-matrix"
            | "3d-masked-sym-matrix"
            | "3d-masked-symmetric-tensor"
            | "3d-masked-sym-tensor"
            | "3d-masked-matrix"
            | "3d-masked-tensor" => Err(self.unsupported(format!(
                "kind {text:?} (ITK drops its mask; store the components without it)"
            ))),
            _ => Err(self.bad("kinds", text, "not a NRRD kind")),
        }
    }

    /// The detached data file, refusing the multi-file forms.
    fn data_file(&self) -> Result<Option<String>, FormatError> {
        let Some(text) = self.fields.get("data file") else {
            return Ok(None);
        };
        let words: Vec<&str> = text.split_ascii_whitespace().collect();
        let is_list = words.first().is_some_and(|w| *w == "LIST");
        let is_pattern = words.len() >= 4
            && words[0].contains('%')
            && words[1..4].iter().all(|w| w.parse::<i64>().is_ok());
        if is_list || is_pattern {
            return Err(self.unsupported(format!(
                "multi-file data ({:?}); only one data file is read",
                shorten(text)
            )));
        }
        if text.is_empty() {
            return Err(self.bad("data file", text, "empty file name"));
        }
        Ok(Some(text.to_string()))
    }
}
