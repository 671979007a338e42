//! A deterministic poor-man's fuzz (cargo-fuzz needs nightly Rust, which this toolchain lacks):
//! thousands of mutated and truncated files through every reader; each must return, not panic.

use std::path::Path;

use autoseg_preprocessing::{read_image_from_bytes, read_label_map_from_bytes};

use super::{gzip, itk_head_dir, Spec};

/// xorshift64*: a fixed, dependency-free sequence.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Mutates 1-4 bytes, mostly inside the header (either version's), sometimes to
/// "interesting" values.
fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut bytes = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = if rng.below(8) == 0 {
            rng.below(bytes.len())
        } else {
            rng.below(544.min(bytes.len()))
        };
        bytes[at] = match rng.below(4) {
            0 => 0,
            1 => 0xff,
            2 => 0x7f,
            _ => rng.next() as u8,
        };
    }
    if rng.below(4) == 0 {
        bytes.truncate(rng.below(bytes.len() + 1));
    }
    bytes
}

fn read_all(bytes: &[u8]) -> usize {
    let name = Path::new("fuzz.nii");
    usize::from(read_image_from_bytes(bytes, name).is_ok())
        + usize::from(read_label_map_from_bytes(bytes, name).is_ok())
}

#[test]
fn mutated_headers_never_panic() {
    let mut seeds = Vec::new();
    for (code, big_endian) in [(4, false), (16, true), (64, false), (2, true)] {
        let mut spec = Spec::new(code, [6, 5, 4]);
        spec.big_endian = big_endian;
        spec.qform_code = 1;
        spec.sform_code = 1;
        let values: Vec<f64> = (0..120).map(|i| (i % 7) as f64).collect();
        seeds.push(spec.file(&values));
        seeds.push(spec.nifti2_file(&values));
        // The NIfTI-2 seed is the same image: the mutations start from a valid file.
        let name = Path::new("seed.nii");
        let one = read_image_from_bytes(&seeds[seeds.len() - 2], name).unwrap();
        let two = read_image_from_bytes(&seeds[seeds.len() - 1], name).unwrap();
        assert_eq!(one.data, two.data);
        assert_eq!(one.geometry.spacing(), two.geometry.spacing());
    }
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut accepted = 0;
    for i in 0..12000 {
        let seed = &seeds[i % seeds.len()];
        let bytes = mutate(&mut rng, seed);
        accepted += read_all(&bytes);
        if i % 4 == 0 {
            accepted += read_all(&gzip(&bytes));
        }
    }
    // Some mutations hit unused header bytes and still read; most must be refused.
    assert!(accepted > 0 && accepted < 24_000, "accepted {accepted}");
}

#[test]
fn every_truncation_and_gzip_mutation_of_a_real_file_returns() {
    let real = std::fs::read(itk_head_dir().join("KmeansTest_T1RawSkullStrip.nii.gz")).unwrap();
    for cut in (0..real.len()).step_by(97) {
        assert!(
            read_all(&real[..cut]) == 0,
            "a cut at {cut} must be refused"
        );
    }
    let mut rng = Rng(42);
    for _ in 0..300 {
        let mut bytes = real.clone();
        let at = rng.below(bytes.len());
        bytes[at] ^= 1 << rng.below(8);
        read_all(&bytes);
    }
}
