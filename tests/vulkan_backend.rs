//! The GPU path without a GPU: `--backend llama-cpp --gpu-layers N` in a
//! `--features vulkan` build, on Mesa's lavapipe (a Vulkan device that runs
//! on the CPU): the same shaders, offload and scheduling code a real card
//! runs, only slowly. Run with
//! `cargo test --release --features vulkan --test vulkan_backend`.
//!
//! llama.cpp skips CPU-type Vulkan devices unless GGML_VK_VISIBLE_DEVICES
//! names them, so these tests name device 0. Where no Vulkan device exists
//! they are skipped, except when `SRL_EXPECT_VULKAN=1` (set by `.ci/run`
//! after installing lavapipe): then a missing device fails them.
#![cfg(feature = "vulkan")]

mod common;
use common::server::{post, Server};
use common::{fails_with, model, ok};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Command, Output};

/// The device llama.cpp is told to use (lavapipe is the only one in CI).
const DEVICE: &str = "0";

/// Whether a Vulkan device is there; panics when one is expected and not.
fn device_present() -> bool {
    let out = Command::new("vulkaninfo").arg("--summary").output();
    let present = out.is_ok_and(|o| {
        o.status.success() && String::from_utf8_lossy(&o.stdout).contains("deviceName")
    });
    if !present {
        assert!(
            std::env::var("SRL_EXPECT_VULKAN").as_deref() != Ok("1"),
            "SRL_EXPECT_VULKAN=1 but `vulkaninfo --summary` lists no Vulkan device \
             (install mesa-vulkan-drivers and vulkan-tools)"
        );
        eprintln!("skipped: no Vulkan device (`vulkaninfo --summary`)");
    }
    present
}

fn adapter() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/llamacpp/lora/unit_conversion.gguf")
}

/// `srl` with llama.cpp's log on and device 0 visible (or not).
fn srl_vk(args: &[&str], visible: bool) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_srl"));
    c.args(args).env("SRL_LLAMA_LOG", "1");
    if visible {
        c.env("GGML_VK_VISIBLE_DEVICES", DEVICE);
    } else {
        c.env_remove("GGML_VK_VISIBLE_DEVICES");
    }
    c.output().unwrap()
}

/// Greedy `srl generate --json` on llama.cpp with `gpu_layers` offloaded
/// (None: the CPU backend): the report and llama.cpp's log.
fn generate(gpu_layers: Option<&str>, extra: &[&str]) -> (Value, String) {
    let m = model();
    let mut args = vec![
        "generate",
        "--model",
        m.to_str().unwrap(),
        "--backend",
        "llama-cpp",
        "--json",
        "-t",
        "1",
    ];
    args.extend(["--temp", "0"]);
    if let Some(n) = gpu_layers {
        args.extend(["--gpu-layers", n]);
    }
    args.extend(extra);
    let out = srl_vk(&args, true);
    let v = serde_json::from_str(&ok(&out)).unwrap();
    (v, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The number of layers llama.cpp's log says it offloaded, of how many.
fn offloaded(log: &str) -> (u32, u32) {
    let line = log
        .lines()
        .find(|l| l.contains("offloaded") && l.contains("layers to GPU"))
        .unwrap_or_else(|| panic!("no 'offloaded N/M layers to GPU' in the log:\n{log}"));
    let frac = line
        .split("offloaded ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    let (a, b) = frac.split_once('/').unwrap();
    (a.parse().unwrap(), b.parse().unwrap())
}

#[test]
fn none_some_and_all_layers_offload_and_the_device_is_named() {
    if !device_present() {
        return;
    }
    // Few tokens: lavapipe decodes about one token a second.
    let prompt = ["-p", "The capital of France is", "-n", "6"];
    let (all, log) = generate(Some("99"), &prompt);
    assert!(
        log.contains("ggml_vulkan") || log.contains("Vulkan0"),
        "{log}"
    );
    assert!(
        log.to_lowercase().contains("llvmpipe") || log.contains("Vulkan0"),
        "the device is named:\n{log}"
    );
    let (n, of) = offloaded(&log);
    assert_eq!(n, of, "all layers");
    let (_, log) = generate(Some("0"), &prompt);
    assert_eq!(offloaded(&log).0, 0);
    let (some, log) = generate(Some("10"), &prompt);
    assert_eq!(offloaded(&log), (10, of));
    let (cpu, _) = generate(None, &prompt);
    // Coherent on the device; how far it agrees with the CPU is reported,
    // not required (the kernels round differently).
    assert!(all["text"].as_str().unwrap().contains("Paris"), "{all}");
    for (name, g) in [("all layers", &all), ("10 layers", &some)] {
        let (a, b) = (g["ids"].as_array().unwrap(), cpu["ids"].as_array().unwrap());
        let same = a.iter().zip(b).take_while(|(x, y)| x == y).count();
        eprintln!(
            "vulkan ({name}) vs cpu: {same} of {} greedy tokens agree",
            b.len()
        );
    }
}

/// With a GPU backend and no device it can use, `--gpu-layers` says what
/// is missing and how to fix it (lavapipe is a CPU-type device, which
/// llama.cpp skips unless it is named).
#[test]
fn a_missing_device_is_named_with_the_fix() {
    if !device_present() {
        return;
    }
    let m = model();
    let args = [
        "generate",
        "--model",
        m.to_str().unwrap(),
        "--backend",
        "llama-cpp",
        "--gpu-layers",
        "99",
        "-p",
        "hi",
    ];
    let out = srl_vk(&args, false);
    fails_with(&out, "llama.cpp's Vulkan backend found no GPU device");
    fails_with(&out, "GGML_VK_VISIBLE_DEVICES");
}

/// The adapter changes the output on the device as it does on the CPU
/// backend: the same greedy text on a prompt it was trained for.
#[test]
fn an_adapter_acts_on_the_device_as_on_the_cpu() {
    if !device_present() {
        return;
    }
    let a = adapter();
    let args = [
        "--chat",
        "-p",
        "Convert 3 hours to minutes.",
        "-n",
        "8",
        "--lora",
        a.to_str().unwrap(),
    ];
    let (on_device, log) = generate(Some("99"), &args);
    let (on_cpu, _) = generate(None, &args);
    let (base, _) = generate(Some("99"), &args[..5]);
    assert!(log.contains("adapter") || log.contains("lora"), "{log}");
    assert_eq!(
        on_device["text"], on_cpu["text"],
        "device and CPU with the adapter"
    );
    assert_ne!(
        on_device["text"], base["text"],
        "the adapter changes the output"
    );
    assert!(
        on_device["text"].as_str().unwrap().starts_with("Step 1:"),
        "{on_device}"
    );
}

/// `srl serve` with every layer on the device answers the official
/// `openai` client (whole, streamed, two at once on two slots), and its
/// greedy completion is compared with the CPU backend's: the first parting
/// token and the top-2 log-probability margin there are reported.
#[test]
fn the_server_answers_on_the_device() {
    if !device_present() {
        return;
    }
    // Servers inherit the environment: name the device for them.
    std::env::set_var("GGML_VK_VISIBLE_DEVICES", DEVICE);
    let lora = format!("uc={}", adapter().display());
    let common = [
        "--backend",
        "llama-cpp",
        "--parallel",
        "2",
        "--ctx",
        "512",
        "--lora",
        &lora,
    ];
    let gpu = Server::start_threads(1, &[&common[..], &["--gpu-layers", "99"]].concat());
    let cpu = Server::start_threads(1, &common);
    let report = common::python::openai_client_quick_report(
        &gpu.addr,
        "Convert 3 hours to minutes.",
        "The capital of France is",
        "4",
        "uc",
    );
    assert!(!report["chat"].as_str().unwrap().is_empty(), "{report}");
    assert_eq!(report["chat"], report["chat_stream"], "{report}");
    for c in report["concurrent"].as_array().unwrap() {
        assert_eq!(c, &report["chat"], "two at once give the greedy text");
    }
    assert_ne!(report["adapter_chat"], report["chat"], "{report}");
    assert!(
        report["completion"].as_str().unwrap().contains("Paris"),
        "{report}"
    );
    eprintln!("openai client on the device: {report}");
    let body = json!({"prompt": "The capital of France is", "max_tokens": 16, "temperature": 0, "logprobs": 2}).to_string();
    let get = |s: &Server| -> Value {
        let (status, text) = post(&s.addr, "/v1/completions", None, &body);
        assert_eq!(status, 200, "{text}");
        serde_json::from_str::<Value>(&text).unwrap()["choices"][0]["logprobs"].clone()
    };
    let (g, c) = (get(&gpu), get(&cpu));
    let (gt, ct) = (
        g["tokens"].as_array().unwrap(),
        c["tokens"].as_array().unwrap(),
    );
    match gt.iter().zip(ct).position(|(a, b)| a != b) {
        None => eprintln!(
            "vulkan vs cpu (server): all {} greedy tokens agree",
            gt.len()
        ),
        Some(i) => {
            let margin = |lp: &Value| {
                let mut v: Vec<f64> = lp["top_logprobs"][i]
                    .as_object()
                    .unwrap()
                    .values()
                    .map(|x| x.as_f64().unwrap())
                    .collect();
                v.sort_by(|a, b| b.total_cmp(a));
                v[0] - v.get(1).copied().unwrap_or(f64::NEG_INFINITY)
            };
            eprintln!(
                "vulkan vs cpu (server): first parting token {i} ({} vs {}), top-2 margin {:.4} on the device, {:.4} on the CPU",
                gt[i], ct[i], margin(&g), margin(&c)
            );
        }
    }
}
