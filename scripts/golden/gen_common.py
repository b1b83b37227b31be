"""Shared definitions for the golden-reference generators (new architectures: Qwen3, Gemma 3 text, SmolLM3, Phi-3).

Model configurations, deterministic data builders and small helpers used by
gen_model_package.py. Everything is float32 on CPU with eager attention.
Same data builders, seeds usage and LoRA settings as tools/golden/gen_common.py (transformers 4.44);
this copy targets transformers 4.57.6 + peft 0.18.1 on Debian trixie's torch.
"""
import json
import os

import torch

# float64 reference runs: HF's eager attention computes softmax(scores, dtype=float32). In a float64 model
# that turns the float64 mask minimum into -inf, so a query row whose keys are all masked (a padded
# position whose sliding window holds only padding) becomes NaN, and NaN reaches the loss gradients.
# For float64 inputs the softmax is therefore computed in float64; float32 calls are untouched.
_torch_softmax = torch.nn.functional.softmax


def _softmax_fp64_aware(input, dim=None, _stacklevel=3, dtype=None):
    if dtype == torch.float32 and input.dtype == torch.float64:
        dtype = torch.float64
    return _torch_softmax(input, dim=dim, _stacklevel=_stacklevel, dtype=dtype)


torch.nn.functional.softmax = _softmax_fp64_aware

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
# Phi-3 fuses q/k/v into qkv_proj and gate/up into gate_up_proj: PEFT puts one A/B pair on each
_LORA_TARGETS_BY_ARCH = {"phi3": ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]}


def lora_targets(arch):
    """The linear layers the packages' adapters target: every projection of the architecture."""
    return _LORA_TARGETS_BY_ARCH.get(arch, LORA_TARGETS)
LORA_R, LORA_ALPHA = 8, 16
PAD_ID = 0

_COMMON = dict(attention_dropout=0.0, initializer_range=0.02, use_cache=True, dtype="float32")
# activation kwarg per architecture (Gemma's config calls it hidden_activation)
_ACT = {"qwen2": dict(hidden_act="silu"), "llama": dict(hidden_act="silu"), "qwen3": dict(hidden_act="silu"),
        "gemma3": dict(hidden_activation="gelu_pytorch_tanh"), "smollm3": dict(hidden_act="silu"),
        "phi3": dict(hidden_act="silu")}
# RMSNorm weight convention: Gemma scales by (1 + w) and initialises w = 0; the others scale by w, init 1
_NORM_CENTER = {"qwen2": 1.0, "llama": 1.0, "qwen3": 1.0, "gemma3": 0.0, "smollm3": 1.0, "phi3": 1.0}

# name -> architecture, seeds and HF config kwargs. Only the public package is defined here; further
# packages come from a JSON file of the same shape (gen_model_package.py --spec FILE).
PACKAGES = {
    "qwen3-tiny": dict(
        arch="qwen3", seed=0, data_seed=1000,
        config=dict(
            vocab_size=1000, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, head_dim=32, max_position_embeddings=512,
            rope_theta=1e6, rms_norm_eps=1e-6, tie_word_embeddings=True, attention_bias=False,
            use_sliding_window=False, bos_token_id=None, eos_token_id=None,
        ),
    ),
}


def add_specs(path):
    """Register package specs from a JSON file {name: {arch, seed, data_seed, config}}."""
    with open(path, encoding="utf-8") as f:
        PACKAGES.update(json.load(f))


def model_classes(arch):
    if arch == "qwen2":
        from transformers import Qwen2Config, Qwen2ForCausalLM
        return Qwen2Config, Qwen2ForCausalLM
    if arch == "llama":
        from transformers import LlamaConfig, LlamaForCausalLM
        return LlamaConfig, LlamaForCausalLM
    if arch == "qwen3":
        from transformers import Qwen3Config, Qwen3ForCausalLM
        return Qwen3Config, Qwen3ForCausalLM
    if arch == "gemma3":
        from transformers import Gemma3TextConfig, Gemma3ForCausalLM
        return Gemma3TextConfig, Gemma3ForCausalLM
    if arch == "phi3":
        from transformers import Phi3Config, Phi3ForCausalLM
        return Phi3Config, Phi3ForCausalLM
    if arch == "smollm3":
        from transformers import SmolLM3Config, SmolLM3ForCausalLM
        return SmolLM3Config, SmolLM3ForCausalLM
    raise ValueError(arch)


def setup_threads(n=2):
    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass


def build_model(name):
    """Seeded random init (HF _init_weights: N(0, 0.02) weights), then perturb biases and RMSNorm
    weights (seed + 1) so that the bias add and the norm scale are exercised by a comparison.
    Norm weights become c + N(0, 0.1) with c the architecture's neutral value (1; 0 for Gemma, whose
    RMSNorm multiplies by 1 + w), so every norm scales by about 1 +- 0.1."""
    spec = PACKAGES[name]
    cfg_cls, model_cls = model_classes(spec["arch"])
    cfg = cfg_cls(**spec["config"], **_ACT[spec["arch"]], **_COMMON)
    cfg._attn_implementation = "eager"
    torch.manual_seed(spec["seed"])
    model = model_cls(cfg).float().eval()
    assert model.config._attn_implementation == "eager"
    g = torch.Generator().manual_seed(spec["seed"] + 1)
    center = _NORM_CENTER[spec["arch"]]
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith(".bias"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.02)
            elif n.endswith("norm.weight"):
                p.copy_(center + torch.randn(p.shape, generator=g) * 0.1)
    model.name_or_path = name
    model.config._name_or_path = name
    return model


def load_model(name, path, dtype=torch.float32):
    _, model_cls = model_classes(PACKAGES[name]["arch"])
    m = model_cls.from_pretrained(path, dtype=dtype, attn_implementation="eager").eval()
    # keep machine paths out of adapter_config.json / config.json written later
    m.name_or_path = name
    m.config._name_or_path = name
    return m


def _rand_tokens(g, vocab, n):
    # real tokens avoid the pad id so that padding is unambiguous in the files
    return torch.randint(1, vocab, (n,), generator=g, dtype=torch.int64)


def forward_batch(vocab, seed):
    """[3, 20]; rows 0 and 1 are full, row 2 is right-padded (pad id 0, mask 0) on its last 7 positions."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.stack([_rand_tokens(g, vocab, 20) for _ in range(3)])
    mask = torch.ones_like(ids)
    ids[2, 13:] = PAD_ID
    mask[2, 13:] = 0
    return ids, mask


def lora_batch(vocab, seed):
    """[4, 24] with right padding; labels are -100 on prompt positions and padding."""
    g = torch.Generator().manual_seed(seed)
    prompt_lens, real_lens = [5, 8, 3, 10], [24, 19, 14, 22]
    ids = torch.full((4, 24), PAD_ID, dtype=torch.int64)
    mask = torch.zeros_like(ids)
    labels = torch.full_like(ids, -100)
    for i, (p, r) in enumerate(zip(prompt_lens, real_lens)):
        ids[i, :r] = _rand_tokens(g, vocab, r)
        mask[i, :r] = 1
        labels[i, p:r] = ids[i, p:r]
    return ids, mask, labels, prompt_lens, real_lens


def train_batches(vocab, seed, n_micro=20, rows=2, seq=24):
    """n_micro micro-batches of rows x seq. Each row: a random prompt (2..8 tokens) followed by a
    response that is a prefix of one fixed token sequence (so LoRA training has something to learn),
    then right padding. Labels cover the response only."""
    g = torch.Generator().manual_seed(seed)
    answer = _rand_tokens(g, vocab, seq)
    ids = torch.full((n_micro, rows, seq), PAD_ID, dtype=torch.int64)
    mask = torch.zeros_like(ids)
    labels = torch.full_like(ids, -100)
    for k in range(n_micro):
        for j in range(rows):
            p = int(torch.randint(2, 9, (1,), generator=g))
            r = int(torch.randint(p + 4, seq + 1, (1,), generator=g))
            ids[k, j, :p] = _rand_tokens(g, vocab, p)
            ids[k, j, p:r] = answer[: r - p]
            mask[k, j, :r] = 1
            labels[k, j, p:r] = ids[k, j, p:r]
    return ids, mask, labels, answer


def manual_causal_lm_loss(logits, labels):
    """HF causal-LM loss: logits at position t predict labels[t + 1]; mean cross-entropy over
    targets != -100."""
    lg = logits[:, :-1, :].reshape(-1, logits.shape[-1])
    tg = labels[:, 1:].reshape(-1)
    return torch.nn.functional.cross_entropy(lg, tg, ignore_index=-100)


def full_precision_logits(model, ids, mask):
    """Logits in the model's own dtype (for float64 references). transformers 4.57's CausalLM.forward no
    longer casts logits to float32 (4.44's Qwen2/Llama did), and it applies Gemma's final logit
    softcapping, so the plain forward is used."""
    logits = model(input_ids=ids, attention_mask=mask).logits
    want = next(p for p in model.parameters()).dtype
    assert logits.dtype == want, (logits.dtype, want)
    return logits


def peft_key(param_name):
    """PEFT parameter name -> key used in adapter_model.safetensors (adapter name removed)."""
    return param_name.replace(".default", "")


def lora_params(model):
    return {peft_key(n): p for n, p in model.named_parameters() if p.requires_grad}


def maxabs(a, b):
    return (a.double() - b.double()).abs().max().item()


def rel_err(a, b):
    a, b = a.double(), b.double()
    return ((a - b).norm() / b.norm().clamp_min(1e-300)).item()


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1, ensure_ascii=False)
        f.write("\n")


TRANSFORMERS_GIT = "753d61104116eefc8ffc977327b441ee0c8d599f"  # tag v4.57.6


def versions():
    import peft
    import transformers
    import accelerate
    import huggingface_hub
    return {
        "transformers": f"{transformers.__version__} (git {TRANSFORMERS_GIT})",
        "peft": peft.__version__,
        "accelerate": accelerate.__version__,
        "huggingface_hub": huggingface_hub.__version__,
        "torch": f"{torch.__version__} (Debian trixie python3-torch, CPU)",
        "dtype": "float32",
        "attn_implementation": "eager",
    }


def ensure_dir(*parts):
    d = os.path.join(*parts)
    os.makedirs(d, exist_ok=True)
    return d
