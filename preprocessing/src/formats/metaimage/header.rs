//! MetaImage header parsing: `Key = Value` lines (also `Key : Value`; keys case-sensitive,
//! the last of a repeated key wins, unknown keys ignored) up to `ElementDataFile`, which ends
//! the header, with the precedence ITK 5.4's MetaIO applies between aliases (checked against
//! SimpleITK 2.5): `Origin` over `Offset` over `Position`, `TransformMatrix` over `Rotation`
//! over `Orientation`, `ElementSpacing` over `ElementSize`, `ElementByteOrderMSB` over
//! `BinaryDataByteOrderMSB`.

use std::collections::HashMap;
use std::path::Path;

use super::super::error::{shorten, FormatError};
use super::super::geometry::{identity, MAX_DIMS};
use super::super::payload::trim_eol;
use super::super::ElementType;

/// Where the voxels are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum DataFile {
    /// `LOCAL`: after the header, in the same file.
    Local,
    /// A file named relative to the header (or absolute).
    File(String),
}

/// A parsed MetaImage header.
#[derive(Debug, Clone)]
pub(super) struct Header {
    pub dims: Vec<usize>,
    pub element: ElementType,
    pub channels: usize,
    pub binary: bool,
    pub big_endian: bool,
    pub compressed: bool,
    /// `CompressedDataSize` when given and non-zero (0 means unknown to MetaIO).
    pub compressed_size: Option<u64>,
    /// `HeaderSize`: 0 when absent, -1 for data at the end of the file.
    pub header_size: i64,
    pub spacing: Vec<f64>,
    pub origin: Vec<f64>,
    /// The axis directions as rows (the transpose of ITK's direction).
    pub transform: Vec<f64>,
    pub data_file: DataFile,
}

/// The key of a header line: the text before the first `=` or `:`, trimmed.
pub(super) fn key_of(line: &[u8]) -> Option<&[u8]> {
    let line = trim_eol(line);
    let at = line.iter().position(|&b| b == b'=' || b == b':')?;
    Some(line[..at].trim_ascii())
}

/// Parses the header text (up to and including the `ElementDataFile` line).
pub(super) fn parse(text: &[u8], path: &Path) -> Result<Header, FormatError> {
    let mut fields: HashMap<String, String> = HashMap::new();
    for line in text.split_inclusive(|&b| b == b'\n') {
        let line = trim_eol(line);
        let Some(at) = line.iter().position(|&b| b == b'=' || b == b':') else {
            continue;
        };
        let key = String::from_utf8_lossy(line[..at].trim_ascii()).into_owned();
        let value = String::from_utf8_lossy(line[at + 1..].trim_ascii()).into_owned();
        fields.insert(key, value);
    }
    Parser { fields, path }.header()
}

struct Parser<'p> {
    fields: HashMap<String, String>,
    path: &'p Path,
}

impl Parser<'_> {
    fn header(&self) -> Result<Header, FormatError> {
        if let Some(object) = self.get("ObjectType") {
            if !object.eq_ignore_ascii_case("image") {
                return Err(
                    self.unsupported(format!("ObjectType {:?} (only Image)", shorten(object)))
                );
            }
        }
        let ndims_text = self.required("NDims")?;
        let ndims: usize = self.number("NDims", ndims_text)?;
        if !(1..=MAX_DIMS).contains(&ndims) {
            return Err(self.bad("NDims", ndims_text, "must be 1 to 16"));
        }
        let dims = self.array("DimSize", self.required("DimSize")?, ndims, |p, t| match p
            .number::<usize>("DimSize", t)?
        {
            0 => Err(p.bad("DimSize", t, "a size must be at least 1")),
            n => Ok(n),
        })?;
        let channels = match self.get("ElementNumberOfChannels") {
            None => 1,
            Some(t) => match self.number::<usize>("ElementNumberOfChannels", t)? {
                0 => return Err(self.bad("ElementNumberOfChannels", t, "must be at least 1")),
                n => n,
            },
        };
        let byte_order = self
            .get("ElementByteOrderMSB")
            .or_else(|| self.get("BinaryDataByteOrderMSB"));
        Ok(Header {
            dims,
            element: self.element()?,
            channels,
            binary: self.get("BinaryData").is_none_or(truthy),
            big_endian: byte_order.is_some_and(truthy),
            compressed: self.get("CompressedData").is_some_and(truthy),
            compressed_size: self.compressed_size()?,
            header_size: self.header_size()?,
            spacing: self.floats(&["ElementSpacing", "ElementSize"], ndims, 1.0)?,
            origin: self.floats(&["Origin", "Offset", "Position"], ndims, 0.0)?,
            transform: self.transform(ndims)?,
            data_file: self.data_file()?,
        })
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.fields.get(key).map(String::as_str)
    }

    fn required(&self, key: &'static str) -> Result<&str, FormatError> {
        self.get(key).ok_or_else(|| FormatError::MissingField {
            path: self.path.to_path_buf(),
            field: key,
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

    /// Exactly `n` white-space separated values.
    fn array<T>(
        &self,
        field: &str,
        text: &str,
        n: usize,
        parse: impl Fn(&Self, &str) -> Result<T, FormatError>,
    ) -> Result<Vec<T>, FormatError> {
        let items: Vec<&str> = text.split_ascii_whitespace().collect();
        if items.len() != n {
            let reason = format!("{} values where {n} are needed", items.len());
            return Err(self.bad(field, text, &reason));
        }
        items.into_iter().map(|t| parse(self, t)).collect()
    }

    /// `n` numbers from the first of `keys` present, else `default` each.
    fn floats(&self, keys: &[&str], n: usize, default: f64) -> Result<Vec<f64>, FormatError> {
        match keys.iter().find_map(|k| Some((*k, self.get(k)?))) {
            Some((key, text)) => self.array(key, text, n, |p, t| p.number(key, t)),
            None => Ok(vec![default; n]),
        }
    }

    fn transform(&self, n: usize) -> Result<Vec<f64>, FormatError> {
        let keys = ["TransformMatrix", "Rotation", "Orientation"];
        match keys.iter().find_map(|k| Some((*k, self.get(k)?))) {
            Some((key, text)) => self.array(key, text, n * n, |p, t| p.number(key, t)),
            None => Ok(identity(n)),
        }
    }

    fn element(&self) -> Result<ElementType, FormatError> {
        let text = self.required("ElementType")?;
        // MET_*_ARRAY types are the scalar type with ElementNumberOfChannels components.
        let base = text.strip_suffix("_ARRAY").unwrap_or(text);
        let element = match base {
            "MET_UCHAR" => ElementType::U8,
            "MET_CHAR" => ElementType::I8,
            "MET_USHORT" => ElementType::U16,
            "MET_SHORT" => ElementType::I16,
            "MET_UINT" | "MET_ULONG" => ElementType::U32,
            "MET_INT" | "MET_LONG" => ElementType::I32,
            "MET_ULONG_LONG" => ElementType::U64,
            "MET_LONG_LONG" => ElementType::I64,
            "MET_FLOAT" => ElementType::F32,
            "MET_DOUBLE" => ElementType::F64,
            _ => return Err(self.unsupported(format!("ElementType {:?}", shorten(text)))),
        };
        Ok(element)
    }

    fn compressed_size(&self) -> Result<Option<u64>, FormatError> {
        match self.get("CompressedDataSize") {
            None => Ok(None),
            Some(t) => Ok(Some(self.number::<u64>("CompressedDataSize", t)?).filter(|&n| n > 0)),
        }
    }

    fn header_size(&self) -> Result<i64, FormatError> {
        let Some(text) = self.get("HeaderSize") else {
            return Ok(0);
        };
        match self.number::<i64>("HeaderSize", text)? {
            n if n >= -1 => Ok(n),
            _ => Err(self.bad(
                "HeaderSize",
                text,
                "must be -1 (data at the end) or at least 0",
            )),
        }
    }

    fn data_file(&self) -> Result<DataFile, FormatError> {
        let text = self.required("ElementDataFile")?;
        if text.eq_ignore_ascii_case("local") {
            return Ok(DataFile::Local);
        }
        let first = text.split_ascii_whitespace().next().unwrap_or_default();
        if first.eq_ignore_ascii_case("list") || text.contains('%') {
            return Err(self.unsupported(format!(
                "ElementDataFile {:?}: multi-file data (LIST or a %d pattern); only one data file is read",
                shorten(text)
            )));
        }
        if text.is_empty() {
            return Err(self.bad("ElementDataFile", text, "empty file name"));
        }
        Ok(DataFile::File(text.to_string()))
    }
}

/// MetaIO's boolean: true when the value starts with `T`, `t` or `1`.
fn truthy(text: &str) -> bool {
    text.starts_with(['T', 't', '1'])
}
