//! The `autoseg` binary: argument parsing, wiring of stages and the terminal. No algorithms live
//! here; every stage is a library crate.

mod cli;
mod commands;
mod launch;
mod progress;
mod signals;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};

use commands::{EXIT_FAILURE, EXIT_USAGE};

/// The system allocator with the per-thread cap the DICOM reader sets while dicom-rs parses a
/// file (`autoseg_preprocessing::with_allocation_cap`).
#[global_allocator]
static ALLOCATOR: autoseg_preprocessing::CappedAllocator = autoseg_preprocessing::CappedAllocator;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    if cli.version {
        println!("{}", version_text());
        return ExitCode::SUCCESS;
    }
    let Some(command) = cli.command else {
        eprintln!("autoseg: no command given; see `autoseg --help`");
        return ExitCode::from(EXIT_USAGE);
    };
    if let Some(bytes) = cli.max_volume_gb {
        autoseg_preprocessing::limits::set_volume_ceiling(bytes);
    }
    autoseg_trainer::loader::keep_freed_blocks();
    if let Err(err) = configure_threads(cli.threads) {
        eprintln!("autoseg: {}", error_line(&err));
        return ExitCode::from(EXIT_USAGE);
    }
    run(command, cli.threads.unwrap_or(0))
}

fn run(command: Command, threads: usize) -> ExitCode {
    match commands::run(command, threads) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("autoseg: {}", error_line(&err));
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// The error and its causes on one line, `context: cause: cause`, each text once: a cause
/// whose text its parent's message already quotes (many library errors say `{path}: cannot
/// read: {source}` and also expose the source) is not repeated, nor a context a cause repeats.
pub(crate) fn error_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = one_line(&cause.to_string());
        if text.is_empty() || line.contains(&text) {
            continue;
        }
        // A cause that opens with the context already printed (`case X` then `case X: ...`).
        if !line.is_empty() && text.starts_with(&format!("{line}: ")) {
            line = text;
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// A multi-line message on one line: parsers such as toml's quote the offending source line
/// with a caret (`20 | batch_size = 22` / `   | ^`); those drawing lines are dropped and the
/// rest joined: `TOML parse error at line 20, column 1: invalid array; expected ']'`.
fn one_line(text: &str) -> String {
    let is_drawing = |l: &str| {
        let l = l.trim_start_matches(|c: char| c.is_ascii_digit() || c == ' ');
        l.starts_with('|')
    };
    let mut lines = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !is_drawing(l));
    let Some(first) = lines.next() else {
        return String::new();
    };
    let rest: Vec<&str> = lines.collect();
    if rest.is_empty() {
        first.to_string()
    } else {
        format!("{first}: {}", rest.join("; "))
    }
}

fn version_text() -> String {
    format!(
        "autoseg {}\n{}",
        env!("CARGO_PKG_VERSION"),
        autoseg_network::torch_runtime()
    )
}

fn configure_threads(threads: Option<usize>) -> anyhow::Result<()> {
    if let Some(n) = threads {
        anyhow::ensure!(n > 0, "--threads must be at least 1");
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()?;
    }
    Ok(())
}

fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::new(level);
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cause_is_printed_once() {
        let disk = std::io::Error::other("No space left on device (os error 28)");
        let err = anyhow::Error::new(disk)
            .context("fold_0/checkpoint.toml: cannot write: No space left on device (os error 28)")
            .context("cannot train 3d_fullres fold 0");
        assert_eq!(
            error_line(&err),
            "cannot train 3d_fullres fold 0: fold_0/checkpoint.toml: cannot write: No space left on device (os error 28)"
        );
        let plain = anyhow::anyhow!("inner").context("outer");
        assert_eq!(error_line(&plain), "outer: inner");
        let repeated = anyhow::anyhow!("case c_1: cannot resample").context("case c_1");
        assert_eq!(error_line(&repeated), "case c_1: cannot resample");
        let toml = "TOML parse error at line 20, column 1\n   |\n20 | batch_size = 22\n   | ^\ninvalid array\nexpected `]`\n";
        assert_eq!(
            one_line(toml),
            "TOML parse error at line 20, column 1: invalid array; expected `]`"
        );
    }
}
