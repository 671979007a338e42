//! The `autoseg` binary: argument parsing, wiring of stages and the terminal. No algorithms live
//! here; every stage is a library crate.

mod cli;
mod commands;
mod progress;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};

use commands::{EXIT_FAILURE, EXIT_USAGE};

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
        eprintln!("autoseg: {err:#}");
        return ExitCode::from(EXIT_USAGE);
    }
    run(command, cli.threads.unwrap_or(0))
}

fn run(command: Command, threads: usize) -> ExitCode {
    match commands::run(command, threads) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("autoseg: {err:#}");
            ExitCode::from(EXIT_FAILURE)
        }
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
