//! Geometry shared by both formats: consistency checks on a [`RawImage`], the identity
//! direction, the determinant ITK checks, number formatting for headers, and ITK's anatomical
//! orientation code.

use super::error::InvalidImage;
use super::RawImage;

/// The most axes either format describes (NRRD's `NRRD_DIM_MAX`).
pub(crate) const MAX_DIMS: usize = 16;

/// The `d × d` identity, row-major.
pub(crate) fn identity(d: usize) -> Vec<f64> {
    (0..d * d)
        .map(|i| if i / d == i % d { 1.0 } else { 0.0 })
        .collect()
}

/// Bytes of `sizes` elements of `element_bytes` each, or `None` when the product passes
/// `isize::MAX` (what any allocation can hold).
pub(crate) fn checked_bytes(sizes: &[usize], element_bytes: usize) -> Option<usize> {
    sizes
        .iter()
        .chain([&element_bytes])
        .try_fold(1u128, |acc, &n| acc.checked_mul(n as u128))
        .filter(|&n| n <= isize::MAX as u128)
        .map(|n| n as usize)
}

/// Checks that an image's parts fit together.
pub(crate) fn check_image(image: &RawImage) -> Result<(), InvalidImage> {
    let d = image.dims.len();
    if d == 0 || d > MAX_DIMS {
        return Err(InvalidImage::new(format!(
            "{d} axes (1 to {MAX_DIMS} are supported)"
        )));
    }
    if image.dims.contains(&0) {
        return Err(InvalidImage::new(format!(
            "a zero size in {:?}",
            image.dims
        )));
    }
    if image.components == 0 {
        return Err(InvalidImage::new("zero components per voxel"));
    }
    check_geometry(&image.spacing, &image.origin, &image.direction, d)?;
    let sizes: Vec<usize> = image
        .dims
        .iter()
        .chain([&image.components])
        .copied()
        .collect();
    let expected = checked_bytes(&sizes, image.element.size()).ok_or_else(|| {
        InvalidImage::new(format!(
            "sizes {sizes:?} describe more data than can be addressed"
        ))
    })?;
    if image.data.len() != expected {
        return Err(InvalidImage::new(format!(
            "{} data bytes, but {:?} voxels of {} {:?} component(s) need {expected}",
            image.data.len(),
            image.dims,
            image.components,
            image.element
        )));
    }
    Ok(())
}

/// Checks spacing, origin and direction of a `d`-axis image as ITK would accept them: spacing
/// finite and non-zero, origin finite, direction finite with a non-zero determinant.
pub(crate) fn check_geometry(
    spacing: &[f64],
    origin: &[f64],
    direction: &[f64],
    d: usize,
) -> Result<(), InvalidImage> {
    if spacing.len() != d || origin.len() != d || direction.len() != d * d {
        return Err(InvalidImage::new(format!(
            "{d} axes need {d} spacings, {d} origin coordinates and {} direction entries (got {}, {}, {})",
            d * d,
            spacing.len(),
            origin.len(),
            direction.len()
        )));
    }
    if spacing.iter().any(|s| !s.is_finite() || *s == 0.0) {
        return Err(InvalidImage::new(format!(
            "spacing {spacing:?} must be finite and non-zero"
        )));
    }
    if origin.iter().any(|o| !o.is_finite()) {
        return Err(InvalidImage::new(format!(
            "origin {origin:?} must be finite"
        )));
    }
    let det = determinant(direction, d);
    if direction.iter().any(|v| !v.is_finite()) || det == 0.0 || !det.is_finite() {
        return Err(InvalidImage::new(format!(
            "direction {direction:?} is not an invertible finite matrix"
        )));
    }
    Ok(())
}

/// Determinant of a row-major `d × d` matrix (Gaussian elimination with partial pivoting).
pub(crate) fn determinant(matrix: &[f64], d: usize) -> f64 {
    let mut m = matrix.to_vec();
    let mut det = 1.0;
    for col in 0..d {
        let pivot = (col..d)
            .max_by(|&a, &b| m[a * d + col].abs().total_cmp(&m[b * d + col].abs()))
            .unwrap_or(col);
        if m[pivot * d + col] == 0.0 {
            return 0.0;
        }
        if pivot != col {
            for k in 0..d {
                m.swap(pivot * d + k, col * d + k);
            }
            det = -det;
        }
        let p = m[col * d + col];
        det *= p;
        for row in col + 1..d {
            let factor = m[row * d + col] / p;
            for k in col..d {
                m[row * d + k] -= factor * m[col * d + k];
            }
        }
    }
    det
}

/// A number as a header writes it: the shortest text that reads back to the same `f64`, in
/// exponent form only for very small or very large magnitudes (both formats' readers take
/// either form).
pub(crate) fn fmt_f64(v: f64) -> String {
    let a = v.abs();
    if a != 0.0 && !(1e-5..1e16).contains(&a) {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}

/// Numbers joined by `sep`.
pub(crate) fn join(values: &[f64], sep: &str) -> String {
    values
        .iter()
        .map(|&v| fmt_f64(v))
        .collect::<Vec<_>>()
        .join(sep)
}

/// ITK's `AnatomicalOrientation` code for a MetaImage header: for 3-D, per axis the letter of
/// the side its direction comes from along the dominant LPS component (`R`/`L` for x, `A`/`P`
/// for y, `I`/`S` for z), e.g. `RAI` for the identity; `?` per axis otherwise.
pub(crate) fn orientation_code(direction: &[f64], d: usize) -> String {
    if d != 3 {
        return "?".repeat(d);
    }
    (0..3)
        .map(|axis| {
            let col = [direction[axis], direction[3 + axis], direction[6 + axis]];
            let row = (0..3)
                .max_by(|&a, &b| col[a].abs().total_cmp(&col[b].abs()))
                .unwrap_or(0);
            let letters = [('R', 'L'), ('A', 'P'), ('I', 'S')][row];
            if col[row] >= 0.0 {
                letters.0
            } else {
                letters.1
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn determinant_and_orientation() {
        assert_eq!(determinant(&identity(3), 3), 1.0);
        assert_eq!(determinant(&[0.0, 1.0, 1.0, 0.0], 2), -1.0);
        assert_eq!(determinant(&[1.0, 2.0, 2.0, 4.0], 2), 0.0);
        assert_eq!(orientation_code(&identity(3), 3), "RAI");
        // SimpleITK writes LSA for this direction (columns -x, -z, +y).
        let d = [-1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, -1.0, 0.0];
        assert_eq!(orientation_code(&d, 3), "LSA");
        assert_eq!(orientation_code(&identity(2), 2), "??");
    }

    #[test]
    fn numbers_read_back_exactly() {
        for v in [0.1, 1.0 / 3.0, -20.5, 3.0, 1e-300, 6.02e23, 0.0, -0.0, 1e-5] {
            assert_eq!(fmt_f64(v).parse::<f64>().unwrap().to_bits(), v.to_bits());
        }
        assert_eq!(fmt_f64(3.0), "3");
        assert_eq!(fmt_f64(1e-7), "1e-7");
        assert_eq!(checked_bytes(&[usize::MAX, 2], 1), None);
        assert_eq!(checked_bytes(&[5, 4, 3], 2), Some(120));
    }
}
