//! The `paper-digest` binary: parse the command line, run it, map the outcome to an exit code.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = paper_digest::cli::Cli::parse();
    paper_digest::logging::init(&cli.log_options());
    match paper_digest::dispatch::main(cli) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("paper-digest: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}
