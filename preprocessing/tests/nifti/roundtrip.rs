//! Reading every datatype and byte order, scaling, the affine rules, and write/read round trips.

use std::path::Path;

use autoseg_preprocessing::{
    read_header, read_image, read_image_from_bytes, read_label_map, read_label_map_from_bytes,
    write_image, write_label_map, DataType, Geometry, HeaderGeometry, Image, LabelMap, Shape3,
    Spacing, Volume,
};
use ndarray::{Array4, ShapeBuilder};

use super::{gzip, Spec, DATATYPES};

const XYZ: [i16; 3] = [4, 3, 2];

/// Voxel values for a datatype: distinct, exactly representable, including its extremes where
/// f32 holds them exactly.
fn values(signed: bool, size: usize, float: bool) -> Vec<f64> {
    let n = 24;
    (0..n)
        .map(|i| {
            let v = i as f64 * 5.0;
            match (signed, float, size) {
                (_, true, _) => v - 50.25,
                (true, false, 1) => v - 60.0,
                (true, false, _) => v * 100.0 - 6000.0,
                (false, false, 1) => v + 100.0,
                (false, false, _) => v * 100.0,
            }
        })
        .collect()
}

#[test]
fn every_datatype_in_both_byte_orders_plain_and_gzip() {
    for &(code, size, signed, float) in &DATATYPES {
        for big_endian in [false, true] {
            let mut spec = Spec::new(code, XYZ);
            spec.big_endian = big_endian;
            let vals = values(signed, size, float);
            let plain = spec.file(&vals);
            for bytes in [plain.clone(), gzip(&plain)] {
                let img = read_image_from_bytes(&bytes, Path::new("t.nii")).unwrap();
                // (c, z, y, x) with x fastest: voxel (x, y, z) is file index x + 4 y + 12 z.
                assert_eq!(img.data.shape(), &[1, 2, 3, 4], "datatype {code}");
                assert_eq!(
                    img.data[[0, 1, 2, 3]] as f64,
                    vals[3 + 4 * 2 + 12],
                    "datatype {code} be {big_endian}"
                );
                let got: Vec<f64> = img.data.iter().map(|&v| v as f64).collect();
                assert_eq!(got, vals, "datatype {code} big-endian {big_endian}");
                assert_eq!(img.geometry.spacing(), Spacing([3.0, 2.0, 1.5]));
            }
        }
    }
}

#[test]
fn header_reports_datatype_and_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.nii");
    let mut spec = Spec::new(512, XYZ);
    spec.big_endian = true;
    std::fs::write(&path, spec.file(&[7.0; 24])).unwrap();
    let info = read_header(&path).unwrap();
    assert_eq!(info.datatype, DataType::U16);
    assert!(!info.nifti2);
    assert_eq!(info.geometry.shape(), Shape3([2, 3, 4]));
}

#[test]
fn scaling_is_applied_and_unset_slopes_are_ignored() {
    let raw = [-2.0, 0.0, 3.0, 100.0];
    let mut spec = Spec::new(4, [4, 1, 1]);
    spec.slope = 0.5;
    spec.inter = -10.0;
    let img = read_image_from_bytes(&spec.file(&raw), Path::new("s.nii")).unwrap();
    assert_eq!(
        img.data.iter().copied().collect::<Vec<_>>(),
        vec![-11.0, -10.0, -8.5, 40.0]
    );
    for unset in [0.0, f32::NAN] {
        spec.slope = unset;
        let img = read_image_from_bytes(&spec.file(&raw), Path::new("s.nii")).unwrap();
        assert_eq!(
            img.data.iter().copied().collect::<Vec<_>>(),
            vec![-2.0, 0.0, 3.0, 100.0]
        );
    }
    // Scaled integer labels are labels.
    spec.slope = 2.0;
    spec.inter = 4.0;
    let labels =
        read_label_map_from_bytes(&spec.file(&[0.0, 1.0, 2.0, 3.0]), Path::new("l.nii")).unwrap();
    assert_eq!(
        labels.data.iter().copied().collect::<Vec<_>>(),
        vec![4, 6, 8, 10]
    );
}

#[test]
fn affine_uses_sform_then_qform_then_pixdim() {
    let mut spec = Spec::new(2, XYZ);
    spec.srow = [
        [0.0, 0.0, 3.0, 5.0],
        [-1.5, 0.0, 0.0, 6.0],
        [0.0, 2.0, 0.0, 7.0],
    ];
    spec.qoffset = [-1.0, -2.0, -3.0];
    spec.quatern = [0.0, 0.0, 1.0]; // 180 degrees about z: diag(-1, -1, 1)
    spec.qform_code = 1;
    spec.sform_code = 2;
    let read = |s: &Spec| read_image_from_bytes(&s.file(&[0.0; 24]), Path::new("a.nii")).unwrap();
    assert_eq!(read(&spec).geometry.affine().0[0], [0.0, 0.0, 3.0, 5.0]);
    spec.sform_code = 0;
    let q = read(&spec).geometry.affine().0;
    assert_eq!(
        [q[0][0], q[1][1], q[2][2], q[0][3], q[2][3]],
        [-1.5, -2.0, 3.0, -1.0, -3.0]
    );
    spec.pixdim[0] = -1.0; // qfac -1 flips the z column
    assert_eq!(read(&spec).geometry.affine().0[2][2], -3.0);
    spec.qform_code = 0;
    // nibabel base affine: diag(-1.5, 2, 3), centre of the 4 x 3 x 2 grid at the origin.
    let b = read(&spec).geometry.affine().0;
    assert_eq!(
        [b[0][0], b[0][3], b[1][3], b[2][3]],
        [-1.5, 2.25, -2.0, -1.5]
    );
}

#[test]
fn singleton_fourth_axis_and_two_d_files_are_volumes() {
    let mut spec = Spec::new(16, XYZ);
    spec.dim = [4, 4, 3, 2, 1, 1, 1, 1];
    let img = read_image_from_bytes(&spec.file(&[1.0; 24]), Path::new("4d.nii")).unwrap();
    assert_eq!(img.data.shape(), &[1, 2, 3, 4]);
    spec.dim = [2, 4, 3, 1, 1, 1, 1, 1];
    let img = read_image_from_bytes(&spec.file(&[1.0; 12]), Path::new("2d.nii")).unwrap();
    assert_eq!(img.data.shape(), &[1, 1, 3, 4]);
    // nnU-Net's SimpleITK reader: 2-D spacing (999 * max spacing, sy, sx).
    assert_eq!(img.geometry.spacing(), Spacing([999.0 * 2.0, 2.0, 1.5]));
}

fn oblique_geometry(shape: Shape3) -> Geometry {
    // Values exact in f32, which NIfTI-1 stores.
    let mut h = HeaderGeometry::axis_aligned(Spacing([3.0, 0.75, 0.625]), [-100.0, 20.5, 7.25]);
    h.quatern = [0.125, -0.25, 0.375];
    h.pixdim[0] = -1.0;
    h.srow[0][1] = 0.125;
    h.xyzt_units = 10;
    Geometry::new(shape, h)
}

#[test]
fn written_images_read_back_equal_with_unchanged_geometry() {
    let dir = tempfile::tempdir().unwrap();
    let shape = Shape3([3, 5, 7]);
    let data = Array4::from_shape_fn((1, 3, 5, 7), |(_, z, y, x)| {
        (z * 100 + y * 10 + x) as f32 - 0.5
    });
    let image = Image {
        data,
        geometry: oblique_geometry(shape),
    };
    for (name, level) in [("a.nii", 0), ("b.nii.gz", 1), ("c.nii.gz", 9)] {
        let path = dir.path().join(name);
        write_image(&path, &image, level).unwrap();
        let back = read_image(&path).unwrap();
        assert_eq!(back, image, "{name}");
        assert_eq!(back.geometry.header(), image.geometry.header());
    }
    // A Fortran-order array holds the same voxels in another memory order; written in C order.
    let mut flipped = image.clone();
    flipped.data = Array4::zeros((1, 3, 5, 7).f());
    flipped.data.assign(&image.data);
    assert!(!flipped.data.is_standard_layout());
    let path = dir.path().join("f.nii");
    write_image(&path, &flipped, 0).unwrap();
    assert_eq!(read_image(&path).unwrap().data, image.data);
}

#[test]
fn label_maps_are_written_as_u8_below_255_else_u16() {
    let dir = tempfile::tempdir().unwrap();
    let shape = Shape3([2, 2, 2]);
    let geometry = oblique_geometry(shape);
    for (max, expected) in [
        (254u16, DataType::U8),
        (255, DataType::U16),
        (1000, DataType::U16),
    ] {
        let data = Array4::from_shape_fn((1, 2, 2, 2), |(_, z, y, x)| {
            if z + y + x == 3 {
                max
            } else {
                (x + 2 * y) as u16
            }
        });
        let labels = LabelMap {
            data,
            geometry: geometry.clone(),
        };
        let path = dir.path().join(format!("l{max}.nii.gz"));
        write_label_map(&path, &labels, 6).unwrap();
        assert_eq!(read_header(&path).unwrap().datatype, expected);
        assert_eq!(read_label_map(&path).unwrap(), labels);
    }
}

#[test]
fn large_volume_round_trips_through_gzip() {
    // Bigger than one decode chunk (256 Ki voxels) and one write chunk.
    let dir = tempfile::tempdir().unwrap();
    let shape = Shape3([9, 200, 190]);
    let data = Array4::from_shape_fn((1, 9, 200, 190), |(_, z, y, x)| {
        ((z * 7919 + y * 31 + x) % 1000) as f32 * 0.25
    });
    let image: Volume<f32> = Volume {
        data,
        geometry: oblique_geometry(shape),
    };
    let path = dir.path().join("big.nii.gz");
    write_image(&path, &image, 1).unwrap();
    assert_eq!(read_image(&path).unwrap(), image);
}

#[test]
fn geometry_not_exact_in_f32_round_trips_within_allclose() {
    let dir = tempfile::tempdir().unwrap();
    let shape = Shape3([2, 2, 2]);
    let h = HeaderGeometry::axis_aligned(Spacing([3.3, 0.8, 0.8]), [0.1, -0.2, 0.3]);
    let image = Image {
        data: Array4::zeros((1, 2, 2, 2)),
        geometry: Geometry::new(shape, h),
    };
    let path = dir.path().join("g.nii.gz");
    write_image(&path, &image, 1).unwrap();
    let back = read_image(&path).unwrap();
    let diff = back.geometry.compare(&image.geometry);
    assert!(diff.is_match(), "{diff:?}");
    assert!(
        diff.max_spacing_diff > 0.0 && diff.max_spacing_diff < 1e-6,
        "{diff:?}"
    );
}
