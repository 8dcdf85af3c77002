//! `srl`: run small reasoning models on ordinary machines and teach them new
//! skills there. Each subcommand parses its arguments and calls the library.

mod cli;
mod line_aligned_alloc;

#[global_allocator]
static ALLOC: line_aligned_alloc::LineAlignedAlloc = line_aligned_alloc::LineAlignedAlloc;

fn main() {
    if let Err(e) = cli::run() {
        eprintln!("error: {}", error_chain(&e));
        std::process::exit(1);
    }
}

/// The error and its causes joined with ": ", leaving out a cause whose text
/// the message already carries (many errors print their source themselves).
fn error_chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn causes_already_in_the_message_are_not_repeated() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file");
        let e = anyhow::Error::new(io).context("/x: No such file");
        assert_eq!(super::error_chain(&e), "/x: No such file");
        let e = anyhow::anyhow!("inner").context("outer");
        assert_eq!(super::error_chain(&e), "outer: inner");
    }
}
