//! The augmentation setup nnU-Net derives from the patch size: dummy-2D augmentation, rotation
//! range, mirror axes and the enlarged crop `P0`.
//!
//! nnU-Net: `nnUNetTrainer.configure_rotation_dummyDA_mirroring_and_inital_patch_size`, and
//! `nnUNetTrainerDA5`'s override of it (the same rules, a crop enlarged for scaling down to 0.7).

use std::f64::consts::PI;

use crate::sampling::{initial_patch_size_scaled, DataError};

/// The smallest scale factor the default set's crop allows for (`get_patch_size(..,
/// (0.85, 1.25))`).
const NNUNET_MIN_SCALE: f64 = 0.85;

/// The smallest scale factor DA5's crop allows for (`get_patch_size(.., (0.7, 1.43))`).
const DA5_MIN_SCALE: f64 = 0.7;

/// nnU-Net's `ANISO_THRESHOLD`: a 3D patch whose largest extent exceeds 3 × its axis 0 gets
/// dummy-2D augmentation.
const ANISO_THRESHOLD: f64 = 3.0;

/// How spatial augmentation treats the axes of a `(c, z, y, x)` sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpatialMode {
    /// A 3D configuration: rotation, scaling, blur and low resolution act on all three axes.
    Volumetric,
    /// A 3D configuration with dummy-2D augmentation: rotation, scaling and low resolution act
    /// in the `(y, x)` plane of every slice; blur and mirroring still use all three axes.
    Dummy2d,
    /// A 2D configuration: samples are `(c, 1, y, x)` and everything acts on `(y, x)`.
    Planar,
}

impl SpatialMode {
    /// Whether rotation, scaling and low-resolution simulation leave axis 0 alone.
    pub fn in_plane(self) -> bool {
        !matches!(self, SpatialMode::Volumetric)
    }

    /// Axes `(z = 0, y = 1, x = 2)` that blurring acts on.
    pub fn blur_axes(self) -> &'static [usize] {
        match self {
            SpatialMode::Planar => &[1, 2],
            _ => &[0, 1, 2],
        }
    }
}

/// Augmentation settings derived from a configuration's patch size.
#[derive(Clone, Debug, PartialEq)]
pub struct DaSetup {
    /// How the axes are treated.
    pub mode: SpatialMode,
    /// Rotation angles are drawn from `U(-rotation_max, rotation_max)` (radians).
    pub rotation_max: f64,
    /// Axes `(z = 0, y = 1, x = 2)` mirrored with p = 0.5 each.
    pub mirror_axes: Vec<usize>,
    /// The network's patch `(z, y, x)` (`z = 1` for 2D).
    pub patch: [usize; 3],
    /// The enlarged crop `P0` `(z, y, x)` the sampler reads (`z = 1` for 2D).
    pub crop: [usize; 3],
}

impl DaSetup {
    /// nnU-Net's setup for a configuration `patch_size` of 2 (2D) or 3 axes: 2D rotates ±15°
    /// when `max/min > 1.5`, else ±180°, mirrors `(y, x)`; 3D uses dummy-2D when
    /// `max(ps) / ps[0] > 3` (then ±180°, `P0[0] = ps[0]`), else ±30°, and mirrors all axes.
    ///
    /// # Errors
    /// [`DataError::PatchSize`] for a patch that is not 2 or 3 positive extents.
    pub fn nnunet(patch_size: &[usize]) -> Result<DaSetup, DataError> {
        DaSetup::with_min_scale(patch_size, NNUNET_MIN_SCALE)
    }

    /// nnU-Net's DA5 setup (`nnUNetTrainerDA5` and its `ord0` variants): rotation range, mirror
    /// axes and dummy-2D rule as [`DaSetup::nnunet`], the crop enlarged for zooming out to 1/0.7
    /// instead of 1/0.85 (DA5 scales by (0.7, 1.43)).
    ///
    /// # Errors
    /// [`DataError::PatchSize`] for a patch that is not 2 or 3 positive extents.
    pub fn da5(patch_size: &[usize]) -> Result<DaSetup, DataError> {
        DaSetup::with_min_scale(patch_size, DA5_MIN_SCALE)
    }

    /// The setup whose crop survives rotation and zooming out to `1 / min_scale`.
    fn with_min_scale(patch_size: &[usize], min_scale: f64) -> Result<DaSetup, DataError> {
        if !(2..=3).contains(&patch_size.len()) || patch_size.contains(&0) {
            return Err(DataError::PatchSize {
                patch: patch_size.to_vec(),
            });
        }
        let max = *patch_size.iter().max().expect("patch has 2 or 3 axes") as f64;
        let min = *patch_size.iter().min().expect("patch has 2 or 3 axes") as f64;
        let degrees = |d: f64| d / 360.0 * 2.0 * PI;
        let (mode, rotation_max, mirror_axes) = if patch_size.len() == 2 {
            let rot = if max / min > 1.5 { 15.0 } else { 180.0 };
            (SpatialMode::Planar, degrees(rot), vec![1, 2])
        } else if max / patch_size[0] as f64 > ANISO_THRESHOLD {
            (SpatialMode::Dummy2d, degrees(180.0), vec![0, 1, 2])
        } else {
            (SpatialMode::Volumetric, degrees(30.0), vec![0, 1, 2])
        };
        let mut crop = initial_patch_size_scaled(patch_size, rotation_max, min_scale);
        if mode == SpatialMode::Dummy2d {
            crop[0] = patch_size[0];
        }
        let as3 = |p: &[usize]| -> [usize; 3] {
            if p.len() == 2 {
                [1, p[0], p[1]]
            } else {
                [p[0], p[1], p[2]]
            }
        };
        Ok(DaSetup {
            mode,
            rotation_max,
            mirror_axes,
            patch: as3(patch_size),
            crop: as3(&crop),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected P0 values: reference/nnunet.md §6.5 and the brief (nnU-Net 2.8.1
    // `get_patch_size` with the rotation chosen by `configure_rotation_dummyDA_...`).
    #[test]
    fn initial_patch_sizes_match_nnunet() {
        let check = |ps: &[usize], want: [usize; 3]| {
            assert_eq!(DaSetup::nnunet(ps).unwrap().crop, want, "patch {ps:?}");
        };
        check(&[128, 128, 128], [205, 205, 205]);
        check(&[40, 56, 40], [73, 80, 64]);
        check(&[80, 192, 160], [194, 289, 210]);
        check(&[512, 512], [1, 602, 602]);
    }

    // Expected values: nnU-Net 2.8.1 `get_patch_size(ps, rot, rot, rot, (0.7, 1.43))` as
    // `nnUNetTrainerDA5.configure_rotation_dummyDA_mirroring_and_inital_patch_size` calls it.
    #[test]
    fn da5_initial_patch_sizes_match_nnunet() {
        let check = |ps: &[usize], want: [usize; 3]| {
            let s = DaSetup::da5(ps).unwrap();
            assert_eq!(s.crop, want, "patch {ps:?}");
            let default = DaSetup::nnunet(ps).unwrap();
            assert_eq!(
                (s.mode, s.rotation_max, &s.mirror_axes, s.patch),
                (
                    default.mode,
                    default.rotation_max,
                    &default.mirror_axes,
                    default.patch
                )
            );
        };
        check(&[128, 128, 128], [249, 249, 249]);
        check(&[40, 56, 40], [89, 97, 78]);
        check(&[80, 192, 160], [236, 351, 255]);
        check(&[512, 512], [1, 731, 731]);
        check(&[512, 256], [1, 801, 365]);
        // Dummy 2D: axis 0 keeps the patch extent.
        check(&[20, 192, 160], [20, 274, 274]);
        assert!(DaSetup::da5(&[0, 4, 4]).is_err());
    }

    #[test]
    fn modes_follow_the_anisotropy_rule() {
        let s = DaSetup::nnunet(&[20, 192, 160]).unwrap();
        assert_eq!(s.mode, SpatialMode::Dummy2d);
        assert_eq!(s.crop[0], 20);
        assert!((s.rotation_max - PI).abs() < 1e-12);
        let s = DaSetup::nnunet(&[64, 192, 160]).unwrap();
        assert_eq!(s.mode, SpatialMode::Volumetric);
        assert!((s.rotation_max - PI / 6.0).abs() < 1e-12);
        let s = DaSetup::nnunet(&[512, 256]).unwrap();
        assert_eq!(s.mode, SpatialMode::Planar);
        assert!((s.rotation_max - PI / 12.0).abs() < 1e-12);
        assert_eq!(s.mirror_axes, vec![1, 2]);
    }

    #[test]
    fn rejects_bad_patch_sizes() {
        assert!(DaSetup::nnunet(&[64]).is_err());
        assert!(DaSetup::nnunet(&[0, 64, 64]).is_err());
    }
}
