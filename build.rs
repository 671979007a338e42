//! Build script: rpath to libtorch and, where CUDA works, a forced link of libtorch_cuda.

include!("build/torch_link.rs");

fn main() {
    emit_torch_link_args();
}
