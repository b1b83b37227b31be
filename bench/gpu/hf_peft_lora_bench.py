#!/usr/bin/env python3
"""Reference throughput of Hugging Face transformers + PEFT LoRA training (the baseline loraforge is compared with).

Model: Qwen2-0.5B-Instruct's architecture with random weights (no download needed).
Workload: LoRA r=8, alpha=16, dropout 0, on q,k,v,o,gate,up,down; batch 8 x 64 tokens, the first 32
positions of every row labelled -100; AdamW lr 1e-4. Prints one JSON object as its last line.

  python3 hf_peft_lora_bench.py [--device cuda|cpu] [--dtype bf16|fp32] [--steps 20] [--warmup 3]
                                [--batch 8] [--seq 64] [--tiny] [--trainer]

(A copy of the shared reference script bench/hf_peft_lora_bench.py, kept in the repository so that it travels
to the GPU machine with scripts/device/gpu-bench.sh; unchanged otherwise.)
"""
import argparse, json, resource, statistics, tempfile, time

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM
from peft import LoraConfig, get_peft_model

QWEN2_05B = dict(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                 num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=32768,
                 rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=True)
TINY = dict(vocab_size=1000, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
            rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=True)
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default="bf16", choices=["bf16", "fp32"])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--tiny", action="store_true", help="tiny config, for a quick functional check")
    ap.add_argument("--trainer", action="store_true", help="run through transformers.Trainer instead of a plain loop")
    a = ap.parse_args()
    torch.manual_seed(0)
    cfg = Qwen2Config(**(TINY if a.tiny else QWEN2_05B))
    cfg._attn_implementation = "sdpa" if hasattr(torch.nn.functional, "scaled_dot_product_attention") else "eager"
    model = Qwen2ForCausalLM(cfg)
    dtype = torch.bfloat16 if a.dtype == "bf16" else torch.float32
    model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", r=8, lora_alpha=16, lora_dropout=0.0,
                                             target_modules=TARGETS))
    # frozen base in the compute dtype, LoRA parameters kept in float32 (as PEFT + autocast training does)
    for n, p in model.named_parameters():
        p.data = p.data.to(torch.float32 if p.requires_grad else dtype)
    model.to(a.device)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    ids = torch.randint(0, cfg.vocab_size, (a.batch, a.seq), device=a.device)
    labels = ids.clone(); labels[:, : a.seq // 2] = -100
    tokens = a.batch * a.seq
    sync = (lambda: torch.cuda.synchronize()) if a.device.startswith("cuda") else (lambda: None)
    if a.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()

    times = []
    if a.trainer:
        from transformers import Trainer, TrainingArguments
        class Fixed(torch.utils.data.Dataset):
            def __len__(self): return a.batch * (a.steps + a.warmup)
            def __getitem__(self, i): return {"input_ids": ids[i % a.batch].cpu(), "labels": labels[i % a.batch].cpu()}
        stamps = []
        from transformers import TrainerCallback
        class Clock(TrainerCallback):
            def on_step_end(self, args, state, control, **kw): sync(); stamps.append(time.perf_counter())
        args = TrainingArguments(output_dir=tempfile.mkdtemp(prefix="hf_peft_bench_"), per_device_train_batch_size=a.batch,
                                 max_steps=a.steps + a.warmup, learning_rate=1e-4, logging_steps=10**9,
                                 save_strategy="no", report_to=[], bf16=(a.dtype == "bf16"),
                                 use_cpu=not a.device.startswith("cuda"), dataloader_num_workers=0)
        Trainer(model=model, args=args, train_dataset=Fixed(), callbacks=[Clock()]).train()
        times = [t1 - t0 for t0, t1 in zip(stamps[a.warmup - 1:], stamps[a.warmup:])]
    else:
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        ac = torch.autocast(device_type="cuda" if a.device.startswith("cuda") else "cpu", dtype=torch.bfloat16,
                            enabled=(a.dtype == "bf16"))
        for step in range(a.warmup + a.steps):
            sync(); t0 = time.perf_counter()
            with ac:
                loss = model(input_ids=ids, labels=labels).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
            opt.step(); opt.zero_grad(set_to_none=True)
            sync(); dt = time.perf_counter() - t0
            if step >= a.warmup:
                times.append(dt)
    med = statistics.median(times)
    out = {
        "bench": "hf_peft_lora_train", "device": a.device,
        "device_name": torch.cuda.get_device_name() if a.device.startswith("cuda") else "cpu",
        "dtype": a.dtype, "trainer": a.trainer, "config": "tiny" if a.tiny else "qwen2-0.5b",
        "batch": a.batch, "seq": a.seq, "trainable_params": trainable, "steps_timed": len(times),
        "median_step_s": med, "tokens_per_s": tokens / med,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20 if a.device.startswith("cuda") else None,
        "torch": torch.__version__,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
