//! A folder of this fuzzing process's own, where the targets whose readers
//! take paths write each input.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("srl-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("create the fuzzing folder");
        d
    })
}

/// Writes `data` as `name` in a fresh subfolder `sub` and returns the folder.
pub fn folder_with(sub: &str, name: &str, data: &[u8]) -> PathBuf {
    let d = dir().join(sub);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create a fuzzing subfolder");
    std::fs::write(d.join(name), data).expect("write a fuzz input");
    d
}
