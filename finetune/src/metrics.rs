//! The training log: `metrics.jsonl`, one JSON object a line, each with its
//! optimizer `step` first (`{"step":12,"loss":2.31,"lr":0.0003}`).
//!
//! Every line is written with one `write` call and reaches the file before
//! [`MetricsWriter::write`] returns, so a crash loses at most the line being
//! written. A run resumed from a checkpoint at step S first drops the lines
//! of steps after S (they were logged after that checkpoint and will be
//! logged again), so the file reads as if the run had never stopped.

use crate::atomic_file::write_atomic;
use serde_json::Value;
use srl_models::ModelError;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

type Result<T> = std::result::Result<T, ModelError>;

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ModelError + '_ {
    move |source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Appends metrics records to a `metrics.jsonl` file.
#[derive(Debug)]
pub struct MetricsWriter {
    path: PathBuf,
    file: File,
}

impl MetricsWriter {
    /// Starts a new log at `path`, replacing any file there.
    pub fn create(path: &Path) -> Result<MetricsWriter> {
        let file = File::create(path).map_err(io_err(path))?;
        Ok(MetricsWriter {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Continues the log of a run resumed at `step`: lines whose step is
    /// after `step` are removed (and a torn last line from a crash), the rest
    /// kept as they were. A missing file starts a new log.
    pub fn resume(path: &Path, step: u64) -> Result<MetricsWriter> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Self::create(path),
            Err(e) => return Err(io_err(path)(e)),
        };
        let mut kept = String::with_capacity(text.len());
        for (line, record) in lines(path, &text)? {
            if record_step(&record).is_none_or(|s| s <= step as f64) {
                kept.push_str(line);
                kept.push('\n');
            }
        }
        if kept != text {
            write_atomic(path, kept.as_bytes())?;
        }
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(io_err(path))?;
        Ok(MetricsWriter {
            path: path.to_path_buf(),
            file,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `record` (a JSON object, e.g. `json!({"loss": 2.3})`) as the
    /// line of optimizer step `step`. A `step` key in `record` is replaced.
    pub fn write(&mut self, step: u64, record: &Value) -> Result<()> {
        let Value::Object(fields) = record else {
            return Err(ModelError::Format {
                path: self.path.clone(),
                msg: format!("a metrics record must be a JSON object, not {record}"),
            });
        };
        let mut line = format!("{{\"step\":{step}");
        for (k, v) in fields.iter().filter(|(k, _)| k.as_str() != "step") {
            line.push(',');
            line.push_str(&Value::String(k.clone()).to_string());
            line.push(':');
            line.push_str(&v.to_string());
        }
        line.push_str("}\n");
        self.file
            .write_all(line.as_bytes())
            .and_then(|_| self.file.flush())
            .map_err(io_err(&self.path))
    }
}

/// The `step` of a record, if it has a numeric one.
fn record_step(record: &Value) -> Option<f64> {
    record.get("step").and_then(Value::as_f64)
}

/// The non-empty lines of a metrics file with their parsed records. A last
/// line without its newline that does not parse is a write cut short by a
/// crash and is left out; any other line that does not parse is an error.
fn lines<'a>(path: &Path, text: &'a str) -> Result<Vec<(&'a str, Value)>> {
    let torn_tail = !text.is_empty() && !text.ends_with('\n');
    let all: Vec<&str> = text.lines().collect();
    let mut out = Vec::with_capacity(all.len());
    for (i, line) in all.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(line) {
            Ok(v) => out.push((*line, v)),
            Err(_) if torn_tail && i + 1 == all.len() => {}
            Err(e) => {
                return Err(ModelError::Format {
                    path: path.to_path_buf(),
                    msg: format!("line {}: not a JSON record: {e}", i + 1),
                })
            }
        }
    }
    Ok(out)
}

/// Every record of a `metrics.jsonl` file, in order.
pub fn read_metrics(path: &Path) -> Result<Vec<Value>> {
    let text = std::fs::read_to_string(path).map_err(io_err(path))?;
    Ok(lines(path, &text)?.into_iter().map(|(_, v)| v).collect())
}

/// The (step, value) points of the records that have a numeric `key`: a
/// series to plot.
pub fn metric_points(records: &[Value], key: &str) -> Vec<(f64, f64)> {
    records
        .iter()
        .filter_map(|r| Some((record_step(r)?, r.get(key)?.as_f64()?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn temp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("srl-metrics-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn writes_one_object_per_line_step_first() {
        let dir = temp_dir("write");
        let path = dir.join("metrics.jsonl");
        let mut w = MetricsWriter::create(&path).unwrap();
        w.write(1, &json!({"loss": 2.5, "lr": 1e-4})).unwrap();
        w.write(2, &json!({"loss": 2.25, "step": 99, "split": "train"}))
            .unwrap();
        assert!(w.write(3, &json!([1, 2])).is_err());
        // Readable while the writer is open: each line is flushed.
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "{\"step\":1,\"loss\":2.5,\"lr\":0.0001}\n{\"step\":2,\"loss\":2.25,\"split\":\"train\"}\n"
        );
        let records = read_metrics(&path).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[1]["split"], "train");
        assert_eq!(
            metric_points(&records, "loss"),
            vec![(1.0, 2.5), (2.0, 2.25)]
        );
        assert_eq!(metric_points(&records, "lr"), vec![(1.0, 1e-4)]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn resume_drops_later_steps_and_torn_line() {
        let dir = temp_dir("resume");
        let path = dir.join("metrics.jsonl");
        let mut w = MetricsWriter::create(&path).unwrap();
        for step in 1..=6 {
            w.write(step, &json!({"loss": 10.0 / step as f64})).unwrap();
        }
        drop(w);
        // A crash in the middle of a line.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"{\"step\":7,\"lo").unwrap();
        drop(f);
        assert_eq!(read_metrics(&path).unwrap().len(), 6);

        let mut w = MetricsWriter::resume(&path, 4).unwrap();
        w.write(5, &json!({"loss": 1.5})).unwrap();
        let steps: Vec<f64> = metric_points(&read_metrics(&path).unwrap(), "loss")
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        assert_eq!(steps, vec![1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(read_metrics(&path).unwrap()[4]["loss"], 1.5);

        // Resuming a run that logged nothing yet creates the file.
        let fresh = dir.join("fresh.jsonl");
        MetricsWriter::resume(&fresh, 0).unwrap();
        assert!(read_metrics(&fresh).unwrap().is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_bad_line_names_the_file_and_line() {
        let dir = temp_dir("bad");
        let path = dir.join("metrics.jsonl");
        std::fs::write(&path, "{\"step\":1}\nnot json\n{\"step\":2}\n").unwrap();
        let err = read_metrics(&path).unwrap_err().to_string();
        assert!(
            err.contains("metrics.jsonl") && err.contains("line 2"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
