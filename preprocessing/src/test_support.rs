//! What the codec tests share: the fixture folders, the expected values their Python scripts
//! wrote (`expected.json`), comparisons, and a deterministic byte mutator for the no-panic
//! tests.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::formats::ElementType;

/// `fixtures/data/<sub>`.
pub(crate) fn fixture_dir(sub: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/data")
        .join(sub)
}

/// A JSON file holding an object.
pub(crate) fn json_object(path: &Path) -> serde_json::Map<String, Value> {
    let text = std::fs::read_to_string(path).unwrap();
    match serde_json::from_str(&text).unwrap() {
        Value::Object(map) => map,
        other => panic!("{} is not an object: {other}", path.display()),
    }
}

/// A JSON array of numbers.
pub(crate) fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// The element type of a numpy dtype name (`bool` is how numpy names a 1-bit image's array).
pub(crate) fn element_of(dtype: &str) -> ElementType {
    match dtype {
        "uint8" | "bool" => ElementType::U8,
        "int8" => ElementType::I8,
        "uint16" => ElementType::U16,
        "int16" => ElementType::I16,
        "uint32" => ElementType::U32,
        "int32" => ElementType::I32,
        "uint64" => ElementType::U64,
        "int64" => ElementType::I64,
        "float32" => ElementType::F32,
        "float64" => ElementType::F64,
        other => panic!("unknown dtype {other}"),
    }
}

/// Asserts `got` equals `want` (the peer's numbers) entry by entry within `tolerance`.
pub(crate) fn assert_close(what: &str, got: &[f64], want: &[f64], tolerance: f64) {
    assert_eq!(got.len(), want.len(), "{what}: {got:?} vs {want:?}");
    for (g, w) in got.iter().zip(want) {
        assert!(
            (g - w).abs() <= tolerance,
            "{what}: {got:?} vs the peer's {want:?}"
        );
    }
}

/// xorshift64*: a fixed, seedable sequence (no dependency, the same on every run).
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    /// The next number.
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (0 for `n = 0`).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One to three random edits of `bytes`: a bit flipped, a byte replaced by a random or a
/// special one (separators and extremes of text headers and binary fields), digits inserted
/// (to grow sizes written as text), a run duplicated, or a cut.
pub(crate) fn mutate(bytes: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for _ in 0..1 + rng.below(3) {
        let at = rng.below(out.len() + 1);
        match rng.below(6) {
            0 if at < out.len() => out[at] ^= 1 << rng.below(8),
            1 if at < out.len() => out[at] = rng.next() as u8,
            2 => {
                let digits: Vec<u8> = (0..1 + rng.below(12))
                    .map(|_| b'0' + rng.below(10) as u8)
                    .collect();
                out.splice(at..at, digits);
            }
            3 if at < out.len() => {
                let end = (at + 1 + rng.below(16)).min(out.len());
                let chunk = out[at..end].to_vec();
                out.splice(at..at, chunk);
            }
            4 => out.truncate(at),
            _ if at < out.len() => {
                let special = [
                    b'\n', b' ', b'-', b'(', b')', b',', b':', b'=', b'#', 0x00, 0x7f, 0x80, 0xff,
                ];
                out[at] = special[rng.below(special.len())];
            }
            _ => {}
        }
    }
    out
}
