"""
Interop fixtures made with real PEFT (0.18.1) and transformers (4.57.6): tiny Qwen2 base models and,
for each LoraConfig option loraforge implements, an adapter saved by PEFT with non-zero weights plus
the logits and greedy ids PEFT computes for a fixed prompt. Run in the reference chroot
(see /work/notes/HELPERS.md):  $PY scripts/peft-fixtures/make_fixtures.py test/fixtures/peft
Not run by npm test; its outputs are committed.
"""
import json
import os
import shutil
import sys

import torch
from safetensors.torch import save_file
from transformers import Qwen2Config, Qwen2ForCausalLM
from peft import LoraConfig, PeftModel, get_peft_model
import peft
import transformers

OUT = sys.argv[1]
PROMPT = [3, 17, 42, 99, 7, 64, 5, 120]
NEW_TOKENS = 8
# The shipped tiny chat model, for checks through `loraforge generate` / `serve` (they need its
# tokenizer). The reference env has no `tokenizers`, so the prompt ids are loraforge's encoding of
# "The sky is" (io/tokenizer.ts), which the tests re-derive.
TINY_CHAT = "assets/tiny-chat"
TINY_CHAT_PROMPT = [349, 1625, 321]


def base_model(tied: bool) -> Qwen2ForCausalLM:
    torch.manual_seed(1 if tied else 2)
    cfg = Qwen2Config(
        vocab_size=128,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        rms_norm_eps=1e-6,
        rope_theta=10000.0,
        tie_word_embeddings=tied,
        torch_dtype="float32",
    )
    cfg._attn_implementation = "eager"
    model = Qwen2ForCausalLM(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.2)  # larger than the 0.02 default so every path moves the logits
    return model.eval()


def load_base(base: str):
    if base == TINY_CHAT:
        model = Qwen2ForCausalLM.from_pretrained(TINY_CHAT, torch_dtype=torch.float32, attn_implementation="eager")
        return model.eval()
    return base_model(base == "base-tied")


def save_base(name: str, tied: bool) -> None:
    folder = os.path.join(OUT, name)
    base_model(tied).save_pretrained(folder, safe_serialization=True)
    os.remove(os.path.join(folder, "generation_config.json"))


def perturb(model, seed: int, amount: float = 1.0) -> None:
    """Makes every trainable tensor non-trivial (B != 0, magnitudes != norms, biases and copies moved)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not p.requires_grad:
                continue
            noise = torch.randn(p.shape, generator=g)
            if "lora_magnitude_vector" in name:
                p.mul_(1 + 0.2 * amount * noise)
            else:
                p.add_(0.15 * amount * noise)


def run(model, prompt=PROMPT, new_tokens=NEW_TOKENS):
    ids = torch.tensor([prompt])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].float().contiguous()
        out = model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=new_tokens,
            do_sample=False,
            pad_token_id=0,
            eos_token_id=None,
        )
    return logits, out[0, len(prompt):].tolist()


CASES = {
    # name: (base, LoraConfig kwargs)
    "suffix-targets": ("base-tied", dict(target_modules=["self_attn.q_proj", "mlp.gate_proj"])),
    "regex-lm-head": ("base-untied", dict(target_modules=r".*\.(q_proj|v_proj)|lm_head")),
    "bias-all": ("base-tied", dict(target_modules=["q_proj", "v_proj"], bias="all")),
    "bias-lora-only": ("base-tied", dict(target_modules=["q_proj", "o_proj"], bias="lora_only")),
    "modules-to-save-lm-head": ("base-untied", dict(target_modules=["q_proj"], modules_to_save=["lm_head"])),
    "modules-to-save-embed": ("base-tied", dict(target_modules=["q_proj"], modules_to_save=["embed_tokens"])),
    "patterns": (
        "base-tied",
        dict(
            target_modules=["q_proj", "v_proj", "down_proj"],
            rank_pattern={"q_proj": 4, "model.layers.1.mlp.down_proj": 2},
            alpha_pattern={"v_proj": 32},
        ),
    ),
    "layers-to-transform": (
        "base-tied",
        dict(target_modules=["q_proj", "v_proj"], layers_to_transform=[1], layers_pattern="layers"),
    ),
    "exclude-modules": (
        "base-tied",
        dict(target_modules="all-linear", exclude_modules=["model.layers.0.self_attn.o_proj", "down_proj"]),
    ),
    "embedding-lora": ("base-tied", dict(target_modules=["embed_tokens", "q_proj"])),
    "lm-head-lora-untied": ("base-untied", dict(target_modules=["lm_head", "v_proj"])),
    "lm-head-lora-tied": ("base-tied", dict(target_modules=["lm_head", "v_proj"])),
    "dora": ("base-tied", dict(target_modules="all-linear", use_dora=True)),
    "rslora": ("base-tied", dict(target_modules=["q_proj", "k_proj", "up_proj"], use_rslora=True)),
    "tiny-chat-dora": (TINY_CHAT, dict(r=4, target_modules=["q_proj", "v_proj"], use_dora=True)),
    "tiny-chat-bias": (TINY_CHAT, dict(r=4, target_modules=["self_attn.o_proj"], bias="all")),
    # Saved without conversion: loading redoes the SVD on the base and keeps its residual.
    "pissa": (
        "base-tied",
        dict(target_modules=["q_proj", "v_proj", "up_proj"], init_lora_weights="pissa", lora_alpha=8),
    ),
    "olora": ("base-tied", dict(target_modules=["q_proj", "down_proj"], init_lora_weights="olora", r=4)),
}


def make_case(name: str, base: str, kwargs: dict, seed: int) -> None:
    model = load_base(base)
    prompt, new_tokens = (TINY_CHAT_PROMPT, 12) if base == TINY_CHAT else (PROMPT, NEW_TOKENS)
    config = LoraConfig(**{"r": 8, "lora_alpha": 16, "lora_dropout": 0.0, "task_type": "CAUSAL_LM", **kwargs})
    peft_model = get_peft_model(model, config)
    # The trained tiny chat model's weights are small: smaller steps keep its text readable.
    perturb(peft_model, seed, 0.5 if base == TINY_CHAT else 1.0)
    folder = os.path.join(OUT, name)
    peft_model.save_pretrained(folder)
    os.remove(os.path.join(folder, "README.md"))
    # The reference is what PEFT computes after loading the saved folder into a fresh base model:
    # that is what a user of the file gets (e.g. bias="lora_only" saves no bias in PEFT 0.18.1).
    loaded = PeftModel.from_pretrained(load_base(base), folder).eval()
    logits, greedy = run(loaded, prompt, new_tokens)
    tensors = {"logits": logits}
    if name == "dora":
        merged = loaded.merge_and_unload()
        tensors["merged_logits"] = run(merged)[0]
        for key, value in merged.state_dict().items():
            if key.endswith("proj.weight"):
                tensors[f"merged.{key}"] = value.contiguous()
    save_file(tensors, os.path.join(folder, "expected.safetensors"))
    with open(os.path.join(folder, "expected.json"), "w") as f:
        json.dump({"base": base, "prompt": prompt, "greedy": greedy}, f, indent=1)
        f.write("\n")


def main() -> None:
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    save_base("base-tied", True)
    save_base("base-untied", False)
    for i, (name, (base, kwargs)) in enumerate(CASES.items()):
        make_case(name, base, kwargs, 100 + i)
        print("made", name)
    with open(os.path.join(OUT, "versions.json"), "w") as f:
        json.dump({"peft": peft.__version__, "transformers": transformers.__version__, "torch": torch.__version__}, f)
        f.write("\n")


if __name__ == "__main__":
    main()
