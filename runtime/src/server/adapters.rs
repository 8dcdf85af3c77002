//! The LoRA adapters a server holds, by name. Requests pick one by model id
//! or `"lora"` field; adapters load and unload while the server runs. A
//! sequence holds its adapter (an `Arc`), so unloading never disturbs one
//! that is generating: the adapter is freed when the last such sequence ends
//! (on llama.cpp, whose model owns its adapters, when the server stops).

use super::errors::ServeError;
use srl_models::{ActiveLora, LoraAdapter, Model};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

pub struct Adapter {
    pub name: String,
    pub path: PathBuf,
    pub scale: f32,
    /// The weights, as the backend that serves them loaded them.
    pub weights: Weights,
}

pub enum Weights {
    /// srl's engine: one entry, the adapter with its scale (a slice, as the
    /// model takes it).
    Native(Vec<ActiveLora>),
    /// llama.cpp's handle of the adapter (its model holds the tensors).
    #[cfg(feature = "llama-cpp")]
    LlamaCpp(crate::llama_cpp_backend::LlamaLora),
}

impl Adapter {
    /// Opens an adapter (GGUF LoRA file or PEFT folder) for srl's engine and
    /// checks it fits `model`.
    pub fn load(model: &Model, name: &str, path: &Path, scale: f32) -> Result<Adapter, ServeError> {
        let err = |source: srl_models::ModelError| ServeError::Adapter {
            name: name.to_string(),
            path: path.to_path_buf(),
            source: Box::new(source),
        };
        let mut adapter = LoraAdapter::open(path).map_err(err)?;
        adapter.fit(model).map_err(err)?;
        Ok(Adapter {
            name: name.to_string(),
            path: path.to_path_buf(),
            scale,
            weights: Weights::Native(vec![ActiveLora { adapter, scale }]),
        })
    }

    /// Loads a GGUF LoRA adapter (the file, or `adapter.gguf` in an adapter
    /// folder) into llama.cpp's `model`, which checks it fits.
    #[cfg(feature = "llama-cpp")]
    pub fn load_llama_cpp(
        model: &mut crate::llama_cpp_backend::LlamaCppModel,
        name: &str,
        path: &Path,
        scale: f32,
    ) -> Result<Adapter, ServeError> {
        let lora = model.load_lora(path).map_err(|e| ServeError::Adapter {
            name: name.to_string(),
            path: path.to_path_buf(),
            source: Box::new(e),
        })?;
        Ok(Adapter {
            name: name.to_string(),
            path: path.to_path_buf(),
            scale,
            weights: Weights::LlamaCpp(lora),
        })
    }
}

/// Whether `name` can name an adapter (it appears in URLs and model ids).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
}

#[derive(Default)]
pub struct Registry {
    map: RwLock<BTreeMap<String, Arc<Adapter>>>,
}

impl Registry {
    pub fn get(&self, name: &str) -> Option<Arc<Adapter>> {
        self.read().get(name).cloned()
    }

    /// Adds an adapter; false (and nothing changed) if the name is taken.
    pub fn insert(&self, adapter: Adapter) -> bool {
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        if map.contains_key(&adapter.name) {
            return false;
        }
        map.insert(adapter.name.clone(), Arc::new(adapter));
        true
    }

    pub fn remove(&self, name: &str) -> Option<Arc<Adapter>> {
        self.map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name)
    }

    pub fn list(&self) -> Vec<Arc<Adapter>> {
        self.read().values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<Adapter>>> {
        // A panic while holding the lock leaves a consistent map.
        self.map.read().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::valid_name;

    #[test]
    fn adapter_names() {
        assert!(valid_name("unit-conversion_v2.1"));
        assert!(!valid_name(""));
        assert!(!valid_name("a/b"));
        assert!(!valid_name("a b"));
    }
}
