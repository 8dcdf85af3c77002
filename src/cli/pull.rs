//! `srl pull`, `srl list`, `srl rm`: the model cache. `pull` takes a
//! catalogue name (`srl list --catalogue` shows them), an http(s) URL or
//! `hf:OWNER/REPO/FILE.gguf`; every command's `--model` takes a catalogue
//! name or a cached file's name as well as a path.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use srl_models::formats::gguf::GgufFile;
use srl_models::formats::quantize::file_type_name;
use srl_runtime::{model_cache, model_catalogue, model_download};
use std::path::Path;

#[derive(clap::Args)]
pub struct Args {
    /// A catalogue name (smollm2:135m, qwen2.5-coder:0.5b, ...), an http(s) URL or hf:OWNER/REPO/FILE.gguf [default: smollm2:135m]
    model: Option<String>,
    /// Fetch again even if the model is cached
    #[arg(long)]
    force: bool,
    /// The file's SHA-256, checked after a URL download (catalogue models carry theirs)
    #[arg(long, value_name = "HEX")]
    sha256: Option<String>,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let spec = a
        .model
        .as_deref()
        .unwrap_or(model_catalogue::default_model().name);
    let mut log = |line: &str| eprintln!("{line}");
    if let Some(url) = model_download::url_of(spec) {
        let name = model_download::file_name_of(&url)
            .ok_or_else(|| anyhow::anyhow!("{url}: the URL does not end in a file name"))?;
        let dest = model_cache::models_dir().join(&name);
        if dest.exists() && !a.force {
            eprintln!("already cached (--force fetches it again)");
            println!("{}", dest.display());
            return Ok(());
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {bytes}/{total_bytes} [{bar:30}] {bytes_per_sec} ETA {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        let path = model_download::download(
            &url,
            &dest,
            a.sha256.as_deref(),
            &mut |done, total| {
                if let Some(t) = total {
                    bar.set_length(t);
                }
                bar.set_position(done);
            },
            &mut |line| bar.suspend(|| eprintln!("{line}")),
        );
        bar.finish_and_clear();
        let path = path?;
        if a.sha256.is_none() {
            eprintln!(
                "SHA-256 {} (not checked: no --sha256 given)",
                model_download::sha256_of(&path)?
            );
        }
        println!("{}", path.display());
        return Ok(());
    }
    let m = model_catalogue::find(spec).ok_or_else(|| {
        anyhow::anyhow!(
            "'{spec}' is not a model srl knows ({}), an http(s) URL or hf:OWNER/REPO/FILE",
            model_catalogue::names()
        )
    })?;
    let p = model_cache::model_path(m);
    let path = if p.exists() && !a.force {
        model_cache::verify(&p, m.size, m.sha256)?;
        eprintln!("already cached and verified");
        p
    } else {
        model_cache::fetch_model(m, &mut log)?
    };
    println!("{}", path.display());
    Ok(())
}

#[derive(clap::Args)]
pub struct ListArgs {
    /// List the catalogue (what `srl pull` can fetch) instead of the cache
    #[arg(long)]
    catalogue: bool,
}

/// The architecture and the quantization of a GGUF file: its
/// `general.file_type`, else the type holding most bytes of the matrices
/// (the token embedding left out: it is often kept wider).
fn family_and_quant(path: &Path) -> (String, String) {
    let Ok(g) = GgufFile::open(path) else {
        return ("?".into(), "not a readable GGUF".into());
    };
    let quant = match g.get_u64("general.file_type").and_then(file_type_name) {
        Some(q) => q.to_string(),
        None => {
            let mut bytes: Vec<(String, usize)> = Vec::new();
            for t in g
                .tensors
                .iter()
                .filter(|t| t.dims.len() >= 2 && t.name != "token_embd.weight")
            {
                let ty = t.ty.to_string();
                match bytes.iter_mut().find(|(k, _)| *k == ty) {
                    Some((_, n)) => *n += t.size,
                    None => bytes.push((ty, t.size)),
                }
            }
            bytes
                .iter()
                .max_by_key(|(_, n)| *n)
                .map(|(k, _)| k.to_uppercase())
                .unwrap_or_default()
        }
    };
    (g.architecture().unwrap_or("?").to_string(), quant)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
}

pub fn list(a: ListArgs) -> anyhow::Result<()> {
    if a.catalogue {
        println!("{:<20} {:>11}  {:<20} about", "name", "size", "licence");
        for m in model_catalogue::CATALOGUE {
            let cached = if model_cache::model_path(m).exists() {
                " (cached)"
            } else {
                ""
            };
            println!(
                "{:<20} {:>11}  {:<20} {}{cached}",
                m.name,
                mib(m.size),
                m.licence,
                m.about
            );
        }
        return Ok(());
    }
    let dir = model_cache::models_dir();
    let mut files: Vec<_> = match std::fs::read_dir(&dir) {
        Ok(d) => d
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    if files.is_empty() {
        println!(
            "no models in {} (srl pull NAME fetches one; srl list --catalogue names them)",
            dir.display()
        );
        return Ok(());
    }
    println!(
        "{:<40} {:>11}  {:<10} {:<8} file",
        "name", "size", "family", "quant"
    );
    for p in files {
        let file = p
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let size = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
        if file.ends_with(".part") {
            println!(
                "{:<40} {:>11}  {:<10} {:<8} {} (partial download: srl pull resumes it)",
                file,
                mib(size),
                "-",
                "-",
                p.display()
            );
            continue;
        }
        let name =
            model_catalogue::by_file_name(&file).map_or(file.clone(), |m| m.name.to_string());
        let (family, quant) = family_and_quant(&p);
        println!(
            "{name:<40} {:>11}  {family:<10} {quant:<8} {}",
            mib(size),
            p.display()
        );
    }
    Ok(())
}

#[derive(clap::Args)]
pub struct RmArgs {
    /// A catalogue name or a cached file's name (as `srl list` shows them)
    name: String,
}

pub fn rm(a: RmArgs) -> anyhow::Result<()> {
    let dir = model_cache::models_dir();
    let file = match model_catalogue::find(&a.name) {
        Some(m) => m.file_name.to_string(),
        None => a.name.clone(),
    };
    if file.contains('/') || file.contains('\\') || file.starts_with('.') {
        anyhow::bail!(
            "'{}' is not a name in the cache (srl list shows them)",
            a.name
        );
    }
    let path = dir.join(&file);
    if !path.is_file() {
        anyhow::bail!(
            "'{}' is not in the cache {} (srl list shows what is)",
            a.name,
            dir.display()
        );
    }
    std::fs::remove_file(&path)?;
    println!("removed {}", path.display());
    Ok(())
}
