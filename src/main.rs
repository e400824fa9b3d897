use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cartscope::cli::Cli::parse();
    match cartscope::commands::run(cli) {
        Ok(code) => code,
        Err(e) if cartscope::output::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cartscope: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
