//! Known answers: every fixture read as SimpleITK 2.5.7 reads it (dims, spacing, origin and
//! direction to 1e-12, every voxel exactly), and written back byte for byte.

use super::super::{read_image, write_image, ElementType};
use super::{assert_like_simpleitk, expected, files_of, fixture_dir};

#[test]
fn every_fixture_reads_as_simpleitk_reads_it() {
    let expected = expected();
    assert!(
        expected.len() >= 28,
        "expected.json lists {} images",
        expected.len()
    );
    for (name, want) in &expected {
        let image = read_image(&fixture_dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_like_simpleitk(name, &image, want);
        assert!(image.has_source(), "{name}");
    }
}

#[test]
fn ras_las_and_scanner_spaces_map_to_lps_as_itk_does() {
    // The same header in three spaces: ITK flips x and y for RAS, y for LAS (A to P), nothing
    // for scanner-xyz (its frame is not converted).
    let read = |n: &str| read_image(&fixture_dir().join(n)).unwrap();
    let (ras, las, scanner) = (read("ras.nrrd"), read("las.nrrd"), read("scanner.nrrd"));
    assert_eq!(ras.origin, vec![-1.0, -2.0, 3.0]);
    assert_eq!(las.origin, vec![1.0, -2.0, 3.0]);
    assert_eq!(scanner.origin, vec![1.0, 2.0, 3.0]);
    // Axis 0 is (0,2,0) in the file: spacing 2, direction column 0 = (0, -1, 0) in LPS for RAS.
    assert_eq!(ras.spacing[0], 2.0);
    assert_eq!(
        [ras.direction[0], ras.direction[3], ras.direction[6]],
        [-0.0, -1.0, 0.0]
    );
    assert_eq!(
        [las.direction[0], las.direction[3], las.direction[6]],
        [0.0, -1.0, 0.0]
    );
}

#[test]
fn every_fixture_writes_back_bit_identically() {
    for name in expected().keys() {
        let image = read_image(&fixture_dir().join(name)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        write_image(&image, &dir.path().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let written = files_of(dir.path());
        assert!(written.contains(name), "{name}: {written:?}");
        for file in written {
            let got = std::fs::read(dir.path().join(&file)).unwrap();
            let want = std::fs::read(fixture_dir().join(&file)).unwrap();
            assert!(got == want, "{name}: {file} differs after write-back");
        }
    }
}

#[test]
fn changed_voxels_keep_the_header_and_encoding() {
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "ct_gzip.nrrd",
        "ascii.nrrd",
        "vec_last.nrrd",
        "ct.mha",
        "ascii.mha",
        "ct_detached.nhdr",
    ] {
        let original = std::fs::read(fixture_dir().join(name)).unwrap();
        let mut image = read_image(&fixture_dir().join(name)).unwrap();
        let size = image.element.size();
        // Change every value (the lowest byte, so that it stays valid for its type).
        for voxel in image.data.chunks_exact_mut(size) {
            voxel[0] ^= 1;
        }
        let target = dir.path().join(name);
        write_image(&image, &target).unwrap();
        let written = std::fs::read(&target).unwrap();
        let header_len = header_end(&original);
        assert_eq!(
            &written[..header_len],
            &original[..header_len],
            "{name}: header kept"
        );
        let back = read_image(&target).unwrap();
        assert_eq!(back.data, image.data, "{name}: new voxels read back");
        assert_eq!(back.direction, image.direction, "{name}");
    }
}

#[test]
fn a_compressed_metaimage_with_changed_voxels_gets_a_fresh_header() {
    // ct_z.mha records CompressedDataSize, which new voxels change: the writer starts afresh.
    let dir = tempfile::tempdir().unwrap();
    let mut image = read_image(&fixture_dir().join("ct_z.mha")).unwrap();
    image.data[0] ^= 0x55;
    let target = dir.path().join("ct_z.mha");
    write_image(&image, &target).unwrap();
    let text = String::from_utf8_lossy(&std::fs::read(&target).unwrap()).into_owned();
    assert!(
        text.starts_with("ObjectType = Image\nNDims = 3\n"),
        "{text}"
    );
    let back = read_image(&target).unwrap();
    assert_eq!(
        (back.data, back.spacing, back.origin),
        (image.data, image.spacing, image.origin)
    );
    assert_eq!(back.direction, image.direction);
    assert_eq!(back.element, ElementType::I16);
}

/// Bytes of a fixture's header: up to NRRD's blank line or MetaImage's `LOCAL` line, else the
/// whole (detached) header.
fn header_end(bytes: &[u8]) -> usize {
    let find = |pat: &[u8]| {
        bytes
            .windows(pat.len())
            .position(|w| w == pat)
            .map(|i| i + pat.len())
    };
    find(b"\n\n")
        .or_else(|| find(b"= LOCAL\n"))
        .unwrap_or(bytes.len())
}
