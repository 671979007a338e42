//! What libtorch this process runs on: its version, where it was loaded from, and CUDA.

use std::fmt;
use std::path::{Path, PathBuf};

/// The libtorch this process has loaded, and whether it can use a GPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TorchRuntime {
    /// Folder `libtorch_cpu.so` was loaded from (from `/proc/self/maps`), when it can be told.
    pub lib_dir: Option<PathBuf>,
    /// Version from the `version.py` beside that folder (pip installs), e.g. `2.11.0+cu130`.
    pub version: Option<String>,
    /// Whether the binary was linked against `libtorch_cuda` (it is where the CUDA libraries
    /// resolved at build time).
    pub cuda_linked: bool,
    /// `tch::Cuda::is_available()`.
    pub cuda_available: bool,
    /// Number of visible CUDA devices.
    pub cuda_devices: i64,
    /// Whether cuDNN is usable.
    pub cudnn_available: bool,
}

/// Describes the libtorch this process runs on.
pub fn torch_runtime() -> TorchRuntime {
    let cuda_available = tch::Cuda::is_available();
    let lib_dir = loaded_libtorch_dir();
    let version = lib_dir.as_deref().and_then(read_version);
    TorchRuntime {
        lib_dir,
        version,
        cuda_linked: cfg!(autoseg_cuda_linked),
        cuda_available,
        cuda_devices: if cuda_available {
            tch::Cuda::device_count()
        } else {
            0
        },
        cudnn_available: cuda_available && tch::Cuda::cudnn_is_available(),
    }
}

fn loaded_libtorch_dir() -> Option<PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines()
        .filter_map(|line| line.split_whitespace().nth(5))
        .find(|path| path.ends_with("/libtorch_cpu.so"))
        .and_then(|path| Path::new(path).parent().map(Path::to_path_buf))
}

fn read_version(lib_dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(lib_dir.parent()?.join("version.py")).ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix("__version__"))
        .map(|rest| {
            rest.trim_start_matches([' ', '='])
                .trim()
                .trim_matches(['\'', '"'])
                .to_string()
        })
}

impl fmt::Display for TorchRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let version = self.version.as_deref().unwrap_or("unknown version");
        write!(f, "libtorch {version}")?;
        if let Some(dir) = &self.lib_dir {
            write!(f, " ({})", dir.display())?;
        }
        if self.cuda_available {
            write!(f, "; CUDA usable: {} device(s)", self.cuda_devices)?;
            if self.cudnn_available {
                write!(f, ", cuDNN")?;
            }
        } else if self.cuda_linked {
            write!(f, "; CUDA linked but no usable GPU")?;
        } else {
            write!(f, "; CPU only (CUDA libraries not linked)")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_is_read_from_pip_version_file() {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("lib");
        std::fs::create_dir(&lib).unwrap();
        std::fs::write(
            dir.path().join("version.py"),
            "from typing import Optional\n__version__ = '2.11.0+cu130'\ncuda = '13.0'\n",
        )
        .unwrap();
        assert_eq!(read_version(&lib).as_deref(), Some("2.11.0+cu130"));
    }

    #[test]
    fn the_loaded_libtorch_is_found() {
        // Touch libtorch so it is mapped, then the maps file must name it.
        let _ = tch::Tensor::from(1.0f32);
        let info = torch_runtime();
        let dir = info
            .lib_dir
            .expect("libtorch_cpu.so is mapped in a process that made a tensor");
        assert!(dir.join("libtorch_cpu.so").exists());
    }
}
