//! A case's channel files read and stacked into one `(c, z, y, x)` array: the one place that
//! knows a file may hold several channels (an RGB natural image holds three).

use std::path::{Path, PathBuf};

use ndarray::{s, Array4};

use super::{read_image, ImageError};
use crate::volume::{Geometry, Image};

/// Why a case's channels could not be stacked; every variant names the file where one is at
/// fault.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    /// A channel file could not be read.
    #[error(transparent)]
    Read(#[from] ImageError),
    /// A channel file's grid differs from the first file's.
    #[error("{}: shape {found:?} differs from the first channel's {expected:?} (z, y, x)", path.display())]
    Shape {
        /// The file.
        path: PathBuf,
        /// The first file's shape.
        expected: [usize; 3],
        /// This file's shape.
        found: [usize; 3],
    },
    /// The files hold another number of channels than expected.
    #[error("{n_files} image file(s) holding {found} channel(s), but {expected} channel(s) are expected")]
    Count {
        /// Channel files.
        n_files: usize,
        /// Channels they hold (counted up to the first file past `expected`).
        found: usize,
        /// Channels expected.
        expected: usize,
    },
    /// A channel file holds NaN (only when asked to refuse it).
    #[error("{}: image contains NaN values", path.display())]
    Nan {
        /// The file.
        path: PathBuf,
    },
}

/// Reads `paths` in order and stacks their channels: `n_channels` in all, on the first file's
/// grid, whose geometry is returned. Holds at most the stack plus one file. With `refuse_nan`,
/// a file holding NaN is refused (nnU-Net's fingerprint asserts "Images contains NaN values").
///
/// # Errors
/// [`StackError`]: an unreadable file, a file on another grid, NaN when refused, or files
/// holding other than `n_channels` channels.
pub fn read_stacked(
    paths: &[PathBuf],
    n_channels: usize,
    refuse_nan: bool,
) -> Result<(Array4<f32>, Geometry), StackError> {
    let count = |found| StackError::Count {
        n_files: paths.len(),
        found,
        expected: n_channels,
    };
    if paths.is_empty() || paths.len() > n_channels {
        return Err(count(paths.len()));
    }
    let read = |path: &Path| -> Result<Image, StackError> {
        let image = read_image(path)?;
        if refuse_nan && image.data.iter().any(|v| v.is_nan()) {
            return Err(StackError::Nan {
                path: path.to_path_buf(),
            });
        }
        Ok(image)
    };
    let first = read(&paths[0])?;
    let geometry = first.geometry.clone();
    if paths.len() == 1 && first.n_channels() == n_channels {
        return Ok((first.data, geometry));
    }
    let shape = first.data_shape().0;
    let mut data = Array4::zeros((n_channels, shape[0], shape[1], shape[2]));
    let mut filled = 0;
    let mut next = Some(first);
    for path in paths {
        let image = match next.take() {
            Some(image) => image,
            None => read(path)?,
        };
        if image.data_shape().0 != shape {
            return Err(StackError::Shape {
                path: path.clone(),
                expected: shape,
                found: image.data_shape().0,
            });
        }
        let c = image.n_channels();
        if filled + c > n_channels {
            return Err(count(filled + c));
        }
        data.slice_mut(s![filled..filled + c, .., .., ..])
            .assign(&image.data);
        filled += c;
    }
    if filled != n_channels {
        return Err(count(filled));
    }
    Ok((data, geometry))
}
