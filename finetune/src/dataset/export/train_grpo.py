"""GRPO with a LoRA adapter on data exported by `srl data export --format trl`:
SRL's step reward on srl_steps.jsonl, or RLVR's answer reward on rlvr.jsonl
(--rlvr). A starting point; TRL's GRPOConfig holds every other setting."""
import argparse
import pathlib
import sys

from datasets import load_dataset
from peft import LoraConfig, PeftModel
from transformers import AutoModelForCausalLM
from trl import GRPOConfig, GRPOTrainer

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from srl_reward import rlvr_reward_trl, srl_step_reward_trl  # noqa: E402

p = argparse.ArgumentParser(description=__doc__)
p.add_argument("--model", required=True, help="a Hugging Face model id or folder")
p.add_argument("--rlvr", action="store_true", help="train on rlvr.jsonl with the answer reward")
p.add_argument("--init-adapter", help="a PEFT adapter to continue (e.g. one srl trained)")
p.add_argument("--output-dir", default="grpo-out")
p.add_argument("--max-steps", type=int, default=-1)
p.add_argument("--group-size", type=int, default=8, help="completions per prompt (srl's --group-size)")
p.add_argument("--batch-size", type=int, default=8, help="completions per device step")
p.add_argument("--max-completion-length", type=int, default=256)
p.add_argument("--learning-rate", type=float, default=1e-4)
p.add_argument("--rank", type=int, default=16)
p.add_argument("--no-cuda", action="store_true", help="train on the CPU")
a = p.parse_args()

name = "rlvr" if a.rlvr else "srl_steps"
files = {"train": str(HERE / f"{name}.jsonl")}
if (HERE / f"{name}_valid.jsonl").exists():
    files["validation"] = str(HERE / f"{name}_valid.jsonl")
data = load_dataset("json", data_files=files)

model = AutoModelForCausalLM.from_pretrained(a.model)
peft_config = None
if a.init_adapter:
    model = PeftModel.from_pretrained(model, a.init_adapter, is_trainable=True)
else:
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    peft_config = LoraConfig(r=a.rank, lora_alpha=2 * a.rank, target_modules=targets, task_type="CAUSAL_LM")

config = GRPOConfig(
    output_dir=a.output_dir,
    max_steps=a.max_steps,
    num_generations=a.group_size,
    per_device_train_batch_size=a.batch_size,
    max_completion_length=a.max_completion_length,
    learning_rate=a.learning_rate,
    use_cpu=a.no_cuda,
    report_to=[],
)
trainer = GRPOTrainer(
    model=model,
    reward_funcs=[rlvr_reward_trl if a.rlvr else srl_step_reward_trl],
    args=config,
    train_dataset=data["train"],
    peft_config=peft_config,
)
trainer.train()
trainer.save_model(a.output_dir)
