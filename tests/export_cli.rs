//! `srl data export` end to end: the TRL and verl datasets load with the
//! `datasets` package (as both trainers load them) and hold srl's own step
//! instances, prompts and answers; the exported `srl_reward.py` gives srl's
//! reward bit for bit; bad data and an existing folder are refused.

mod common;

use common::python::run_with;
use common::{fails_with, jsonl, ok, srl, temp};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn head(dir: &Path, name: &str, src: &str, n: usize) -> PathBuf {
    let text = std::fs::read_to_string(root().join(src)).unwrap();
    let p = dir.join(name);
    std::fs::write(
        &p,
        text.lines().take(n).collect::<Vec<_>>().join("\n") + "\n",
    )
    .unwrap();
    p
}

#[test]
fn trl_and_verl_datasets_load_and_hold_srl_instances() {
    let dir = temp("load");
    let train = head(&dir, "train.jsonl", "examples/srl-math/train.jsonl", 12);
    let (trl, verl) = (dir.join("trl"), dir.join("verl"));
    for (format, out) in [("trl", &trl), ("verl", &verl)] {
        let stdout = ok(&srl(&[
            "data",
            "export",
            train.to_str().unwrap(),
            "--format",
            format,
            "--out",
            out.to_str().unwrap(),
        ]));
        assert!(
            stdout.starts_with("36 SRL step rows and 12 RLVR problems"),
            "{stdout}"
        );
        assert!(out.join("srl_reward.py").exists() && out.join("README.md").exists());
    }
    let steps = dir.join("steps.jsonl");
    ok(&srl(&[
        "data",
        "build",
        "--data",
        train.to_str().unwrap(),
        "--out",
        steps.to_str().unwrap(),
    ]));
    let instances = jsonl(&steps);
    let loaded: Value = serde_json::from_str(&run_with(
        "datasets",
        "datasets",
        "export_check.py",
        &[trl.to_str().unwrap(), verl.to_str().unwrap()],
    ))
    .unwrap();
    let (trl_steps, verl_steps) = (
        loaded["trl_steps"].as_array().unwrap(),
        loaded["verl_steps"].as_array().unwrap(),
    );
    assert_eq!(
        (trl_steps.len(), verl_steps.len()),
        (instances.len(), instances.len())
    );
    // datasets reads back exactly the rows srl wrote.
    assert_eq!(trl_steps, &jsonl(&trl.join("srl_steps.jsonl")));
    for ((inst, t), v) in instances.iter().zip(trl_steps).zip(verl_steps) {
        assert_eq!(t["id"], inst["id"]);
        assert_eq!(t["expert_step"], inst["target"]);
        assert_eq!(
            (&t["step"], &t["total"], &t["source"]),
            (&inst["step"], &inst["total"], &inst["source"])
        );
        let user = t["prompt"][1]["content"].as_str().unwrap();
        assert!(user.contains(inst["task"].as_str().unwrap()), "{user}");
        for p in inst["previous"].as_array().unwrap() {
            assert!(user.contains(p.as_str().unwrap()), "{user}");
        }
        assert_eq!(v["prompt"], t["prompt"]);
        assert_eq!(v["data_source"], "srl/step");
        assert_eq!(
            v["reward_model"],
            json!({"ground_truth": inst["target"], "style": "rule"})
        );
        assert_eq!(v["extra_info"]["id"], inst["id"]);
    }
    let trajectories = jsonl(&train);
    for (key, field) in [("trl_rlvr", "answer"), ("verl_rlvr", "reward_model")] {
        let rows = loaded[key].as_array().unwrap();
        assert_eq!(rows.len(), trajectories.len());
        for (r, t) in rows.iter().zip(&trajectories) {
            let answer = if field == "answer" {
                &r["answer"]
            } else {
                &r["reward_model"]["ground_truth"]
            };
            assert_eq!(answer, &t["answer"], "{key}");
            assert!(r["prompt"][1]["content"]
                .as_str()
                .unwrap()
                .ends_with(t["task"].as_str().unwrap()));
        }
    }
    // An existing folder is kept unless --overwrite.
    let again = [
        "data",
        "export",
        train.to_str().unwrap(),
        "--format",
        "trl",
        "--out",
        trl.to_str().unwrap(),
    ];
    fails_with(&srl(&again), "--overwrite");
    ok(&srl(&[&again[..], &["--overwrite"]].concat()));
}

#[test]
fn data_with_errors_is_exported_only_with_force() {
    let dir = temp("force");
    let data = dir.join("bad.jsonl");
    std::fs::write(
        &data,
        "{\"task\":\"A\",\"steps\":[\"x\",\"y\"]}\n{\"task\":\"B\",\"steps\":[\"ok\",\"  \"]}\n",
    )
    .unwrap();
    let out = dir.join("out");
    let args = [
        "data",
        "export",
        data.to_str().unwrap(),
        "--format",
        "verl",
        "--out",
        out.to_str().unwrap(),
    ];
    let run = srl(&args);
    fails_with(
        &run,
        "srl data check finds 1 errors in the data (above); fix them, or pass --force",
    );
    assert!(String::from_utf8_lossy(&run.stdout).contains("line 2: step 2 is blank"));
    assert!(!out.exists());
    let stdout = ok(&srl(&[&args[..], &["--force"]].concat()));
    assert!(
        stdout.starts_with("2 SRL step rows and 0 RLVR problems"),
        "{stdout}"
    );
}

/// Responses in every shape the format check knows, around the committed
/// difflib reference pairs: srl's reward and srl_reward.py's agree to the
/// bit, and on the bare pairs the module's similarity is difflib's
/// committed ratio.
#[test]
fn the_exported_reward_is_srl_reward_bit_for_bit() {
    let dir = temp("reward");
    let pairs = jsonl(&root().join("finetune/tests/data/similarity_pairs.jsonl"));
    let wrap = [
        "<think>{}</think>{a}",
        "<think>\nhm\n</think>\n\nStep 3: {a}",
        "  plan</think> **Step 2:** {a}",
        "### Step 1\n</think>\n{a}",
        "</think>{a}",
        "<think>x</think>1. {a}",
        "{a}",
        "<think>unclosed {a}",
        "text <think>x</think>{a}",
        "<think>a</think>{a}<think>b</think>",
        "<think>only</think>   ",
        "<think>x</think>Step 4 is {a}",
        "<think>x</think>__Step 12.__ {a}\nmore",
    ];
    let mut lines = String::new();
    let mut n = 0;
    for p in &pairs {
        let (a, b) = (p["a"].as_str().unwrap(), p["b"].as_str().unwrap());
        for w in &wrap {
            let response = w.replace("{a}", a).replacen("{}", "", 1);
            lines += &format!("{}\n", json!({"response": response, "b": b}));
            n += 1;
        }
    }
    let input = dir.join("responses.jsonl");
    std::fs::write(&input, &lines).unwrap();
    // The reward as srl prints it: the shortest digits that give its bits
    // back, as Python's repr writes them (parsing them again could round).
    let ours: Vec<String> = ok(&srl(&["reward", "--pairs", input.to_str().unwrap()]))
        .lines()
        .map(|l| {
            l.rsplit_once("\"reward\": ")
                .unwrap()
                .1
                .trim_end_matches('}')
                .to_string()
        })
        .collect();
    let module = root().join("finetune/src/dataset/export/srl_reward.py");
    let out = std::process::Command::new("python3")
        .arg(&module)
        .stdin(std::fs::File::open(&input).unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(ours.len(), n);
    let failures = ours.iter().filter(|r| *r == "-1.0").count();
    assert!(
        failures > n / 5 && failures < n * 4 / 5,
        "both kinds are tested: {failures} of {n}"
    );
    for (i, (o, t)) in ours.iter().zip(&theirs).enumerate() {
        assert_eq!(o, t, "line {}", i + 1);
    }
    assert_eq!(ours.len(), theirs.len());
    // The bare similarity against difflib's committed bits.
    let script = format!(
        "import json, struct, sys\nsys.path.insert(0, {:?})\nfrom srl_reward import similarity\n\
         for l in open({:?}):\n    p = json.loads(l)\n    print(struct.pack('>d', similarity(p['a'], p['b'])).hex(), p['ratio_bits'], \
         struct.pack('>d', similarity(p['a'], p['b'], False)).hex(), p['ratio_nojunk_bits'])",
        module.parent().unwrap(),
        root().join("finetune/tests/data/similarity_pairs.jsonl")
    );
    let out = std::process::Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for l in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = l.split(' ').collect();
        assert_eq!((f[0], f[2]), (f[1], f[3]));
    }
}
