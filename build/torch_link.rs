// Link settings shared by every crate that links libtorch (included by their `build.rs`).
//
// torch-sys tells its direct dependents where libtorch lives (`DEP_TCH_LIBTORCH_LIB`). From it
// we give every binary, test and bench of the including package:
// - an rpath to that directory, so nothing needs `LD_LIBRARY_PATH`;
// - a forced link of `libtorch_cuda` (`--no-as-needed`), but only when that library and all of
//   its own dependencies resolve (a full CUDA wheel), so `tch::Cuda::is_available()` can see a
//   GPU while a CPU-only (slim) install still builds and runs.

use std::path::Path;
use std::process::Command;

/// Emits the cargo instructions described in the module docs.
fn emit_torch_link_args() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-env-changed=AUTOSEG_NO_CUDA_LINK");
    let Ok(lib_dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        println!("cargo:warning=torch-sys did not report its libtorch directory; no rpath set");
        return;
    };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib_dir}");
    let cuda = Path::new(&lib_dir).join("libtorch_cuda.so");
    println!("cargo:rerun-if-changed={}", cuda.display());
    if std::env::var_os("AUTOSEG_NO_CUDA_LINK").is_none() && cuda_resolves(&cuda) {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
        println!("cargo:rustc-cfg=autoseg_cuda_linked");
    }
    println!("cargo:rustc-check-cfg=cfg(autoseg_cuda_linked)");
}

/// True when `lib` exists and `ldd` finds every library it needs.
fn cuda_resolves(lib: &Path) -> bool {
    if !lib.exists() {
        return false;
    }
    match Command::new("ldd").arg(lib).output() {
        Ok(out) => out.status.success() && !String::from_utf8_lossy(&out.stdout).contains("not found"),
        Err(_) => false,
    }
}
