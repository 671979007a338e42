//! ITK's geometry convention (SimpleITK's `GetSpacing`, `GetOrigin`, `GetDirection`, in LPS),
//! as the NRRD and MetaImage codecs read and write it, and its conversions to and from the
//! NIfTI fields autoseg's [`Geometry`](super::Geometry) also carries.

use serde::{Deserialize, Serialize};

use super::{Affine, HeaderGeometry, Shape3, Spacing};

/// The axes whose world coordinate changes sign between LPS (ITK) and RAS (NIfTI, nibabel).
const LPS_TO_RAS: [f64; 3] = [-1.0, -1.0, 1.0];

/// A grid's placement as ITK reports it, in the file's own axis order `[x, y, z]`.
///
/// A 2-D file has `ndim = 2`: its third spacing is 1, its third origin coordinate 0 and its
/// direction the 2 × 2 matrix in the top-left corner with 1 below it, so that it is written
/// back as the 2-D file it came from (nnU-Net's `SimpleITKIO.write_seg` does the same).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItkGeometry {
    /// 2 or 3: the dimensionality of the source file.
    pub ndim: u8,
    /// Voxel size along `x, y, z`, mm (`GetSpacing`).
    pub spacing: [f64; 3],
    /// Centre of the first voxel, LPS mm (`GetOrigin`).
    pub origin: [f64; 3],
    /// Row-major direction cosines in LPS; column `j` is axis `j`'s direction (`GetDirection`).
    pub direction: [[f64; 3]; 3],
}

impl ItkGeometry {
    /// From a codec's per-axis lists (2 or 3 axes; `direction` row-major `d × d`); `None` for
    /// any other dimensionality or lists of the wrong length.
    pub fn from_parts(spacing: &[f64], origin: &[f64], direction: &[f64]) -> Option<ItkGeometry> {
        let d = spacing.len();
        if !(2..=3).contains(&d) || origin.len() != d || direction.len() != d * d {
            return None;
        }
        let mut geometry = ItkGeometry {
            ndim: d as u8,
            spacing: [1.0; 3],
            origin: [0.0; 3],
            direction: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
        };
        geometry.spacing[..d].copy_from_slice(spacing);
        geometry.origin[..d].copy_from_slice(origin);
        for (r, row) in geometry.direction.iter_mut().take(d).enumerate() {
            row[..d].copy_from_slice(&direction[r * d..(r + 1) * d]);
        }
        Some(geometry)
    }

    /// The per-axis lists a codec writes: spacing, origin and the row-major direction, each
    /// with `ndim` axes.
    pub fn parts(&self) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let d = usize::from(self.ndim);
        let direction = self.direction[..d]
            .iter()
            .flat_map(|row| row[..d].iter().copied())
            .collect();
        (
            self.spacing[..d].to_vec(),
            self.origin[..d].to_vec(),
            direction,
        )
    }

    /// The spacing nnU-Net's `SimpleITKIO` reports, `(z, y, x)`, absolute: the reversed
    /// `GetSpacing`, and for a 2-D file `999 × max(spacing)` along z.
    pub fn nnunet_spacing(&self) -> Spacing {
        let [sx, sy, sz] = self.spacing.map(f64::abs);
        if self.ndim == 2 {
            Spacing([999.0 * sx.max(sy), sy, sx])
        } else {
            Spacing([sz, sy, sx])
        }
    }

    /// The voxel-to-world affine in RAS+ (nibabel's convention, NIfTI index order):
    /// `diag(-1, -1, 1) · direction · diag(spacing)`, translated to the flipped origin.
    pub fn affine(&self) -> Affine {
        let mut m = Affine::IDENTITY.0;
        for (r, row) in m.iter_mut().take(3).enumerate() {
            for (c, v) in row.iter_mut().take(3).enumerate() {
                *v = LPS_TO_RAS[r] * self.direction[r][c] * self.spacing[c];
            }
            row[3] = LPS_TO_RAS[r] * self.origin[r];
        }
        Affine(m)
    }

    /// The NIfTI fields ITK's `NiftiImageIO` writes for this geometry: qform and sform both set
    /// (code 1, scanner), the sform the RAS affine, the qform its quaternion with `qfac` the
    /// sign of the direction's determinant, voxel sizes in `pixdim`, units mm and s.
    pub fn nifti_header(&self) -> HeaderGeometry {
        let affine = self.affine();
        let (quatern, qfac) = rotation_to_quaternion(&affine);
        let [sx, sy, sz] = self.spacing;
        HeaderGeometry {
            pixdim: [qfac, sx, sy, sz, 0.0, 0.0, 0.0, 0.0],
            xyzt_units: 2 | 8,
            qform_code: 1,
            sform_code: 1,
            quatern,
            qoffset: affine.origin(),
            srow: [affine.0[0], affine.0[1], affine.0[2]],
        }
    }

    /// The geometry ITK reads from a NIfTI file with these fields: spacing from `pixdim` (in mm,
    /// [`HeaderGeometry::spacing_mm`]), direction the unit columns of nibabel's best affine and
    /// origin its translation, both turned to LPS. For the orthonormal affines scanners write,
    /// this is what SimpleITK reports.
    pub fn from_nifti(header: &HeaderGeometry, shape: Shape3) -> ItkGeometry {
        let affine = header.best_affine(shape);
        let unit = affine.direction();
        let [sz, sy, sx] = header.spacing_mm().0;
        let mut direction = [[0.0; 3]; 3];
        for (r, row) in direction.iter_mut().enumerate() {
            for (c, v) in row.iter_mut().enumerate() {
                *v = LPS_TO_RAS[r] * unit[c][r];
            }
        }
        let origin = affine.origin();
        ItkGeometry {
            ndim: 3,
            spacing: [sx, sy, sz],
            origin: std::array::from_fn(|r| LPS_TO_RAS[r] * origin[r]),
            direction,
        }
    }
}

/// NIfTI's `nifti_mat44_to_quatern` for the rotation part of `affine`: the quaternion
/// `(b, c, d)` and `qfac` (-1 when the columns form a left-handed frame, whose third column is
/// then flipped before the rotation is taken).
fn rotation_to_quaternion(affine: &Affine) -> ([f64; 3], f64) {
    // Unit columns r[row][col].
    let mut r = [[0.0; 3]; 3];
    for c in 0..3 {
        let norm = (0..3).map(|i| affine.0[i][c].powi(2)).sum::<f64>().sqrt();
        let norm = if norm > 0.0 { norm } else { 1.0 };
        for (i, row) in r.iter_mut().enumerate() {
            row[c] = affine.0[i][c] / norm;
        }
    }
    let det = r[0][0] * (r[1][1] * r[2][2] - r[1][2] * r[2][1])
        - r[0][1] * (r[1][0] * r[2][2] - r[1][2] * r[2][0])
        + r[0][2] * (r[1][0] * r[2][1] - r[1][1] * r[2][0]);
    let qfac = if det > 0.0 { 1.0 } else { -1.0 };
    if qfac < 0.0 {
        for row in r.iter_mut() {
            row[2] = -row[2];
        }
    }
    let trace = r[0][0] + r[1][1] + r[2][2] + 1.0;
    let (mut a, mut b, mut c, mut d);
    if trace > 0.5 {
        a = 0.5 * trace.sqrt();
        b = 0.25 * (r[2][1] - r[1][2]) / a;
        c = 0.25 * (r[0][2] - r[2][0]) / a;
        d = 0.25 * (r[1][0] - r[0][1]) / a;
    } else {
        let xd = 1.0 + r[0][0] - (r[1][1] + r[2][2]);
        let yd = 1.0 + r[1][1] - (r[0][0] + r[2][2]);
        let zd = 1.0 + r[2][2] - (r[0][0] + r[1][1]);
        if xd > 1.0 {
            b = 0.5 * xd.sqrt();
            c = 0.25 * (r[0][1] + r[1][0]) / b;
            d = 0.25 * (r[0][2] + r[2][0]) / b;
            a = 0.25 * (r[2][1] - r[1][2]) / b;
        } else if yd > 1.0 {
            c = 0.5 * yd.sqrt();
            b = 0.25 * (r[0][1] + r[1][0]) / c;
            d = 0.25 * (r[1][2] + r[2][1]) / c;
            a = 0.25 * (r[0][2] - r[2][0]) / c;
        } else {
            d = 0.5 * zd.sqrt();
            b = 0.25 * (r[0][2] + r[2][0]) / d;
            c = 0.25 * (r[1][2] + r[2][1]) / d;
            a = 0.25 * (r[1][0] - r[0][1]) / d;
        }
        if a < 0.0 {
            (a, b, c, d) = (-a, -b, -c, -d);
        }
    }
    // nibabel's qform rebuilds `a` from (b, c, d), which needs a >= 0.
    debug_assert!(a >= 0.0);
    ([b, c, d], qfac)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An oblique, left-handed 3-D geometry (the third axis flipped).
    fn oblique() -> ItkGeometry {
        let (s, c) = (0.3f64.sin(), 0.3f64.cos());
        ItkGeometry {
            ndim: 3,
            spacing: [0.7, 0.8, 2.5],
            origin: [-120.5, 33.25, 7.0],
            direction: [[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, -1.0]],
        }
    }

    #[test]
    fn affine_flips_x_and_y_to_ras() {
        let g = ItkGeometry::from_parts(
            &[0.5, 2.0, 3.0],
            &[1.0, 2.0, 3.0],
            &[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
        )
        .unwrap();
        let m = g.affine().0;
        assert_eq!(m[0], [-0.5, 0.0, 0.0, -1.0]);
        assert_eq!(m[1], [0.0, -2.0, 0.0, -2.0]);
        assert_eq!(m[2], [0.0, 0.0, 3.0, 3.0]);
    }

    #[test]
    fn nifti_header_qform_and_sform_agree_and_read_back() {
        let g = oblique();
        let header = g.nifti_header();
        assert_eq!(header.pixdim[0], -1.0, "left-handed frame gives qfac -1");
        let shape = Shape3([4, 5, 6]);
        let (q, s) = (header.qform().0, header.sform().0);
        for r in 0..4 {
            for c in 0..4 {
                assert!(
                    (q[r][c] - s[r][c]).abs() < 1e-12,
                    "qform {q:?} vs sform {s:?}"
                );
            }
        }
        let back = ItkGeometry::from_nifti(&header, shape);
        assert_eq!(back.spacing, g.spacing);
        assert_eq!(back.origin, g.origin);
        for r in 0..3 {
            for c in 0..3 {
                assert!((back.direction[r][c] - g.direction[r][c]).abs() < 1e-15);
            }
        }
    }

    #[test]
    fn two_d_keeps_its_axes_and_takes_nnunets_z_spacing() {
        let g = ItkGeometry::from_parts(&[0.5, 0.25], &[3.0, 4.0], &[0.0, 1.0, 1.0, 0.0]).unwrap();
        assert_eq!(g.ndim, 2);
        assert_eq!(g.nnunet_spacing(), Spacing([499.5, 0.25, 0.5]));
        let (spacing, origin, direction) = g.parts();
        assert_eq!(
            (spacing, origin, direction),
            (vec![0.5, 0.25], vec![3.0, 4.0], vec![0.0, 1.0, 1.0, 0.0])
        );
        assert!(ItkGeometry::from_parts(&[1.0; 4], &[0.0; 4], &[0.0; 16]).is_none());
        assert!(ItkGeometry::from_parts(&[1.0; 3], &[0.0; 2], &[0.0; 9]).is_none());
    }
}
