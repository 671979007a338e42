//! The committed ITK example head (Apache-2.0, fixtures/data/itk_head): values and geometry as
//! nibabel 5.4.2 reads them (`np.asanyarray(img.dataobj)`, `img.affine`), and write/read back.

use autoseg_preprocessing::{
    read_header, read_image, read_label_map, write_image, write_label_map, Affine, DataType,
    Shape3, Spacing,
};

use super::itk_head_dir;

/// nibabel: `img.affine` of all three files (sform, code 1).
const AFFINE: Affine = Affine([
    [-2.0, 0.0, 0.0, 0.0],
    [0.0, 0.0, 3.0, -254.0],
    [0.0, 2.0, 0.0, 0.0],
    [0.0, 0.0, 0.0, 1.0],
]);

#[test]
fn t1_image_matches_nibabel() {
    let img = read_image(&itk_head_dir().join("KmeansTest_T1UCharRaw.nii.gz")).unwrap();
    assert_eq!(img.data.shape(), &[1, 62, 128, 128]);
    assert_eq!(img.geometry.spacing(), Spacing([3.0, 2.0, 2.0]));
    assert_eq!(img.geometry.affine(), AFFINE);
    // nibabel: a.sum() == 19533798, a[64, 60, 30] == 85 (x, y, z), a[10, 20, 5] == 0.
    assert_eq!(
        img.data.iter().map(|&v| v as f64).sum::<f64>(),
        19_533_798.0
    );
    assert_eq!(img.data[[0, 30, 60, 64]], 85.0);
    assert_eq!(img.data[[0, 5, 20, 10]], 0.0);
    let info = read_header(&itk_head_dir().join("KmeansTest_T1UCharRaw.nii.gz")).unwrap();
    assert_eq!(info.datatype, DataType::I16);
    assert_eq!(info.geometry.header().qform_code, 2);
    assert_eq!(info.geometry.header().sform_code, 1);
    // The qform (quaternion (0, 0.7071, 0.7071), nibabel get_qform) agrees with the sform.
    assert!(info.geometry.header().qform().max_abs_diff(&AFFINE) < 1e-5);
}

#[test]
fn label_maps_match_nibabel() {
    // nibabel: sum, value at (x, y, z) = (64, 60, 30), and the set of labels.
    let cases = [
        (
            "KmeansTest_T1KmeansPrelimSegmentation.nii.gz",
            1_753_763u64,
            5u16,
            vec![0u16, 1, 2, 3, 4, 5, 6],
        ),
        (
            "KmeansTest_T1RawSkullStrip.nii.gz",
            754_913,
            6,
            vec![0, 4, 5, 6],
        ),
    ];
    for (name, sum, at, labels) in cases {
        let map = read_label_map(&itk_head_dir().join(name)).unwrap();
        assert_eq!(
            map.data.iter().map(|&v| u64::from(v)).sum::<u64>(),
            sum,
            "{name}"
        );
        assert_eq!(map.data[[0, 30, 60, 64]], at, "{name}");
        let mut seen: Vec<u16> = map.data.iter().copied().collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen, labels, "{name}");
        assert_eq!(map.geometry.shape(), Shape3([62, 128, 128]));
        assert_eq!(map.geometry.affine(), AFFINE);
    }
}

#[test]
fn real_files_written_back_overlay_their_source() {
    let dir = tempfile::tempdir().unwrap();
    let src = itk_head_dir().join("KmeansTest_T1UCharRaw.nii.gz");
    let img = read_image(&src).unwrap();
    let out = dir.path().join("t1.nii.gz");
    write_image(&out, &img, 1).unwrap();
    let back = read_image(&out).unwrap();
    assert_eq!(back, img);
    assert!(back.geometry.compare(&img.geometry).is_match());
    let seg = read_label_map(&itk_head_dir().join("KmeansTest_T1RawSkullStrip.nii.gz")).unwrap();
    let out = dir.path().join("mask.nii");
    write_label_map(&out, &seg, 0).unwrap();
    assert_eq!(read_header(&out).unwrap().datatype, DataType::U8);
    assert_eq!(read_label_map(&out).unwrap(), seg);
}
