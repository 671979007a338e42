//! The Part 10 encoding the SEG writer uses: explicit VR little endian data sets kept sorted by
//! tag, with defined lengths everywhere, and the value formats it needs (DS, UIDs under 2.25,
//! dates, LO).

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

/// One encoded data set: encoded elements by tag (group << 16 | element).
#[derive(Default, Clone)]
pub(super) struct Ds(BTreeMap<u32, Vec<u8>>);

/// VRs with a 2-byte reserved field and a 4-byte length in explicit VR.
pub(super) fn long_vr(vr: &[u8; 2]) -> bool {
    matches!(
        vr,
        b"OB" | b"OW" | b"OF" | b"OD" | b"OL" | b"SQ" | b"UN" | b"UT" | b"UC" | b"UR"
    )
}

/// The header of an element with `len` value bytes.
pub(super) fn header(tag: u32, vr: &[u8; 2], len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(12);
    out.extend_from_slice(&((tag >> 16) as u16).to_le_bytes());
    out.extend_from_slice(&(tag as u16).to_le_bytes());
    out.extend_from_slice(vr);
    if long_vr(vr) {
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&(len as u32).to_le_bytes());
    } else {
        out.extend_from_slice(&(len as u16).to_le_bytes());
    }
    out
}

impl Ds {
    /// An element with raw value bytes, padded to even length (`\0` for UI and binary VRs,
    /// a space for text).
    pub(super) fn raw(&mut self, tag: u32, vr: &[u8; 2], value: &[u8]) -> &mut Ds {
        let mut value = value.to_vec();
        if value.len() % 2 == 1 {
            let pad = if matches!(vr, b"UI" | b"OB" | b"OW" | b"UN") {
                0
            } else {
                b' '
            };
            value.push(pad);
        }
        let mut out = header(tag, vr, value.len());
        out.extend_from_slice(&value);
        self.0.insert(tag, out);
        self
    }

    /// A text element.
    pub(super) fn text(&mut self, tag: u32, vr: &[u8; 2], value: &str) -> &mut Ds {
        self.raw(tag, vr, value.as_bytes())
    }

    /// A US element (one or more values).
    pub(super) fn us(&mut self, tag: u32, values: &[u16]) -> &mut Ds {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.raw(tag, b"US", &bytes)
    }

    /// A UL element.
    pub(super) fn ul(&mut self, tag: u32, values: &[u32]) -> &mut Ds {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.raw(tag, b"UL", &bytes)
    }

    /// An AT element (one tag).
    pub(super) fn at(&mut self, tag: u32, value: u32) -> &mut Ds {
        let mut bytes = ((value >> 16) as u16).to_le_bytes().to_vec();
        bytes.extend_from_slice(&(value as u16).to_le_bytes());
        self.raw(tag, b"AT", &bytes)
    }

    /// A DS element of several values.
    pub(super) fn ds(&mut self, tag: u32, values: &[f64]) -> &mut Ds {
        let text: Vec<String> = values.iter().map(|&v| fmt_ds(v)).collect();
        self.text(tag, b"DS", &text.join("\\"))
    }

    /// A sequence of items, with defined lengths.
    pub(super) fn seq(&mut self, tag: u32, items: Vec<Ds>) -> &mut Ds {
        let mut body = Vec::new();
        for item in items {
            let bytes = item.bytes();
            body.extend_from_slice(&0xFFFEu16.to_le_bytes());
            body.extend_from_slice(&0xE000u16.to_le_bytes());
            body.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            body.extend_from_slice(&bytes);
        }
        let mut out = header(tag, b"SQ", body.len());
        out.extend_from_slice(&body);
        self.0.insert(tag, out);
        self
    }

    /// The encoded elements in tag order.
    pub(super) fn bytes(&self) -> Vec<u8> {
        self.0.values().flatten().copied().collect()
    }
}

/// A DS value: the shortest text of `v` if it fits 16 characters, else fewer digits.
pub(super) fn fmt_ds(v: f64) -> String {
    let v = if v == 0.0 { 0.0 } else { v };
    let s = format!("{v}");
    if s.len() <= 16 {
        return s;
    }
    for prec in (0..=15).rev() {
        let s = format!("{v:.prec$}");
        let s = if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        };
        if s.len() <= 16 {
            return s;
        }
    }
    for prec in (0..=10).rev() {
        let s = format!("{v:.prec$e}");
        if s.len() <= 16 {
            return s;
        }
    }
    format!("{v:.0e}")
}

/// A coded entry item (CodeValue, CodingSchemeDesignator, CodeMeaning).
pub(super) fn code(value: &str, scheme: &str, meaning: &str) -> Ds {
    let mut d = Ds::default();
    d.text(0x0008_0100, b"SH", value)
        .text(0x0008_0102, b"SH", scheme)
        .text(0x0008_0104, b"LO", meaning);
    d
}

/// A new `2.25.<128-bit number>` UID (see the module docs).
pub(super) fn new_uid(salt: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut halves = [0u64; 2];
    for (i, half) in halves.iter_mut().enumerate() {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_usize(i);
        h.write_u128(nanos);
        h.write_u32(std::process::id());
        h.write_u64(count);
        h.write(salt.as_bytes());
        *half = h.finish();
    }
    let n = (u128::from(halves[0]) << 64) | u128::from(halves[1]);
    format!("2.25.{n}")
}

/// The UTC date (`YYYYMMDD`) and time (`HHMMSS`) now.
pub(super) fn now_utc() -> (String, String) {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        format!("{y:04}{m:02}{d:02}"),
        format!("{:02}{:02}{:02}", rem / 3600, rem / 60 % 60, rem % 60),
    )
}

/// A segment name as an LO value: at most 64 characters, no backslash.
pub(super) fn lo(name: &str) -> String {
    name.chars()
        .map(|c| if c == '\\' { '/' } else { c })
        .take(64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::dicom::seg::IMPLEMENTATION_CLASS_UID;

    #[test]
    fn ds_values_fit_sixteen_characters() {
        for v in [
            0.0,
            -0.0,
            1.5,
            -123.456,
            0.1 + 0.2,
            -std::f64::consts::FRAC_1_SQRT_2,
            123456.78901234567,
            1e-12,
            -3.3e30,
        ] {
            let s = fmt_ds(v);
            assert!(s.len() <= 16, "{v} -> {s}");
            let back: f64 = s.parse().unwrap();
            assert!((back - v).abs() <= 1e-9 * (1.0 + v.abs()), "{v} -> {s}");
        }
        assert_eq!(fmt_ds(-0.0), "0");
    }

    #[test]
    fn uids_are_new_and_valid() {
        let a = new_uid("x");
        let b = new_uid("x");
        assert_ne!(a, b);
        for u in [&a, &b, &IMPLEMENTATION_CLASS_UID.to_string()] {
            assert!(u.starts_with("2.25.") && u.len() <= 64, "{u}");
            assert!(u[5..].bytes().all(|c| c.is_ascii_digit()) && !u[5..].starts_with('0'));
        }
    }

    #[test]
    fn dates_are_plausible() {
        let (date, time) = now_utc();
        assert_eq!(date.len(), 8);
        assert_eq!(time.len(), 6);
        assert!(date.as_str() >= "20240101", "{date}");
    }
}
