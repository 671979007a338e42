//! A pre-scan of a DICOM file's element headers before dicom-rs parses it: dicom-rs reserves
//! and zero-fills every value's declared length before reading it, so a forged length of up
//! to 4 GiB would cost that much memory and time. The scan walks every element header (into
//! sequences and items, over values) and refuses any defined length that passes the bytes
//! left in the file (or in the inflated data set of a deflated file, itself capped by the
//! memory ceiling).

use std::io::Read;
use std::path::Path;

use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
use dicom_core::{Tag, VR};
use dicom_dictionary_std::StandardDataDictionary;

use super::super::FormatError;

/// Transfer syntaxes read as explicit VR big endian / implicit VR little endian / deflated.
const EXPLICIT_BE: &str = "1.2.840.10008.1.2.2";
const IMPLICIT_LE: &str = "1.2.840.10008.1.2";
const DEFLATED: &str = "1.2.840.10008.1.2.1.99";

const UNDEFINED: u32 = 0xFFFF_FFFF;

/// Checks the element lengths of `data` (the file after its 128-byte preamble, starting at
/// `DICM`); returns the data set's length in bytes (inflated, for a deflated data set).
pub(super) fn check_lengths(path: &Path, data: &[u8]) -> Result<usize, FormatError> {
    let bad = |reason: String| FormatError::BadHeader {
        path: path.to_path_buf(),
        reason,
    };
    // The meta group: explicit VR little endian, read as dicom-rs reads it: a group length
    // (0002,0000) first, then elements (of any group) until that many bytes are read; the
    // transfer syntax is the last (0002,0010) among them.
    let mut p = 4;
    let mut ts = String::new();
    let (header, len) = explicit_header(data, p, true)
        .filter(|&(_, len)| len == 4)
        .filter(|_| u16::from_le_bytes([data[p], data[p + 1]]) == 0x0002)
        .filter(|_| u16::from_le_bytes([data[p + 2], data[p + 3]]) == 0x0000)
        .filter(|&(header, _)| p + header + 4 <= data.len())
        .ok_or_else(|| bad("the file meta group does not start with its group length".into()))?;
    let group_length = u32_at(data, p + header, true) as usize;
    p += header + len as usize;
    let meta_start = p;
    while p - meta_start < group_length {
        let (header, len) = explicit_header(data, p, true).ok_or_else(|| {
            bad(format!(
                "file meta element at byte {} is cut or has no valid VR",
                p + 128
            ))
        })?;
        if len == UNDEFINED {
            return Err(bad(format!(
                "file meta element at byte {} has an undefined length",
                p + 128
            )));
        }
        let end = fits(data, p + header, len)
            .ok_or_else(|| bad(too_long(data, p, len, "file meta element")))?;
        if data[p..p + 4] == [0x02, 0x00, 0x10, 0x00] {
            ts = String::from_utf8_lossy(&data[p + header..end])
                .trim_end_matches(['\0', ' '])
                .to_string();
        }
        p = end;
    }
    let rest = &data[p..];
    match ts.as_str() {
        DEFLATED => {
            let ceiling = crate::limits::volume_ceiling();
            let mut inflated = Vec::new();
            flate2::read::DeflateDecoder::new(rest)
                .take(ceiling.saturating_add(1))
                .read_to_end(&mut inflated)
                .map_err(|e| bad(format!("corrupt deflated data set: {e}")))?;
            if inflated.len() as u64 > ceiling {
                return Err(bad(format!(
                    "the deflated data set inflates past the memory ceiling of {}",
                    crate::limits::gb(u128::from(ceiling))
                )));
            }
            walk(&inflated, true, true).map_err(bad)?;
            Ok(inflated.len())
        }
        IMPLICIT_LE => walk(rest, false, true).map_err(bad).map(|()| rest.len()),
        EXPLICIT_BE => walk(rest, true, false).map_err(bad).map(|()| rest.len()),
        _ => walk(rest, true, true).map_err(bad).map(|()| rest.len()),
    }
}

/// The end of a value of `len` bytes starting at `start`, when it fits in `data`.
fn fits(data: &[u8], start: usize, len: u32) -> Option<usize> {
    let end = start.checked_add(len as usize)?;
    (end <= data.len()).then_some(end)
}

fn too_long(data: &[u8], at: usize, len: u32, what: &str) -> String {
    format!(
        "{what} at data set byte {at} declares {len} bytes, but only {} remain",
        data.len().saturating_sub(at)
    )
}

fn u16_at(data: &[u8], p: usize, le: bool) -> u16 {
    let b = [data[p], data[p + 1]];
    if le {
        u16::from_le_bytes(b)
    } else {
        u16::from_be_bytes(b)
    }
}

fn u32_at(data: &[u8], p: usize, le: bool) -> u32 {
    let b = [data[p], data[p + 1], data[p + 2], data[p + 3]];
    if le {
        u32::from_le_bytes(b)
    } else {
        u32::from_be_bytes(b)
    }
}

/// The value representations of the standard (dicom-rs reads any other as a 4-byte-length
/// `UN`, which a linear walk cannot follow reliably, so they are refused).
const VRS: [&[u8; 2]; 34] = [
    b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT", b"OB",
    b"OD", b"OF", b"OL", b"OV", b"OW", b"PN", b"SH", b"SL", b"SQ", b"SS", b"ST", b"SV", b"TM",
    b"UC", b"UI", b"UL", b"UN", b"UR", b"US", b"UT", b"UV",
];

/// An explicit VR header at `p`: (header bytes, value length); `None` when cut or of an
/// unknown VR.
fn explicit_header(data: &[u8], p: usize, le: bool) -> Option<(usize, u32)> {
    let vr = data.get(p + 4..p + 6)?;
    if !VRS.iter().any(|v| v[..] == *vr) {
        return None;
    }
    let long = matches!(
        vr,
        b"OB"
            | b"OD"
            | b"OF"
            | b"OL"
            | b"OV"
            | b"OW"
            | b"SQ"
            | b"SV"
            | b"UC"
            | b"UN"
            | b"UR"
            | b"UT"
            | b"UV"
    );
    if long {
        if p + 12 > data.len() {
            return None;
        }
        Some((12, u32_at(data, p + 8, le)))
    } else {
        if p + 8 > data.len() {
            return None;
        }
        Some((8, u32::from(u16_at(data, p + 6, le))))
    }
}

/// Walks the data set's element headers linearly: sequences and items are entered (their
/// contents are elements), values are stepped over after their length is checked; items of
/// encapsulated pixel data are fragments and stepped over likewise.
/// The width of one value of a binary VR. dicom-rs reads `len / width` values of such an
/// element but moves on by `len` bytes, so a length that is not a multiple of the width would
/// put its parser out of step with the file (and a forged length after that past this scan).
fn value_width(vr: VR) -> Option<u32> {
    match vr {
        VR::US | VR::SS | VR::OW => Some(2),
        VR::AT | VR::UL | VR::SL | VR::FL | VR::OF | VR::OL => Some(4),
        VR::FD | VR::OD | VR::SV | VR::UV | VR::OV => Some(8),
        _ => None,
    }
}

fn walk(data: &[u8], explicit: bool, le: bool) -> Result<(), String> {
    let dictionary = StandardDataDictionary;
    let mut p = 0;
    // Nesting of undefined-length pixel data (encapsulated fragments follow until its
    // sequence delimiter).
    let mut in_fragments = false;
    // The ends of the defined-length sequences and items p is inside, innermost last: what
    // they hold must end exactly there (dicom-rs counts bytes to find their ends, and a value
    // running past one would put it out of step with the file).
    let mut ends: Vec<usize> = Vec::new();
    while p < data.len() {
        while let Some(&end) = ends.last() {
            match p.cmp(&end) {
                std::cmp::Ordering::Equal => {
                    ends.pop();
                }
                std::cmp::Ordering::Greater => {
                    return Err(format!(
                        "an element at data set byte {p} runs past the end of its sequence or item (byte {end})"
                    ))
                }
                std::cmp::Ordering::Less => break,
            }
        }
        let limit = ends.last().copied().unwrap_or(data.len());
        if p + 8 > limit {
            return Err(format!("an element header at data set byte {p} is cut"));
        }
        let within = |start: usize, len: u32, what: &str| {
            start
                .checked_add(len as usize)
                .filter(|&end| end <= limit)
                .ok_or_else(|| too_long(&data[..limit], p, len, what))
        };
        let group = u16_at(data, p, le);
        let element = u16_at(data, p + 2, le);
        if group == 0xFFFE {
            // Item, item delimiter, sequence delimiter: always tag + 4-byte length.
            let len = u32_at(data, p + 4, le);
            match element {
                0xE000 if len != UNDEFINED => {
                    let end = within(p + 8, len, "an item")?;
                    if in_fragments {
                        p = end;
                    } else {
                        ends.push(end);
                        p += 8;
                    }
                }
                0xE0DD => {
                    in_fragments = false;
                    p += 8;
                }
                0xE000 | 0xE00D => p += 8,
                // dicom-rs reads any other (FFFE,xxxx) as an element with a length to reserve.
                _ => {
                    return Err(format!(
                        "({group:04X},{element:04X}) at data set byte {p} is neither an item nor a delimiter"
                    ))
                }
            }
            continue;
        }
        let tag = Tag(group, element);
        let (header, len, vr) = if explicit {
            let (header, len) = explicit_header(&data[..limit], p, le).ok_or_else(|| {
                format!("the element header at data set byte {p} is cut or has no valid VR")
            })?;
            let vr = VR::from_binary([data[p + 4], data[p + 5]]);
            (header, len, vr)
        } else {
            let vr = dictionary.by_tag(tag).map(|e| e.vr().relaxed());
            (8, u32_at(data, p + 4, le), vr)
        };
        let sequence = vr == Some(VR::SQ);
        if let Some(width) = vr.and_then(value_width) {
            if len != UNDEFINED && len % width != 0 {
                return Err(format!(
                    "element {tag} at data set byte {p}: {len} bytes of {} are not whole {width}-byte values",
                    vr.map_or("?", |v| v.to_string())
                ));
            }
        }
        if len == UNDEFINED {
            if tag == Tag(0x7FE0, 0x0010) {
                in_fragments = true;
            } else if explicit && !sequence {
                return Err(format!(
                    "element {tag} at data set byte {p} has an undefined length but is not a sequence (not read)"
                ));
            }
            p += header;
        } else if sequence {
            ends.push(within(p + header, len, "a sequence")?);
            p += header;
        } else {
            p = within(p + header, len, &format!("element {tag}"))?;
        }
    }
    Ok(())
}
