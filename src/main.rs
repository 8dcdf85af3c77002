//! `srl`: run small reasoning models on ordinary machines and teach them new
//! skills there. Each subcommand parses its arguments and calls the library.

mod cli;
mod line_aligned_alloc;

#[global_allocator]
static ALLOC: line_aligned_alloc::LineAlignedAlloc = line_aligned_alloc::LineAlignedAlloc;

fn main() {
    quiet_on_closed_stdout();
    if let Err(e) = cli::run() {
        eprintln!("error: {}", error_chain(&e));
        std::process::exit(1);
    }
}

/// `srl info | head` closes srl's stdout early, and the next `println!`
/// panics. Exit quietly as a killed-by-SIGPIPE process would (status 141)
/// instead: the reader asked for no more. (The signal itself stays ignored,
/// as Rust sets it, so the server's sockets never kill the process.)
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let msg = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.starts_with("failed printing to stdout") && msg.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info)
    }));
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
