//! Compiles the test OFX host's C-variadic shim (stable Rust cannot define variadic functions).
fn main() {
    println!("cargo:rerun-if-changed=src/ofx_shim.c");
    cc::Build::new()
        .file("src/ofx_shim.c")
        .warnings(true)
        .compile("ofx_shim");
}
