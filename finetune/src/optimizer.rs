//! AdamW exactly as PyTorch's `torch.optim.AdamW` computes it on the CPU
//! (its single-tensor path, amsgrad off), gradient clipping by the global L2
//! norm, and the optimizer state file that lets training resume exactly.
//!
//! One step `t` (counted from 1) for every trainable value `p` with gradient
//! `g`, first moment `m` and second moment `v`:
//! ```text
//! p = p * (1 - lr*wd)                                     decoupled weight decay
//! m = lerp(m, g, 1 - beta1)                               = beta1*m + (1-beta1)*g
//! v = v*beta2 + (1 - beta2)*g*g
//! p = p - lr/(1 - beta1^t) * m / (sqrt(v)/sqrt(1 - beta2^t) + eps)
//! ```
//! Rounding follows PyTorch: the scalars (`1 - lr*wd`, the bias corrections,
//! `lr/(1 - beta1^t)`) are computed in f64 like Python floats and rounded to
//! f32 once; the element-wise work is f32 in the order written above, with
//! `lerp` done as ATen's vectorized kernel does it, one fused multiply-add.
//! scripts/reference/adamw_reference.py holds the same algorithm in NumPy and
//! wrote the numbers the tests compare with.

use crate::atomic_file::write_atomic;
use serde::{Deserialize, Serialize};
use srl_models::{LoraParams, ModelError};
use std::collections::HashMap;
use std::path::Path;

type Result<T> = std::result::Result<T, ModelError>;

/// AdamW's hyper-parameters, other than the learning rate, which the
/// schedule gives to every step. f64 like the Python floats PyTorch takes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    /// PyTorch's defaults: betas (0.9, 0.999), eps 1e-8, weight decay 0.01.
    fn default() -> Self {
        AdamWConfig {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        }
    }
}

/// AdamW and its state: the steps taken and both moments, each the shape of
/// the parameters (PyTorch's `state[p]["step"]`, `exp_avg`, `exp_avg_sq`;
/// one step count serves every matrix since all are stepped together).
#[derive(Debug, Clone, PartialEq)]
pub struct AdamW {
    pub config: AdamWConfig,
    /// Steps taken so far (0 before the first).
    pub step: u64,
    /// First moment (`exp_avg`).
    pub m: LoraParams,
    /// Second moment (`exp_avg_sq`).
    pub v: LoraParams,
}

/// The scalars of one step, already rounded to f32 where PyTorch rounds them.
#[derive(Debug, Clone, Copy)]
struct StepScalars {
    /// `1 - lr*wd`.
    decay: f32,
    /// `1 - beta1`, the weight of `lerp`.
    w1: f32,
    beta2: f32,
    /// `1 - beta2`.
    w2: f32,
    /// `sqrt(1 - beta2^t)`.
    bc2_sqrt: f32,
    eps: f32,
    /// `-lr / (1 - beta1^t)`.
    neg_step_size: f32,
}

impl StepScalars {
    fn new(c: &AdamWConfig, lr: f32, step: u64) -> StepScalars {
        // As torch/optim/adam.py `_single_tensor_adam` (decoupled weight decay).
        let lr = lr as f64;
        let t = step as f64;
        let bias_correction1 = 1.0 - c.beta1.powf(t);
        let bias_correction2 = 1.0 - c.beta2.powf(t);
        StepScalars {
            decay: (1.0 - lr * c.weight_decay) as f32,
            w1: (1.0 - c.beta1) as f32,
            beta2: c.beta2 as f32,
            w2: (1.0 - c.beta2) as f32,
            bc2_sqrt: bias_correction2.powf(0.5) as f32,
            eps: c.eps as f32,
            neg_step_size: (-(lr / bias_correction1)) as f32,
        }
    }
}

/// ATen's `lerp_vec`: `start + weight*(end - start)`, computed from the
/// nearer end so that weight 1 gives `end` exactly.
#[inline(always)]
fn lerp(start: f32, end: f32, weight: f32) -> f32 {
    if weight.abs() < 0.5 {
        weight.mul_add(end - start, start)
    } else {
        (weight - 1.0).mul_add(end - start, end)
    }
}

/// The update of one matrix; all four slices are the same flat [n] matrix.
#[inline(always)]
fn update_slice(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], k: StepScalars) {
    assert!(g.len() == p.len() && m.len() == p.len() && v.len() == p.len());
    for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        *p *= k.decay; // param.mul_(1 - lr * weight_decay)
        *m = lerp(*m, g, k.w1); // exp_avg.lerp_(grad, 1 - beta1)
        *v = *v * k.beta2 + k.w2 * g * g; // exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        let denom = v.sqrt() / k.bc2_sqrt + k.eps; // (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
        *p += k.neg_step_size * *m / denom; // param.addcdiv_(exp_avg, denom, value=-step_size)
    }
}

/// [`update_slice`] compiled with FMA and AVX2, so `mul_add` is one
/// instruction and the loop vectorizes; the results are identical (every
/// operation is correctly rounded either way).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn update_slice_avx2(
    p: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    k: StepScalars,
) {
    update_slice(p, g, m, v, k)
}

fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

impl AdamW {
    /// A fresh optimizer for `params`: step 0, both moments zero.
    pub fn new(config: AdamWConfig, params: &LoraParams) -> AdamW {
        AdamW {
            config,
            step: 0,
            m: params.zeros_like(),
            v: params.zeros_like(),
        }
    }

    /// One AdamW step of `params` along `grads` at learning rate `lr`.
    /// Panics if `grads` or the state are not the shapes of `params`.
    pub fn step(&mut self, params: &mut LoraParams, grads: &LoraParams, lr: f32) {
        self.step_with(params, grads, lr, has_avx2_fma());
    }

    fn step_with(&mut self, params: &mut LoraParams, grads: &LoraParams, lr: f32, fast: bool) {
        assert_eq!(
            params.tensors.len(),
            grads.tensors.len(),
            "grads do not match params"
        );
        assert_eq!(
            params.tensors.len(),
            self.m.tensors.len(),
            "state does not match params"
        );
        self.step += 1;
        let k = StepScalars::new(&self.config, lr, self.step);
        let slices = params
            .slices_mut()
            .zip(grads.slices())
            .zip(self.m.slices_mut())
            .zip(self.v.slices_mut());
        for (((p, g), m), v) in slices {
            #[cfg(target_arch = "x86_64")]
            if fast {
                // SAFETY: `fast` is true only where AVX2 and FMA were detected.
                unsafe { update_slice_avx2(p, g, m, v, k) };
                continue;
            }
            #[cfg(not(target_arch = "x86_64"))]
            let _ = fast;
            update_slice(p, g, m, v, k);
        }
    }

    /// Writes the state to `path` (`optimizer.safetensors`) atomically: per
    /// adapted layer `<base>.lora_a.exp_avg`, `.lora_a.exp_avg_sq`,
    /// `.lora_b.exp_avg`, `.lora_b.exp_avg_sq` (f32, A [rank, cols], B
    /// [rows, rank]), the step count and hyper-parameters as metadata.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut buffers = Vec::new();
        for (m, v) in self.m.tensors.iter().zip(&self.v.tensors) {
            let base = m.base_name();
            let rank = self.m.config.rank;
            for (part, shape, mm, vv) in [
                ("lora_a", [rank, m.cols], &m.a, &v.a),
                ("lora_b", [m.rows, rank], &m.b, &v.b),
            ] {
                buffers.push((format!("{base}.{part}.exp_avg"), shape, le_bytes(mm)));
                buffers.push((format!("{base}.{part}.exp_avg_sq"), shape, le_bytes(vv)));
            }
        }
        let mut views = Vec::with_capacity(buffers.len());
        for (name, shape, bytes) in &buffers {
            let view = safetensors::tensor::TensorView::new(
                safetensors::Dtype::F32,
                shape.to_vec(),
                bytes,
            )
            .map_err(|e| format_err(path, format!("tensor '{name}': {e}")))?;
            views.push((name.clone(), view));
        }
        let c = &self.config;
        let metadata: HashMap<String, String> = [
            ("format", "srl-adamw".to_string()),
            ("step", self.step.to_string()),
            ("beta1", c.beta1.to_string()),
            ("beta2", c.beta2.to_string()),
            ("eps", c.eps.to_string()),
            ("weight_decay", c.weight_decay.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let bytes = safetensors::serialize(views, &Some(metadata))
            .map_err(|e| format_err(path, format!("cannot serialize: {e}")))?;
        write_atomic(path, &bytes)
    }

    /// Reads a state [`AdamW::save`] wrote, for the adapter `params` (every
    /// tensor must be there, in its shape, and nothing else). The moments
    /// come back bit for bit; `config` is the run's (the file's copy of the
    /// hyper-parameters is for people to read).
    pub fn load(path: &Path, config: AdamWConfig, params: &LoraParams) -> Result<AdamW> {
        let bytes = std::fs::read(path).map_err(|source| ModelError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)
            .map_err(|e| format_err(path, format!("not a valid safetensors file: {e}")))?;
        let step = meta
            .metadata()
            .as_ref()
            .and_then(|m| m.get("step"))
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| format_err(path, "no step count in the metadata"))?;
        let st = safetensors::SafeTensors::deserialize(&bytes)
            .map_err(|e| format_err(path, format!("not a valid safetensors file: {e}")))?;
        let mut opt = AdamW::new(config, params);
        opt.step = step;
        let rank = params.config.rank;
        let mut expected = 0;
        for (m, v) in opt.m.tensors.iter_mut().zip(opt.v.tensors.iter_mut()) {
            let base = m.base_name();
            let a_shape = vec![rank, m.cols];
            let b_shape = vec![m.rows, rank];
            for (name, shape, dst) in [
                (format!("{base}.lora_a.exp_avg"), &a_shape, &mut m.a),
                (format!("{base}.lora_a.exp_avg_sq"), &a_shape, &mut v.a),
                (format!("{base}.lora_b.exp_avg"), &b_shape, &mut m.b),
                (format!("{base}.lora_b.exp_avg_sq"), &b_shape, &mut v.b),
            ] {
                let view = st.tensor(&name).map_err(|_| ModelError::MissingTensor {
                    path: path.to_path_buf(),
                    name: name.clone(),
                })?;
                if view.dtype() != safetensors::Dtype::F32 {
                    return Err(format_err(
                        path,
                        format!("tensor '{name}' is {:?}, expected F32", view.dtype()),
                    ));
                }
                if view.shape() != shape.as_slice() || dst.len() != shape.iter().product::<usize>()
                {
                    return Err(ModelError::Shape {
                        path: path.to_path_buf(),
                        name,
                        expected: shape.clone(),
                        actual: view.shape().to_vec(),
                    });
                }
                for (d, b) in dst.iter_mut().zip(view.data().chunks_exact(4)) {
                    *d = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                }
                expected += 1;
            }
        }
        if st.len() != expected {
            return Err(format_err(
                path,
                format!(
                    "holds {} tensors, the adapter's optimizer state has {expected}: it belongs to another adapter",
                    st.len()
                ),
            ));
        }
        Ok(opt)
    }
}

fn le_bytes(x: &[f32]) -> Vec<u8> {
    x.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn format_err(path: &Path, msg: impl Into<String>) -> ModelError {
    ModelError::Format {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

/// The L2 norm of all gradients together, summed in f64.
pub fn grad_norm(grads: &LoraParams) -> f64 {
    grads
        .slices()
        .flat_map(|s| s.iter())
        .map(|&g| g as f64 * g as f64)
        .sum::<f64>()
        .sqrt()
}

/// Scales `grads` so their global L2 norm is at most `max_norm`, as
/// `torch.nn.utils.clip_grad_norm_` does: by `max_norm / (norm + 1e-6)`
/// when that is below 1. Returns the norm before clipping. A non-finite
/// norm leaves the gradients as they are: the caller should skip the step.
pub fn clip_grad_norm(grads: &mut LoraParams, max_norm: f32) -> f32 {
    let norm = grad_norm(grads);
    let coef = max_norm as f64 / (norm + 1e-6);
    if norm.is_finite() && coef < 1.0 {
        let coef = coef as f32;
        for s in grads.slices_mut() {
            for g in s {
                *g *= coef;
            }
        }
    }
    norm as f32
}

/// The end of every trainer's step: a non-finite loss or gradient stops the
/// run (the error names update `step + 1`; the caller adds its last
/// checkpoint), else the gradient is clipped to `max_norm` (0: not clipped)
/// and the optimizer steps at `lr`. Returns the norm before clipping.
#[allow(clippy::too_many_arguments)]
pub fn apply_gradients(
    params: &mut LoraParams,
    grads: &mut LoraParams,
    opt: &mut AdamW,
    loss: f64,
    max_norm: f32,
    lr: f32,
    step: u64,
) -> std::result::Result<f32, crate::TrainError> {
    if !loss.is_finite() || grads.slices().any(|g| g.iter().any(|v| !v.is_finite())) {
        return Err(crate::TrainError::NonFinite {
            step: step + 1,
            loss,
            checkpoint: None,
        });
    }
    let norm = if max_norm > 0.0 {
        clip_grad_norm(grads, max_norm)
    } else {
        grad_norm(grads) as f32
    };
    opt.step(params, grads, lr);
    Ok(norm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use srl_models::{LoraConfig, LoraTensor, Target};

    /// Tolerance for the NumPy reference: PyTorch's float32 arithmetic,
    /// reproduced in another language.
    const REFERENCE_REL_TOL: f64 = 1e-6;

    /// Two adapted layers whose A and B are [2, 9] and [5, 2]: odd lengths, so
    /// vectorized loops have tails.
    fn params_from(flat: &[Vec<f32>]) -> LoraParams {
        let config = LoraConfig {
            rank: 2,
            alpha: 4.0,
            targets: vec![Target::Q, Target::V],
            ..LoraConfig::default()
        };
        let tensors = [(0, Target::Q), (1, Target::V)]
            .into_iter()
            .enumerate()
            .map(|(i, (layer, target))| LoraTensor {
                layer,
                target,
                rows: 5,
                cols: 9,
                a: flat[2 * i].clone(),
                b: flat[2 * i + 1].clone(),
            })
            .collect();
        LoraParams::from_tensors(config, tensors)
    }

    fn f32s(v: &Value) -> Vec<f32> {
        v.as_array()
            .expect("array")
            .iter()
            .map(|x| x.as_f64().expect("number") as f32)
            .collect()
    }

    fn matrices(v: &Value) -> Vec<Vec<f32>> {
        v.as_array().expect("array").iter().map(f32s).collect()
    }

    fn flat(p: &LoraParams) -> Vec<f32> {
        p.slices().flat_map(|s| s.iter().copied()).collect()
    }

    fn rel_err(a: f32, b: f32) -> f64 {
        let (a, b) = (a as f64, b as f64);
        if a == b {
            0.0
        } else {
            (a - b).abs() / a.abs().max(b.abs())
        }
    }

    #[test]
    fn adamw_matches_reference() {
        let text = include_str!("../tests/data/adamw_reference.json");
        let doc: Value = serde_json::from_str(text).expect("reference json");
        let mut worst = 0.0f64;
        let (mut bitwise, mut total) = (0usize, 0usize);
        for case in doc["cases"].as_array().expect("cases") {
            let cfg = AdamWConfig {
                beta1: case["beta1"].as_f64().unwrap(),
                beta2: case["beta2"].as_f64().unwrap(),
                eps: case["eps"].as_f64().unwrap(),
                weight_decay: case["weight_decay"].as_f64().unwrap(),
            };
            let mut params = params_from(&matrices(&case["params"]));
            let mut opt = AdamW::new(cfg, &params);
            for s in case["steps"].as_array().unwrap() {
                let grads = params_from(&matrices(&s["grads"]));
                let lr = s["lr"].as_f64().unwrap() as f32;
                opt.step(&mut params, &grads, lr);
                for (got, want) in [
                    (&params, &s["params"]),
                    (&opt.m, &s["exp_avg"]),
                    (&opt.v, &s["exp_avg_sq"]),
                ] {
                    let want: Vec<f32> = matrices(want).concat();
                    let got = flat(got);
                    assert_eq!(got.len(), want.len());
                    for (&g, &w) in got.iter().zip(&want) {
                        let e = rel_err(g, w);
                        worst = worst.max(e);
                        bitwise += (g.to_bits() == w.to_bits()) as usize;
                        total += 1;
                        assert!(
                            e <= REFERENCE_REL_TOL,
                            "{} step {}: {g} vs reference {w}",
                            case["name"],
                            opt.step
                        );
                    }
                }
            }
        }
        eprintln!("AdamW vs reference: max rel err {worst:.3e}, {bitwise}/{total} bit-identical");
    }

    #[test]
    fn fast_path_equals_portable_path() {
        let mut p0 = params_from(&[
            (0..18).map(|i| (i as f32 * 0.37).sin()).collect(),
            (0..10).map(|i| (i as f32 * 0.11).cos()).collect(),
            (0..18).map(|i| i as f32 * -0.01).collect(),
            (0..10).map(|i| 1.0 / (i as f32 + 1.0)).collect(),
        ]);
        let mut grads = p0.zeros_like();
        let mut p1 = p0.clone();
        let cfg = AdamWConfig {
            beta1: 0.3, // exercises lerp's other branch too
            ..AdamWConfig::default()
        };
        let mut o0 = AdamW::new(cfg, &p0);
        let mut o1 = o0.clone();
        for step in 0..4 {
            for (k, s) in grads.slices_mut().enumerate() {
                for (i, g) in s.iter_mut().enumerate() {
                    *g = ((i * 7 + k * 3 + step) as f32 * 0.61).sin() * 10f32.powi(step as i32 - 2);
                }
            }
            o0.step_with(&mut p0, &grads, 1e-2, false);
            o1.step_with(&mut p1, &grads, 1e-2, has_avx2_fma());
        }
        for (a, b) in flat(&p0).iter().zip(flat(&p1)) {
            assert_eq!(a.to_bits(), b.to_bits());
        }
        assert_eq!(o0, o1);
    }

    #[test]
    fn first_step_moves_each_value_by_lr() {
        // With zero moments, step 1 is p -= lr * sign(g) (up to eps).
        let mut p = params_from(&[vec![1.0; 18], vec![-2.0; 10], vec![0.5; 18], vec![0.0; 10]]);
        let mut g = p.zeros_like();
        g.fill(3.0);
        let cfg = AdamWConfig {
            weight_decay: 0.0,
            ..AdamWConfig::default()
        };
        let mut opt = AdamW::new(cfg, &p);
        let before = flat(&p);
        opt.step(&mut p, &g, 0.01);
        for (a, b) in before.iter().zip(flat(&p)) {
            assert!((a - 0.01 - b).abs() < 1e-6, "{a} -> {b}");
        }
    }

    #[test]
    fn state_round_trips_bit_for_bit() {
        let mut p = params_from(&[
            (0..18).map(|i| i as f32 * 0.1).collect(),
            vec![0.25; 10],
            (0..18).map(|i| -(i as f32)).collect(),
            vec![1e-30; 10],
        ]);
        let mut g = p.zeros_like();
        for (k, s) in g.slices_mut().enumerate() {
            for (i, x) in s.iter_mut().enumerate() {
                *x = ((i + 13 * k) as f32).sin() / 3.0;
            }
        }
        let mut opt = AdamW::new(AdamWConfig::default(), &p);
        for _ in 0..3 {
            opt.step(&mut p, &g, 1e-3);
        }
        let dir = std::env::temp_dir().join(format!("srl-adamw-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("optimizer.safetensors");
        opt.save(&path).unwrap();
        let back = AdamW::load(&path, opt.config, &p).unwrap();
        assert_eq!(back.step, 3);
        for (a, b) in opt
            .m
            .slices()
            .chain(opt.v.slices())
            .zip(back.m.slices().chain(back.v.slices()))
        {
            let bits = |s: &[f32]| s.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(a), bits(b));
        }
        // The resumed optimizer continues exactly as the original.
        let mut p2 = p.clone();
        let mut back = back;
        opt.step(&mut p, &g, 1e-3);
        back.step(&mut p2, &g, 1e-3);
        assert_eq!(p, p2);

        // Another adapter's state is refused, naming the file.
        let other = params_from(&[vec![0.0; 18], vec![0.0; 10], vec![0.0; 18], vec![0.0; 10]]);
        let mut other_cfg = other.config.clone();
        other_cfg.rank = 1;
        let small = LoraParams::from_tensors(
            other_cfg,
            other
                .tensors
                .iter()
                .map(|t| LoraTensor {
                    a: vec![0.0; 9],
                    b: vec![0.0; 5],
                    ..t.clone()
                })
                .collect(),
        );
        let err = AdamW::load(&path, opt.config, &small)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("optimizer.safetensors") && err.contains("shape"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn clip_grad_norm_as_torch() {
        let mut g = params_from(&[vec![3.0; 18], vec![0.0; 10], vec![0.0; 18], vec![4.0; 10]]);
        // norm = sqrt(18*9 + 10*16) = sqrt(322)
        let norm = clip_grad_norm(&mut g, 1.0);
        assert!((norm as f64 - 322f64.sqrt()).abs() < 1e-5);
        let coef = (1.0 / (322f64.sqrt() + 1e-6)) as f32;
        assert_eq!(g.tensors[0].a[0], 3.0 * coef);
        assert!((grad_norm(&g) - 1.0).abs() < 1e-5);
        // Below the limit nothing changes.
        let before = g.clone();
        let n2 = clip_grad_norm(&mut g, 10.0);
        assert!((n2 - 1.0).abs() < 1e-5);
        assert_eq!(g, before);
        // A non-finite norm is reported and the gradients left alone.
        g.tensors[1].b[0] = f32::INFINITY;
        let before = g.clone();
        assert!(clip_grad_norm(&mut g, 1.0).is_infinite());
        assert_eq!(g, before);
    }
}
