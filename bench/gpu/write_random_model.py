#!/usr/bin/env python3
"""Writes a Qwen2-shaped model with random bf16 weights as a Hugging Face model folder (config.json and
model.safetensors), with numpy alone, for scripts/device/gpu-bench.sh: a few seconds for the 0.5B shape,
where loraforge's own writer (src/models/random.ts, single-threaded JS) takes 30-60 s of device time.
Projections and embeddings are N(0, 0.02), norms 1, the q/k/v biases 0, as random.ts writes them
(different random numbers). An existing model.safetensors is kept.

  python3 write_random_model.py DIR [0.5b|tiny]

`tiny` is hf_peft_lora_bench.py's --tiny config, for checking the script on a CPU Vulkan driver.
"""
import json, os, sys, time

import numpy as np

QWEN2_05B = dict(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                 num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=32768,
                 rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=True)
TINY = dict(QWEN2_05B, vocab_size=1000, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512)


def tensors(c):
    """(name, shape, kind) in the order they are written; kind is 'normal', 'one' or 'zero'."""
    h, i = c["hidden_size"], c["intermediate_size"]
    kv = c["num_key_value_heads"] * (h // c["num_attention_heads"])
    yield "model.embed_tokens.weight", (c["vocab_size"], h), "normal"
    for n in range(c["num_hidden_layers"]):
        p = f"model.layers.{n}."
        yield p + "input_layernorm.weight", (h,), "one"
        yield p + "post_attention_layernorm.weight", (h,), "one"
        for proj, shape in (("q", (h, h)), ("k", (kv, h)), ("v", (kv, h))):
            yield f"{p}self_attn.{proj}_proj.weight", shape, "normal"
            yield f"{p}self_attn.{proj}_proj.bias", (shape[0],), "zero"
        yield p + "self_attn.o_proj.weight", (h, h), "normal"
        yield p + "mlp.gate_proj.weight", (i, h), "normal"
        yield p + "mlp.up_proj.weight", (i, h), "normal"
        yield p + "mlp.down_proj.weight", (h, i), "normal"
    yield "model.norm.weight", (h,), "one"
    if not c["tie_word_embeddings"]:
        yield "lm_head.weight", (c["vocab_size"], h), "normal"


def bf16(x):
    """float32 -> bfloat16 bits, rounding to nearest even."""
    u = x.view(np.uint32)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype("<u2")


def main():
    if len(sys.argv) < 2 or (len(sys.argv) > 2 and sys.argv[2] not in ("0.5b", "tiny")):
        sys.exit("usage: write_random_model.py DIR [0.5b|tiny]")
    out, shape = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else "0.5b")
    path = os.path.join(out, "model.safetensors")
    if os.path.exists(path):
        print(f"{out}: already there")
        return
    t0 = time.perf_counter()
    c = TINY if shape == "tiny" else QWEN2_05B
    specs = list(tensors(c))
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, dims, _ in specs:
        size = 2 * int(np.prod(dims))
        header[name] = {"dtype": "BF16", "shape": list(dims), "data_offsets": [offset, offset + size]}
        offset += size
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    rng = np.random.default_rng(0)
    os.makedirs(out, exist_ok=True)
    with open(path + ".tmp", "wb") as f:
        f.write(len(head).to_bytes(8, "little") + head)
        for name, dims, kind in specs:
            n = int(np.prod(dims))
            if kind == "normal":
                x = rng.standard_normal(n, dtype=np.float32)
                x *= np.float32(0.02)
            else:
                x = np.full(n, 1.0 if kind == "one" else 0.0, dtype=np.float32)
            f.write(bf16(x).tobytes())
    os.replace(path + ".tmp", path)
    config = dict(c, architectures=["Qwen2ForCausalLM"], model_type="qwen2", hidden_act="silu",
                  bos_token_id=151643, eos_token_id=151645, torch_dtype="bfloat16")
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    print(f"{out}: {shape} random bf16 model, {offset / 2**20:.0f} MiB, written in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
