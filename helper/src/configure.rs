//! `configure`: set up docker's and containers' configuration to use this helper (being implemented).

#[derive(clap::Args, Debug)]
pub struct ConfigureArgs {}

/// Returns the exit code.
pub fn run(_args: &ConfigureArgs) -> i32 {
    eprintln!("configure is not built yet");
    1
}
