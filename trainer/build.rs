//! Build script: rpath to libtorch and, where CUDA works, a forced link of libtorch_cuda; and
//! the C++ shim over libtorch's c10d (`csrc/c10d_shim.cpp`, see `src/distributed/ffi.rs`),
//! compiled against the headers of the libtorch torch-sys links.

include!("../build/torch_link.rs");

fn main() {
    emit_torch_link_args();
    compile_c10d_shim();
}

/// Compiles `csrc/c10d_shim.cpp` with libtorch's include folders (beside the library folder
/// torch-sys reports) and the gloo declarations of `csrc/gloo_decl`.
fn compile_c10d_shim() {
    println!("cargo:rerun-if-changed=csrc");
    let Ok(lib_dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        panic!("torch-sys did not report its libtorch directory; the c10d shim needs its headers");
    };
    let include = Path::new(&lib_dir).join("..").join("include");
    cc::Build::new()
        .cpp(true)
        .pic(true)
        .warnings(false)
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .include("csrc/gloo_decl")
        .flag("-std=c++17")
        // torch 2.11's wheels use the C++11 ABI (their symbols name std::__cxx11::basic_string).
        .define("_GLIBCXX_USE_CXX11_ABI", "1")
        .define("USE_C10D_GLOO", None)
        .define("GLOG_USE_GLOG_EXPORT", None)
        .file("csrc/c10d_shim.cpp")
        .compile("autoseg_c10d");
}
