//! Fuzz target: arbitrary bytes as an NRRD (`.nrrd`), MetaImage (`.mha`) or GIPL (`.gipl`)
//! file, the first byte choosing. Reading must never panic; whatever reads writes back to the
//! same bytes (its source is kept) and reads back to the same image.
#![no_main]

#[path = "common.rs"]
mod common;

use autoseg_preprocessing::formats::{read_image, write_image};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Some((&choice, bytes)) = input.split_first() else {
        return;
    };
    let ending = [".nrrd", ".mha", ".gipl"][usize::from(choice % 3)];
    let path = common::file_of(bytes, &format!("in{ending}"));
    let Ok(image) = read_image(&path) else {
        return;
    };
    let back_path = common::scratch().join(format!("back{ending}"));
    if write_image(&image, &back_path).is_ok() {
        let written = std::fs::read(&back_path).expect("the file just written");
        assert!(written == bytes, "{ending}: the write-back differs from the file read");
        let back = read_image(&back_path).expect("a file we wrote reads back");
        assert_eq!(back, image, "{ending}: the write-back reads back differently");
    }
});
