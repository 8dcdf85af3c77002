//! `srl pull`: fetch the default model.

use srl_runtime::model_cache;

#[derive(clap::Args)]
pub struct Args {
    /// Fetch again even if the model is cached.
    #[arg(long)]
    force: bool,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let mut log = |line: &str| eprintln!("{line}");
    let path = if a.force {
        model_cache::fetch_default_model(&mut log)?
    } else {
        let p = model_cache::default_model_path();
        if p.exists() {
            let m = &model_cache::DEFAULT_MODEL;
            model_cache::verify(&p, m.size, m.sha256)?;
            eprintln!("already cached and verified");
            p
        } else {
            model_cache::fetch_default_model(&mut log)?
        }
    };
    println!("{}", path.display());
    Ok(())
}
