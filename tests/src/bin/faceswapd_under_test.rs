//! The `faceswapd` entry point, built inside the tests package so that its tests and benches get
//! the binary's path from cargo (`CARGO_BIN_EXE_*` exists only for a package's own binaries).

fn main() -> std::process::ExitCode {
    faceswapd::cli::main()
}
