//! `srl`: run small reasoning models on ordinary machines and teach them new
//! skills there. Each subcommand parses its arguments and calls the library.

mod cli;

fn main() {
    if let Err(e) = cli::run() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
