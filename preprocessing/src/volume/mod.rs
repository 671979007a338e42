//! Voxel volumes with the geometry that places them in the world.
//!
//! Axis order, once for the whole crate: arrays are nnU-Net's numpy order `(c, z, y, x)` (or
//! `(z, y, x)` without the channel axis), C-contiguous, where `x` is the axis that varies fastest
//! in the NIfTI file (NIfTI `dim[1]`), `y` is `dim[2]` and `z` is `dim[3]`. [`Spacing`] and
//! [`Shape3`] list their three numbers in the same `(z, y, x)` order, so `spacing.0[i]` belongs to
//! array axis `i` (of the spatial axes), exactly like nnU-Net's `properties['spacing']`.
//!
//! The [`Affine`] maps voxel indices in NIfTI order `(i, j, k) = (x, y, z)` to world millimetres
//! in RAS+ (nibabel's convention; SimpleITK's LPS differs by the sign of the first two rows).

mod itk;

use ndarray::Array4;
use serde::{Deserialize, Serialize};

pub use itk::ItkGeometry;

/// Voxel spacing in millimetres, `(z, y, x)` order (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spacing(pub [f64; 3]);

/// Spatial shape in voxels, `(z, y, x)` order (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shape3(pub [usize; 3]);

/// A 4x4 homogeneous voxel-to-world matrix, row-major: `world = m * [x, y, z, 1]ᵀ` with NIfTI
/// voxel indices (x fastest); world is RAS+ millimetres.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Affine(pub [[f64; 4]; 4]);

/// numpy's `allclose(a, b)` defaults (`rtol = 1e-5`, `atol = 1e-8`), which nnU-Net's
/// `verify_dataset_integrity.py` uses for spacings and affines.
const NUMPY_RTOL: f64 = 1e-5;
/// See [`NUMPY_RTOL`].
const NUMPY_ATOL: f64 = 1e-8;

/// numpy `isclose(a, b)`: `|a - b| <= atol + rtol * |b|`.
fn numpy_isclose(a: f64, b: f64) -> bool {
    (a - b).abs() <= NUMPY_ATOL + NUMPY_RTOL * b.abs()
}

impl Spacing {
    /// numpy `allclose(self, other)` with its default tolerances, as nnU-Net compares spacings.
    pub fn allclose(&self, other: &Spacing) -> bool {
        self.0
            .iter()
            .zip(other.0)
            .all(|(&a, b)| numpy_isclose(a, b))
    }
}

impl Shape3 {
    /// Number of voxels, `z * y * x`.
    pub fn n_voxels(&self) -> usize {
        self.0.iter().product()
    }
}

impl Affine {
    /// The identity affine (1 mm voxels, origin at voxel 0).
    pub const IDENTITY: Affine = Affine([
        [1.0, 0.0, 0.0, 0.0],
        [0.0, 1.0, 0.0, 0.0],
        [0.0, 0.0, 1.0, 0.0],
        [0.0, 0.0, 0.0, 1.0],
    ]);

    /// World position of voxel 0 (the translation column), RAS+ mm.
    pub fn origin(&self) -> [f64; 3] {
        [self.0[0][3], self.0[1][3], self.0[2][3]]
    }

    /// Unit direction of each voxel axis in world space, in NIfTI order `[x, y, z]`; each entry
    /// is a column of the 3x3 part divided by its length (a zero column stays zero).
    pub fn direction(&self) -> [[f64; 3]; 3] {
        std::array::from_fn(|col| {
            let v: [f64; 3] = std::array::from_fn(|row| self.0[row][col]);
            let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
            if norm > 0.0 {
                v.map(|a| a / norm)
            } else {
                v
            }
        })
    }

    /// numpy `allclose(self, other)` with its default tolerances over all 16 entries, as
    /// nnU-Net compares nibabel affines.
    pub fn allclose(&self, other: &Affine) -> bool {
        self.0
            .iter()
            .flatten()
            .zip(other.0.iter().flatten())
            .all(|(&a, &b)| numpy_isclose(a, b))
    }

    /// Largest absolute entry-wise difference to `other`.
    pub fn max_abs_diff(&self, other: &Affine) -> f64 {
        max_abs_diff(self.0.iter().flatten(), other.0.iter().flatten())
    }
}

/// Largest absolute difference between paired values (0 for empty input).
fn max_abs_diff<'a>(a: impl Iterator<Item = &'a f64>, b: impl Iterator<Item = &'a f64>) -> f64 {
    a.zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

/// The NIfTI header fields that place voxels in the world, copied unchanged from the source file
/// and written unchanged into every file derived from it, so viewers overlay the two.
///
/// Values are held as `f64`; NIfTI-1 stores `f32`, which converts to `f64` and back exactly.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderGeometry {
    /// `pixdim[0..8]`: `pixdim[0]` is qfac, `pixdim[1..4]` the voxel size along x, y, z.
    pub pixdim: [f64; 8],
    /// `xyzt_units`: spatial unit in bits 0-2 (1 m, 2 mm, 3 µm), time unit in bits 3-5.
    pub xyzt_units: u8,
    /// `qform_code` (0 = unset, 1 = scanner, 2 = aligned, 3 = Talairach, 4 = MNI, 5 = template).
    pub qform_code: i16,
    /// `sform_code` (same codes as `qform_code`).
    pub sform_code: i16,
    /// `quatern_b`, `quatern_c`, `quatern_d`.
    pub quatern: [f64; 3],
    /// `qoffset_x`, `qoffset_y`, `qoffset_z`.
    pub qoffset: [f64; 3],
    /// `srow_x`, `srow_y`, `srow_z`: the first three rows of the sform affine.
    pub srow: [[f64; 4]; 3],
}

/// Spatial unit codes of `xyzt_units` (NIfTI `NIFTI_UNITS_*`).
const UNITS_METER: u8 = 1;
/// See [`UNITS_METER`].
const UNITS_MICRON: u8 = 3;
/// nibabel's `quaternion_threshold`: `3 * f32::EPSILON`.
const QUATERNION_THRESHOLD: f64 = 3.0 * f32::EPSILON as f64;

impl HeaderGeometry {
    /// Header fields for a plain grid: the given voxel size, qform and sform both set (code 1,
    /// scanner) to the diagonal affine `diag(sx, sy, sz)` with voxel 0 at `origin` (RAS+ mm,
    /// NIfTI order `[x, y, z]`), units millimetres.
    pub fn axis_aligned(spacing: Spacing, origin: [f64; 3]) -> HeaderGeometry {
        let [sz, sy, sx] = spacing.0;
        let vox = [sx, sy, sz];
        let srow = std::array::from_fn(|r| {
            let mut row = [0.0; 4];
            row[r] = vox[r];
            row[3] = origin[r];
            row
        });
        HeaderGeometry {
            pixdim: [1.0, sx, sy, sz, 0.0, 0.0, 0.0, 0.0],
            xyzt_units: 2,
            qform_code: 1,
            sform_code: 1,
            quatern: [0.0; 3],
            qoffset: origin,
            srow,
        }
    }

    /// The affine nibabel's `get_best_affine` returns: the sform if `sform_code > 0`, else the
    /// qform if `qform_code > 0`, else the base affine from shape and pixdim.
    ///
    /// Pixdims are first fixed as nibabel does on load (negative → absolute, zero → 1; qfac
    /// other than ±1 → 1).
    pub fn best_affine(&self, shape: Shape3) -> Affine {
        if self.sform_code > 0 {
            self.sform()
        } else if self.qform_code > 0 {
            self.qform()
        } else {
            self.base_affine(shape)
        }
    }

    /// The sform affine (`srow_*` plus the row `[0, 0, 0, 1]`), whatever `sform_code` says.
    pub fn sform(&self) -> Affine {
        Affine([
            self.srow[0],
            self.srow[1],
            self.srow[2],
            [0.0, 0.0, 0.0, 1.0],
        ])
    }

    /// Voxel sizes `[x, y, z]` after nibabel's load-time fix: absolute value, zero → 1.
    fn fixed_voxel_sizes(&self) -> [f64; 3] {
        [1, 2, 3].map(|i| match self.pixdim[i].abs() {
            0.0 => 1.0,
            v => v,
        })
    }

    /// The qform affine (nibabel `get_qform`): rotation from the unit quaternion `(a, b, c, d)`
    /// with `a = sqrt(1 - b² - c² - d²)` (0 within nibabel's threshold), times
    /// `diag(dx, dy, qfac * dz)`, plus `qoffset`.
    pub fn qform(&self) -> Affine {
        let [b, c, d] = self.quatern;
        let w2 = 1.0 - (b * b + c * c + d * d);
        let a = if w2.abs() < QUATERNION_THRESHOLD {
            0.0
        } else {
            w2.max(0.0).sqrt()
        };
        let rot = quaternion_to_rotation([a, b, c, d]);
        let qfac = if self.pixdim[0] == -1.0 { -1.0 } else { 1.0 };
        let [dx, dy, dz] = self.fixed_voxel_sizes();
        let vox = [dx, dy, dz * qfac];
        let mut m = Affine::IDENTITY.0;
        for (r, row) in m.iter_mut().take(3).enumerate() {
            for (col, &v) in vox.iter().enumerate() {
                row[col] = rot[r][col] * v;
            }
            row[3] = self.qoffset[r];
        }
        Affine(m)
    }

    /// nibabel's base affine (`shape_zoom_affine` with x flipped): `diag(-dx, dy, dz)` with the
    /// world origin at the centre of the grid.
    pub fn base_affine(&self, shape: Shape3) -> Affine {
        let [sz, sy, sx] = shape.0;
        let [dx, dy, dz] = self.fixed_voxel_sizes();
        let zooms = [-dx, dy, dz];
        let dims = [sx, sy, sz].map(|n| n as f64);
        let mut m = Affine::IDENTITY.0;
        for r in 0..3 {
            m[r][r] = zooms[r];
            m[r][3] = -(dims[r] - 1.0) / 2.0 * zooms[r];
        }
        Affine(m)
    }

    /// Voxel spacing `(z, y, x)` in millimetres as SimpleITK (and so nnU-Net) reports it:
    /// `|pixdim[1..4]|` (zero → 1, nibabel's fix) scaled to mm from metres or microns per
    /// `xyzt_units`.
    pub fn spacing_mm(&self) -> Spacing {
        let scale = match self.xyzt_units & 0x07 {
            UNITS_METER => 1e3,
            UNITS_MICRON => 1e-3,
            _ => 1.0,
        };
        let [dx, dy, dz] = self.fixed_voxel_sizes();
        Spacing([dz * scale, dy * scale, dx * scale])
    }
}

/// nibabel `quat2mat`: rotation matrix of a (not necessarily unit) quaternion `(w, x, y, z)`.
fn quaternion_to_rotation([w, x, y, z]: [f64; 4]) -> [[f64; 3]; 3] {
    let nq = w * w + x * x + y * y + z * z;
    if nq < f64::EPSILON {
        return [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    }
    let s = 2.0 / nq;
    let (xs, ys, zs) = (x * s, y * s, z * s);
    let (wx, wy, wz) = (w * xs, w * ys, w * zs);
    let (xx, xy, xz) = (x * xs, x * ys, x * zs);
    let (yy, yz, zz) = (y * ys, y * zs, z * zs);
    [
        [1.0 - (yy + zz), xy - wz, xz + wy],
        [xy + wz, 1.0 - (xx + zz), yz - wx],
        [xz - wy, yz + wx, 1.0 - (xx + yy)],
    ]
}

/// The geometry fields of the file a grid came from, in that file's own convention, so that
/// files derived from it are written with the same fields.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SourceGeometry {
    /// A NIfTI file's header fields (nibabel's convention).
    Nifti(HeaderGeometry),
    /// An ITK-convention file's spacing, origin and direction (NRRD, MetaImage).
    Itk(ItkGeometry),
}

/// Everything needed to write a file that overlays its source: the grid shape, the source
/// file's geometry fields, and what follows from them (the resolved affine and the spacing).
///
/// Built only through [`Geometry::new`] and [`Geometry::from_itk`], so the derived fields
/// always agree with the source's.
#[derive(Debug, Clone, PartialEq)]
pub struct Geometry {
    shape: Shape3,
    spacing: Spacing,
    affine: Affine,
    source: SourceGeometry,
}

/// How two geometries differ; produced by [`Geometry::compare`] for `verify`'s errors (shape,
/// spacing) and warnings (affine, origin, direction).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeometryDiff {
    /// Both grids have the same shape.
    pub same_shape: bool,
    /// Spacings agree under numpy `allclose` (nnU-Net's test).
    pub spacing_close: bool,
    /// Affines agree under numpy `allclose` (nnU-Net's test for nibabel images).
    pub affine_close: bool,
    /// Largest absolute spacing difference, mm.
    pub max_spacing_diff: f64,
    /// Largest absolute affine entry difference.
    pub max_affine_diff: f64,
    /// Largest absolute origin coordinate difference, mm.
    pub max_origin_diff: f64,
    /// Largest absolute difference between unit direction cosines.
    pub max_direction_diff: f64,
}

impl GeometryDiff {
    /// True when shape, spacing and affine all agree.
    pub fn is_match(&self) -> bool {
        self.same_shape && self.spacing_close && self.affine_close
    }
}

impl Geometry {
    /// Geometry of a grid of `shape` described by `header`: resolves the affine (nibabel's rule,
    /// [`HeaderGeometry::best_affine`]) and the spacing ([`HeaderGeometry::spacing_mm`]).
    pub fn new(shape: Shape3, header: HeaderGeometry) -> Geometry {
        Geometry {
            shape,
            spacing: header.spacing_mm(),
            affine: header.best_affine(shape),
            source: SourceGeometry::Nifti(header),
        }
    }

    /// Geometry of a grid of `shape` read from an ITK-convention file: the affine in RAS
    /// ([`ItkGeometry::affine`]) and nnU-Net's `SimpleITKIO` spacing
    /// ([`ItkGeometry::nnunet_spacing`]).
    pub fn from_itk(shape: Shape3, itk: ItkGeometry) -> Geometry {
        Geometry {
            shape,
            spacing: itk.nnunet_spacing(),
            affine: itk.affine(),
            source: SourceGeometry::Itk(itk),
        }
    }

    /// Like [`Geometry::new`] but with an explicit spacing, for grids whose nnU-Net spacing is
    /// not the header's (2-D files: nnU-Net uses `999 * max(spacing)` along z).
    pub(crate) fn with_spacing(shape: Shape3, header: HeaderGeometry, spacing: Spacing) -> Self {
        Geometry {
            spacing,
            ..Geometry::new(shape, header)
        }
    }

    /// Grid shape, `(z, y, x)`.
    pub fn shape(&self) -> Shape3 {
        self.shape
    }

    /// Voxel spacing in mm, `(z, y, x)`, as nnU-Net (SimpleITK) reads it.
    pub fn spacing(&self) -> Spacing {
        self.spacing
    }

    /// The resolved voxel-to-world affine (nibabel's `affine`).
    pub fn affine(&self) -> Affine {
        self.affine
    }

    /// The source file's geometry fields, written unchanged into derived files of its format.
    pub fn source(&self) -> &SourceGeometry {
        &self.source
    }

    /// The NIfTI header fields of a derived NIfTI file: the source's own for a NIfTI source,
    /// else those ITK writes for the source's geometry ([`ItkGeometry::nifti_header`]).
    pub fn header(&self) -> HeaderGeometry {
        match &self.source {
            SourceGeometry::Nifti(header) => *header,
            SourceGeometry::Itk(itk) => itk.nifti_header(),
        }
    }

    /// The ITK geometry of a derived NRRD or MetaImage file: the source's own for such a
    /// source, else what ITK reads from the NIfTI header ([`ItkGeometry::from_nifti`]).
    pub fn itk(&self) -> ItkGeometry {
        match &self.source {
            SourceGeometry::Itk(itk) => *itk,
            SourceGeometry::Nifti(header) => ItkGeometry::from_nifti(header, self.shape),
        }
    }

    /// World position of voxel 0, RAS+ mm.
    pub fn origin(&self) -> [f64; 3] {
        self.affine.origin()
    }

    /// Unit voxel-axis directions `[x, y, z]` in world space (see [`Affine::direction`]).
    pub fn direction(&self) -> [[f64; 3]; 3] {
        self.affine.direction()
    }

    /// Compares with `other` the way nnU-Net's `verify_dataset_integrity.py` does (shape
    /// equality, spacing and affine `allclose`) and reports the largest differences.
    pub fn compare(&self, other: &Geometry) -> GeometryDiff {
        let origin_a = self.origin();
        let origin_b = other.origin();
        let dir_a = self.direction();
        let dir_b = other.direction();
        GeometryDiff {
            same_shape: self.shape == other.shape,
            spacing_close: self.spacing.allclose(&other.spacing),
            affine_close: self.affine.allclose(&other.affine),
            max_spacing_diff: max_abs_diff(self.spacing.0.iter(), other.spacing.0.iter()),
            max_affine_diff: self.affine.max_abs_diff(&other.affine),
            max_origin_diff: max_abs_diff(origin_a.iter(), origin_b.iter()),
            max_direction_diff: max_abs_diff(dir_a.iter().flatten(), dir_b.iter().flatten()),
        }
    }
}

/// Voxels with their geometry. `data` is `(c, z, y, x)`; a volume read from one NIfTI file has
/// `c = 1`, and its spatial shape equals `geometry.shape()` (the writers check this).
#[derive(Debug, Clone, PartialEq)]
pub struct Volume<T> {
    /// Voxel values, `(c, z, y, x)`, standard (C) layout when read from a file.
    pub data: Array4<T>,
    /// Where the voxels are in the world, and the header fields to write them back.
    pub geometry: Geometry,
}

/// An intensity image: always `f32` in memory (nnU-Net loads every image as float32), whatever
/// the file's datatype.
pub type Image = Volume<f32>;

/// A label map: non-negative integer labels, held as `u16` so that no label map can be passed
/// where an `f32` image is expected (e.g. into an image interpolator). Files hold `u8` or `u16`;
/// [`crate::write_label_map`] picks nnU-Net's rule (`u8` if max < 255, else `u16`).
pub type LabelMap = Volume<u16>;

impl<T> Volume<T> {
    /// Spatial shape of `data` (its last three axes), `(z, y, x)`.
    pub fn data_shape(&self) -> Shape3 {
        let s = self.data.shape();
        Shape3([s[1], s[2], s[3]])
    }

    /// Number of channels (`data`'s first axis).
    pub fn n_channels(&self) -> usize {
        self.data.shape()[0]
    }
}

/// A [`Geometry`] as autoseg's own artifacts store it (cache properties, probability sidecars):
/// the grid shape, the nnU-Net spacing and the source's fields, enough to write a file that
/// overlays the source.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeometryRecord {
    /// Grid shape `(z, y, x)`.
    pub shape: [usize; 3],
    /// nnU-Net spacing `(z, y, x)` in mm.
    pub spacing: [f64; 3],
    /// The NIfTI header fields: the source's own, or those of an ITK source's geometry.
    pub header: HeaderGeometry,
    /// An ITK-convention source's geometry (NRRD, MetaImage); absent for NIfTI sources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub itk: Option<ItkGeometry>,
}

impl From<&Geometry> for GeometryRecord {
    fn from(g: &Geometry) -> GeometryRecord {
        GeometryRecord {
            shape: g.shape().0,
            spacing: g.spacing().0,
            header: g.header(),
            itk: match g.source() {
                SourceGeometry::Itk(itk) => Some(*itk),
                SourceGeometry::Nifti(_) => None,
            },
        }
    }
}

impl From<GeometryRecord> for Geometry {
    fn from(r: GeometryRecord) -> Geometry {
        let shape = Shape3(r.shape);
        let geometry = match r.itk {
            Some(itk) => Geometry::from_itk(shape, itk),
            None => Geometry::new(shape, r.header),
        };
        Geometry {
            spacing: Spacing(r.spacing),
            ..geometry
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> HeaderGeometry {
        HeaderGeometry::axis_aligned(Spacing([3.0, 2.0, 1.5]), [10.0, -20.0, 30.0])
    }

    #[test]
    fn sform_wins_over_qform_and_qform_over_pixdim() {
        let mut h = header();
        h.srow[0][3] = 99.0;
        h.qoffset[0] = 7.0;
        let shape = Shape3([4, 5, 6]);
        assert_eq!(h.best_affine(shape).0[0][3], 99.0);
        h.sform_code = 0;
        assert_eq!(h.best_affine(shape).0[0][3], 7.0);
        h.qform_code = 0;
        // Base affine: x flipped, origin at the grid centre: -(6 - 1) / 2 * -1.5 = 3.75.
        let base = h.best_affine(shape);
        assert_eq!(base.0[0][0], -1.5);
        assert_eq!(base.0[0][3], 3.75);
        assert_eq!(base.0[1][3], -(5.0 - 1.0) / 2.0 * 2.0);
        assert_eq!(base.0[2][3], -(4.0 - 1.0) / 2.0 * 3.0);
    }

    #[test]
    fn qform_of_180_degree_rotation_about_z_with_negative_qfac() {
        // b = c = 0, d = 1: a = 0, rotation diag(-1, -1, 1); qfac -1 flips the z column.
        let mut h = header();
        h.sform_code = 0;
        h.quatern = [0.0, 0.0, 1.0];
        h.pixdim[0] = -1.0;
        let m = h.qform().0;
        assert_eq!(m[0][0], -1.5);
        assert_eq!(m[1][1], -2.0);
        assert_eq!(m[2][2], -3.0);
        assert_eq!(m[0][3], 10.0);
        assert_eq!(m[0][1], 0.0);
    }

    #[test]
    fn spacing_is_zyx_in_mm_with_unit_scaling_and_nibabel_fixes() {
        let mut h = header();
        assert_eq!(h.spacing_mm(), Spacing([3.0, 2.0, 1.5]));
        h.xyzt_units = UNITS_METER | 8;
        h.pixdim[1] = -0.0015;
        h.pixdim[2] = 0.0;
        assert_eq!(h.spacing_mm(), Spacing([3000.0, 1000.0, 1.5]));
    }

    #[test]
    fn compare_reports_differences() {
        let a = Geometry::new(Shape3([4, 5, 6]), header());
        let mut h = header();
        h.srow[1][3] += 0.5;
        let b = Geometry::new(Shape3([4, 5, 7]), h);
        let d = a.compare(&b);
        assert!(!d.same_shape && d.spacing_close && !d.affine_close && !d.is_match());
        assert_eq!(d.max_origin_diff, 0.5);
        assert_eq!(d.max_direction_diff, 0.0);
        assert!(a.compare(&a).is_match());
    }

    #[test]
    fn direction_is_unit_columns() {
        let g = Geometry::new(Shape3([1, 1, 1]), header());
        assert_eq!(
            g.direction(),
            [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
        );
        assert_eq!(g.origin(), [10.0, -20.0, 30.0]);
    }
}
