//! Tests of the NRRD and MetaImage codecs: known answers from files SimpleITK wrote and read
//! (`fixtures/data/formats/`, made by `scripts/make_format_fixtures.py` with SimpleITK 2.5.7),
//! bit-identical write-back, fresh writes, hostile files, and byte mutations of every fixture.

mod golden;
mod hostile;
mod mutation;
mod writes;

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::RawImage;
use crate::test_support::{self, element_of, floats};

fn fixture_dir() -> PathBuf {
    test_support::fixture_dir("formats")
}

fn expected() -> serde_json::Map<String, Value> {
    test_support::json_object(&fixture_dir().join("expected.json"))
}

fn assert_close(name: &str, what: &str, got: &[f64], want: &[f64]) {
    test_support::assert_close(&format!("{name}: {what}"), got, want, 1e-12);
}

/// Asserts that `image` is what SimpleITK reported for fixture `name`.
fn assert_like_simpleitk(name: &str, image: &RawImage, want: &Value) {
    let size: Vec<usize> = floats(&want["size"]).iter().map(|&s| s as usize).collect();
    assert_eq!(image.dims, size, "{name}: size");
    assert_eq!(
        image.components,
        want["components"].as_u64().unwrap() as usize,
        "{name}: components"
    );
    assert_eq!(
        image.element,
        element_of(want["pixel"].as_str().unwrap()),
        "{name}: type"
    );
    assert_close(name, "spacing", &image.spacing, &floats(&want["spacing"]));
    assert_close(name, "origin", &image.origin, &floats(&want["origin"]));
    assert_close(
        name,
        "direction",
        &image.direction,
        &floats(&want["direction"]),
    );
    assert_eq!(
        image.to_f64(),
        floats(&want["values"]),
        "{name}: voxel values"
    );
}

/// Every file of `dir`, by name.
fn files_of(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The data files a detached fixture header names (copied beside mutated headers).
fn data_files_of(name: &str) -> Vec<String> {
    let text = std::fs::read_to_string(fixture_dir().join(name)).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            l.strip_prefix("data file: ")
                .or_else(|| l.strip_prefix("ElementDataFile = "))
        })
        .filter(|f| !f.eq_ignore_ascii_case("local"))
        .map(str::to_string)
        .collect()
}
