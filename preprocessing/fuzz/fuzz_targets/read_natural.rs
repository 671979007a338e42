//! Fuzz target: arbitrary bytes as a `.png`, `.bmp`, `.tif` or `.tiff` file (the first byte
//! chooses), read through autoseg's image interface as an image and as a label map. Reading
//! must never panic; a label map that reads writes and reads back to the same labels.
#![no_main]

#[path = "common.rs"]
mod common;

use autoseg_preprocessing::{read_image, read_label_map, write_label_map};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Some((&choice, bytes)) = input.split_first() else {
        return;
    };
    let ending = [".png", ".bmp", ".tif", ".tiff"][usize::from(choice % 4)];
    let path = common::file_of(bytes, &format!("in_0000{ending}"));
    let _ = read_image(&path);
    let Ok(labels) = read_label_map(&path) else {
        return;
    };
    let back_path = common::scratch().join(format!("back{ending}"));
    if write_label_map(&back_path, &labels, 1).is_ok() {
        let back = read_label_map(&back_path).expect("a label map we wrote reads back");
        assert_eq!(back.data, labels.data, "{ending}: labels differ after a write");
    }
});
