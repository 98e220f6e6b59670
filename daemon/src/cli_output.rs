//! Standard output for CLI commands: a reader that goes away (`faceswapd status | head -2`)
//! ends the command quietly instead of panicking as `println!` does.

use std::io::Write;

/// Writes `args` to stdout; a closed pipe exits quietly (status 0), any other failure exits
/// with a message.
pub fn write(args: std::fmt::Arguments<'_>, newline: bool) {
    let mut out = std::io::stdout().lock();
    let written = out
        .write_fmt(args)
        .and_then(|()| {
            if newline {
                out.write_all(b"\n")
            } else {
                Ok(())
            }
        })
        .and_then(|()| out.flush());
    match written {
        Ok(()) => {}
        // The reader has all it wanted: stop as `cat` or `ls` would, without a word.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => {
            eprintln!("faceswapd: cannot write to standard output: {e}");
            std::process::exit(1)
        }
    }
}

/// `println!` for CLI results (see [`write`]).
macro_rules! outln {
    () => { $crate::cli_output::write(format_args!(""), true) };
    ($($arg:tt)*) => { $crate::cli_output::write(format_args!($($arg)*), true) };
}

/// `print!` for CLI results (see [`write`]).
macro_rules! out {
    ($($arg:tt)*) => { $crate::cli_output::write(format_args!($($arg)*), false) };
}

pub(crate) use {out, outln};
