//! `faceswapd`: the Faceswap++ daemon and command line.

fn main() -> std::process::ExitCode {
    faceswapd::cli::main()
}
