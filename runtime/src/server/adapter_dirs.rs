//! Where a running server may load adapters from: only the directories its
//! operator named (`srl serve --adapter-dir DIR`). A request's path is
//! resolved inside them (`..`, and links that lead out, refused) before
//! anything is opened, and a refusal reads the same whether the path exists
//! outside them or not, so the endpoint tells a client nothing about the
//! rest of the file system.

use super::errors::ServeError;
use std::path::{Component, Path, PathBuf};

/// The allowed directories, resolved (links followed) at start.
#[derive(Debug, Default)]
pub struct AdapterDirs {
    dirs: Vec<PathBuf>,
}

/// Why a path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// No directory was named: run-time loading is off.
    Off,
    /// The path is not an existing file or folder inside the directories.
    NotInside,
}

impl Refused {
    pub fn message(self) -> &'static str {
        match self {
            Refused::Off => {
                "loading adapters at run time is off: start srl serve with --adapter-dir DIR \
                 to allow adapters from DIR"
            }
            Refused::NotInside => {
                "no adapter at this path inside the adapter directories (--adapter-dir): \
                 paths are resolved inside them, and '..' or links that lead out are refused"
            }
        }
    }
}

impl AdapterDirs {
    /// Resolves the directories; an error names one that is not a directory.
    pub fn new(dirs: &[PathBuf]) -> Result<AdapterDirs, ServeError> {
        let mut out = Vec::with_capacity(dirs.len());
        for d in dirs {
            let c = d
                .canonicalize()
                .ok()
                .filter(|c| c.is_dir())
                .ok_or_else(|| {
                    ServeError::Config(format!("--adapter-dir {}: not a directory", d.display()))
                })?;
            out.push(c);
        }
        Ok(AdapterDirs { dirs: out })
    }

    /// The file or folder a request's `path` names: absolute, or relative to
    /// one of the directories (tried in order); after following links it
    /// must still lie inside one of them.
    pub fn resolve(&self, path: &str) -> Result<PathBuf, Refused> {
        if self.dirs.is_empty() {
            return Err(Refused::Off);
        }
        let p = Path::new(path);
        if path.is_empty() || p.components().any(|c| c == Component::ParentDir) {
            return Err(Refused::NotInside);
        }
        let candidates: Vec<PathBuf> = if p.is_absolute() {
            vec![p.to_path_buf()]
        } else {
            self.dirs.iter().map(|d| d.join(p)).collect()
        };
        candidates
            .iter()
            .filter_map(|c| c.canonicalize().ok())
            .find(|c| self.dirs.iter().any(|d| c.starts_with(d) && c != d))
            .ok_or(Refused::NotInside)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_inside_the_directories_resolve() {
        let root = std::env::temp_dir().join(format!("srl-adapter-dirs-{}", std::process::id()));
        let (inside, outside) = (root.join("allowed"), root.join("other"));
        std::fs::create_dir_all(inside.join("peft")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(inside.join("a.gguf"), "x").unwrap();
        std::fs::write(outside.join("secret.gguf"), "x").unwrap();
        std::os::unix::fs::symlink(outside.join("secret.gguf"), inside.join("out.gguf")).unwrap();
        std::os::unix::fs::symlink(inside.join("a.gguf"), inside.join("in.gguf")).unwrap();

        assert_eq!(AdapterDirs::default().resolve("a.gguf"), Err(Refused::Off));
        let dirs = AdapterDirs::new(std::slice::from_ref(&inside)).unwrap();
        let real = inside.canonicalize().unwrap();
        assert_eq!(dirs.resolve("a.gguf"), Ok(real.join("a.gguf")));
        assert_eq!(dirs.resolve("peft"), Ok(real.join("peft")));
        let abs = inside.join("a.gguf");
        assert_eq!(dirs.resolve(abs.to_str().unwrap()), Ok(real.join("a.gguf")));
        assert_eq!(dirs.resolve("in.gguf"), Ok(real.join("a.gguf")));
        // Outside, missing, escaping: one answer for all.
        for p in [
            "out.gguf",
            "../other/secret.gguf",
            outside.join("secret.gguf").to_str().unwrap(),
            "/etc/passwd",
            "missing.gguf",
            "",
            ".",
        ] {
            assert_eq!(dirs.resolve(p), Err(Refused::NotInside), "{p}");
        }
        assert!(AdapterDirs::new(&[root.join("nope")]).is_err());
        std::fs::remove_dir_all(&root).ok();
    }
}
