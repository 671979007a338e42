//! Fuzz target: arbitrary bytes as a `.nii`/`.nii.gz` file. Reading must never panic; whatever
//! reads as an image must write and read back identically.
#![no_main]

use std::path::Path;

use autoseg_preprocessing::{
    read_image_from_bytes, read_label_map_from_bytes, write_image, HeaderGeometry,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let name = Path::new("fuzz.nii.gz");
    let _ = read_label_map_from_bytes(bytes, name);
    let Ok(image) = read_image_from_bytes(bytes, name) else {
        return;
    };
    if image.data.len() > 1 << 20 {
        return;
    }
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join("back.nii");
    if write_image(&path, &image, 0).is_ok() {
        let written = std::fs::read(&path).expect("the file just written");
        let back = read_image_from_bytes(&written, name).expect("a file we wrote reads back");
        assert_eq!(back.data.shape(), image.data.shape());
        assert!(back
            .data
            .iter()
            .zip(image.data.iter())
            .all(|(a, b)| a.to_bits() == b.to_bits()));
        assert_eq!(
            header_bits(&back.geometry.header()),
            header_bits(&image.geometry.header())
        );
    }
});

/// The header's geometry as NIfTI-1 stores it (f32 bits, so NaN compares equal to itself and
/// NIfTI-2 doubles compare after the f32 rounding writing implies).
fn header_bits(h: &HeaderGeometry) -> (Vec<u32>, i16, i16, u8) {
    let floats = h
        .pixdim
        .iter()
        .chain(&h.quatern)
        .chain(&h.qoffset)
        .chain(h.srow.iter().flatten());
    let bits = floats.map(|&v| (v as f32).to_bits()).collect();
    (bits, h.qform_code, h.sform_code, h.xyzt_units)
}
