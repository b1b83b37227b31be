"""Generate one golden model package (model folder, forward logits, greedy generation, LoRA
loss/gradients/merge, a 10-step LoRA training run, meta.json) -- new-architecture version
(transformers 4.57.6, peft 0.18.1; Qwen3ForCausalLM, Gemma3ForCausalLM).

Usage: $PY gen_model_package.py <name> <out_root> [--spec FILE] [--trainer-check]
  name: a key of gen_common.PACKAGES (built in: qwen3-tiny) or of the JSON spec FILE
  --trainer-check: also run transformers.Trainer on the same data and compare it with the manual loop

Differences from tools/golden/gen_model_package.py (4.44): the training semantics recorded in train/ are
unchanged (mean loss per micro-batch, divided by the accumulation steps), but transformers >= 4.46's
Trainer defaults to a token-weighted loss for models whose forward takes **kwargs (all models here), so
the bitwise Trainer cross-check disables that (`model_accepts_loss_kwargs = False`), and the default
(token-weighted) Trainer run is compared with a second manual loop and recorded in meta.json only.
"""
import os
import shutil
import sys
import time

import torch
from peft import LoraConfig, PeftModel, TaskType, get_peft_model
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from transformers import get_cosine_schedule_with_warmup

from gen_common import (
    LORA_ALPHA, LORA_R, PACKAGES, lora_targets, ensure_dir, forward_batch, load_model, lora_batch,
    lora_params, manual_causal_lm_loss, maxabs, peft_key, rel_err, build_model, setup_threads,
    train_batches, versions, write_json, full_precision_logits, add_specs,
)

GEN_NEW_TOKENS = 12
GEN_PROMPT_LENS = (5, 9)
GEN_MIN_MARGIN = 1e-3  # prompts are re-drawn until every greedy step's top1-top2 logit gap is at least this
TRAIN = dict(steps=10, grad_accum=2, lr=5e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01,
             max_grad_norm=1.0, warmup_steps=2)
ST_META = {"format": "pt"}


def lora_config(name):
    return LoraConfig(task_type=TaskType.CAUSAL_LM, r=LORA_R, lora_alpha=LORA_ALPHA, lora_dropout=0.0,
                      target_modules=list(lora_targets(PACKAGES[name]["arch"])))


def logits_of(model, ids, mask):
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=mask).logits.float().contiguous()


# ---------------------------------------------------------------- 1. model + forward
def make_model_and_forward(name, pkg, meta):
    spec = PACKAGES[name]
    model = build_model(name)
    model.save_pretrained(pkg, safe_serialization=True)
    ids, mask = forward_batch(model.config.vocab_size, spec["data_seed"])
    logits = logits_of(model, ids, mask)
    save_file({"input_ids": ids, "attention_mask": mask, "logits": logits},
              os.path.join(pkg, "forward.safetensors"), metadata=ST_META)

    # row 2 unpadded (13 real tokens) must equal the padded row's real positions
    logits_row2 = logits_of(model, ids[2:3, :13], mask[2:3, :13])
    re = load_model(name, pkg)
    sd0, sd1 = model.state_dict(), re.state_dict()
    state_equal = sd0.keys() == sd1.keys() and all(torch.equal(sd0[k], sd1[k]) for k in sd0)
    logits_re = logits_of(re, ids, mask)
    assert state_equal and torch.equal(logits, logits_re), "reload differs"

    m64 = load_model(name, pkg, dtype=torch.float64)
    with torch.no_grad():
        logits64 = full_precision_logits(m64, ids, mask)
    with safe_open(os.path.join(pkg, "model.safetensors"), framework="pt") as f:
        weight_keys = {k: f.get_slice(k).get_shape() for k in f.keys()}
    meta["model"] = {
        "params": sum(p.numel() for p in model.parameters()),
        "model_safetensors_keys": len(weight_keys),
        "lm_head_in_file": "lm_head.weight" in weight_keys,
        "reload_state_dict_bitwise_equal": state_equal,
        "reload_logits_max_abs_diff": maxabs(logits, logits_re),
    }
    meta["forward"] = {
        "input_ids_shape": list(ids.shape), "logits_shape": list(logits.shape),
        "row2_padded_positions": [13, 19],
        "logits_abs_max": logits.abs().max().item(),
        "fp32_vs_fp64_logits_max_abs_diff": maxabs(logits, logits64),
        "fp32_vs_fp64_logits_max_abs_diff_nonpad": maxabs(logits[mask.bool()], logits64[mask.bool()]),
        "row2_padded_vs_unpadded_max_abs_diff": maxabs(logits[2, :13], logits_row2[0]),
        "argmax_row0": logits[0].argmax(-1).tolist(),
    }
    meta["arch_checks"] = arch_checks(name, re, ids, mask, logits)
    return re, ids, mask


def arch_checks(name, model, ids, mask, logits):
    """How much the architecture-specific features change the logits (so a reader knows that a
    comparison would catch an implementation that skips them). Each feature is switched off on a
    copy of the model (same weights) and the forward batch is re-run."""
    import copy
    out = {}
    cfg = model.config
    mt = cfg.model_type

    def variant(edit):
        m = copy.deepcopy(model)
        edit(m)
        return maxabs(logits_of(m, ids, mask)[mask.bool()], logits[mask.bool()])

    if mt in ("qwen3", "gemma3_text"):
        def no_qk_norm(m):
            for layer in m.model.layers:
                layer.self_attn.q_norm = torch.nn.Identity()
                layer.self_attn.k_norm = torch.nn.Identity()
        out["logit_change_without_q_k_norm"] = variant(no_qk_norm)
    if mt == "gemma3_text":
        out["logit_change_without_final_logit_softcapping"] = variant(
            lambda m: setattr(m.config, "final_logit_softcapping", None))

        def embed_scale_one(m):
            m.model.embed_tokens.embed_scale.fill_(1.0)
        out["logit_change_without_embedding_scale"] = variant(embed_scale_one)

        def all_global(m):
            m.config.layer_types = ["full_attention"] * m.config.num_hidden_layers
            for layer in m.model.layers:
                layer.attention_type = "full_attention"
                layer.self_attn.is_sliding = False
                layer.self_attn.sliding_window = None
        out["logit_change_without_sliding_window_and_local_rope"] = variant(all_global)

        def global_rope_everywhere(m):
            for layer in m.model.layers:
                layer.self_attn.is_sliding = False  # picks position_embeddings_global; mask unchanged
        out["logit_change_with_global_rope_on_sliding_layers"] = variant(global_rope_everywhere)

        def head_dim_scaling(m):
            for layer in m.model.layers:
                layer.self_attn.scaling = layer.self_attn.head_dim ** -0.5
        out["logit_change_with_head_dim_scaling_instead_of_query_pre_attn_scalar"] = variant(head_dim_scaling)

        if cfg.rope_scaling and cfg.rope_scaling.get("rope_type") == "linear":
            f = float(cfg.rope_scaling["factor"])

            def no_global_scaling(m):
                m.model.rotary_emb.inv_freq.mul_(f)
            out["logit_change_without_linear_rope_scaling_on_global_layers"] = variant(no_global_scaling)

            def local_scaling_too(m):
                m.model.rotary_emb_local.inv_freq.div_(f)
            out["logit_change_with_linear_rope_scaling_on_local_layers_too"] = variant(local_scaling_too)

        def attn_softcap(m):
            m.config.attn_logit_softcapping = 1.0
            for layer in m.model.layers:
                layer.self_attn.attn_logit_softcapping = 1.0
        # HF's Gemma3Attention does not pass attn_logit_softcapping to the attention function:
        # the value is ignored (this records that, 0.0 = ignored)
        out["logit_change_when_setting_attn_logit_softcapping_1.0"] = variant(attn_softcap)
        out["embed_scale_float32"] = model.model.embed_tokens.embed_scale.item()
        out["layer_types"] = list(cfg.layer_types)
    if mt == "phi3":
        rotary = model.model.rotary_emb
        out["rotary_dim"] = int(rotary.inv_freq.numel() * 2)
        out["longrope_attention_scaling"] = float(rotary.attention_scaling)
        out["original_max_position_embeddings"] = cfg.original_max_position_embeddings
        out["forward_seq_len"] = int(ids.shape[1])  # <= original max: the short factors apply

        def no_attention_scaling(m):
            m.model.rotary_emb.attention_scaling = 1.0
        out["logit_change_without_longrope_attention_scaling"] = variant(no_attention_scaling)

        def long_factors(m):
            r = m.model.rotary_emb
            r.original_inv_freq = r.rope_init_fn(m.config, None, seq_len=cfg.original_max_position_embeddings + 1)[0]
        out["logit_change_with_long_factors_on_the_forward_batch"] = variant(long_factors)

        def no_window(m):
            m.config.sliding_window = None
        out["logit_change_without_sliding_window"] = variant(no_window)
    return out


# ---------------------------------------------------------------- 2. greedy generation
def generate_once(model, prompt, use_cache):
    ids = torch.tensor([prompt], dtype=torch.int64)
    with torch.no_grad():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=GEN_NEW_TOKENS,
                             do_sample=False, num_beams=1, use_cache=use_cache,
                             return_dict_in_generate=True, output_logits=True)
    step_logits = torch.stack([l[0] for l in out.logits]).float()  # [new, V]
    return out.sequences[0].tolist(), step_logits


def manual_greedy(model, prompt):
    seq = list(prompt)
    with torch.no_grad():
        for _ in range(GEN_NEW_TOKENS):
            ids = torch.tensor([seq])
            seq.append(int(model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[0, -1].argmax()))
    return seq


def margins(step_logits):
    top2 = step_logits.topk(2, dim=-1).values
    return (top2[:, 0] - top2[:, 1]).tolist()


def make_generate(name, model, pkg, meta):
    spec, vocab = PACKAGES[name], model.config.vocab_size
    eos = model.generation_config.eos_token_id
    for attempt in range(100):
        g = torch.Generator().manual_seed(spec["data_seed"] + 100 + attempt)
        prompts = [torch.randint(1, vocab, (n,), generator=g).tolist() for n in GEN_PROMPT_LENS]
        runs = [generate_once(model, p, True) for p in prompts]
        ok = all(len(s) == len(p) + GEN_NEW_TOKENS and min(margins(l)) >= GEN_MIN_MARGIN
                 for p, (s, l) in zip(prompts, runs))
        if ok:
            break
    else:
        raise RuntimeError("no prompt pair with a safe greedy margin")
    records, scores = [], {}
    for i, (p, (seq_c, lg_c)) in enumerate(zip(prompts, runs)):
        seq_nc, lg_nc = generate_once(model, p, False)
        seq_manual = manual_greedy(model, p)
        assert seq_c == seq_nc == seq_manual, "greedy outputs disagree"
        records.append({
            "prompt_ids": p, "output_ids_use_cache_true": seq_c, "output_ids_use_cache_false": seq_nc,
            "new_token_ids": seq_c[len(p):], "outputs_equal": seq_c == seq_nc,
            "min_top1_top2_logit_margin": min(margins(lg_c)),
            "cache_vs_nocache_step_logits_max_abs_diff": maxabs(lg_c, lg_nc),
        })
        scores[f"prompt{i}.step_logits"] = lg_c.contiguous()
    gen = {
        "description": "greedy decoding, batch size 1 per prompt, no padding; output ids = prompt + new tokens",
        "max_new_tokens": GEN_NEW_TOKENS, "do_sample": False, "num_beams": 1,
        "eos_token_id": eos, "stopped_at_eos": False,
        "prompts": records,
    }
    write_json(os.path.join(pkg, "generate.json"), gen)
    save_file(scores, os.path.join(pkg, "generate_logits.safetensors"), metadata=ST_META)
    meta["generate"] = {
        "prompt_draws_needed": attempt + 1, "min_margin_required": GEN_MIN_MARGIN,
        "min_margin": min(r["min_top1_top2_logit_margin"] for r in records),
        "cache_vs_nocache_step_logits_max_abs_diff": max(r["cache_vs_nocache_step_logits_max_abs_diff"] for r in records),
        "manual_full_recompute_greedy_equal": True,
    }


# ---------------------------------------------------------------- 3. LoRA gradients + merge
def hf_loss(model, ids, mask, labels):
    out = model(input_ids=ids, attention_mask=mask, labels=labels)
    return out.loss, out.logits


def fp64_loss(model, ids, mask, labels):
    logits = full_precision_logits(model, ids, mask)
    return manual_causal_lm_loss(logits, labels), logits


def grads_of(model, ids, mask, labels, loss_fn=hf_loss):
    model.zero_grad(set_to_none=True)
    loss, logits = loss_fn(model, ids, mask, labels)
    loss.backward()
    grads = {peft_key(n): p.grad.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    return loss.detach(), logits.detach(), grads


def make_lora(name, pkg, fwd_ids, fwd_mask, meta):
    spec = PACKAGES[name]
    d = ensure_dir(pkg, "lora")
    base = load_model(name, pkg)
    ids, mask, labels, prompt_lens, real_lens = lora_batch(base.config.vocab_size, spec["data_seed"] + 1)
    save_file({"input_ids": ids, "attention_mask": mask, "labels": labels},
              os.path.join(d, "batch.safetensors"), metadata=ST_META)

    torch.manual_seed(spec["seed"] + 10)  # lora_A: kaiming_uniform(a=sqrt(5)), lora_B: zeros
    model = get_peft_model(base, lora_config(name))
    g = torch.Generator().manual_seed(spec["seed"] + 11)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if p.requires_grad and ".lora_B." in n:
                p.copy_(torch.randn(p.shape, generator=g) * 0.02)
    adir = os.path.join(d, "adapter_randB")
    model.save_pretrained(adir)
    model.train()
    loss, logits, grads = grads_of(model, ids, mask, labels)
    loss_manual = manual_causal_lm_loss(logits, labels)
    with safe_open(os.path.join(adir, "adapter_model.safetensors"), framework="pt") as f:
        adapter_keys = set(f.keys())
    assert adapter_keys == set(grads), "gradient keys differ from adapter keys"
    save_file(grads, os.path.join(d, "grads_randB.safetensors"), metadata=ST_META)
    trainable, total = model.get_nb_trainable_parameters()

    # round trip + float64 gradients for tolerance estimates
    re = PeftModel.from_pretrained(load_model(name, pkg), adir, is_trainable=True)
    loss_re, _, grads_re = grads_of(re.train(), ids, mask, labels)
    re64 = PeftModel.from_pretrained(load_model(name, pkg, torch.float64), adir, is_trainable=True).double()
    loss64, _, grads64 = grads_of(re64.train(), ids, mask, labels, fp64_loss)

    # merged model
    pm = PeftModel.from_pretrained(load_model(name, pkg), adir)
    logits_unmerged = logits_of(pm, fwd_ids, fwd_mask)
    merged = pm.merge_and_unload()
    mdir = os.path.join(d, "merged")
    merged.save_pretrained(mdir, safe_serialization=True)
    logits_merged = logits_of(merged, fwd_ids, fwd_mask)
    merged_re = load_model(name, mdir)
    assert torch.equal(logits_of(merged_re, fwd_ids, fwd_mask), logits_merged), "merged reload differs"
    save_file({"input_ids": fwd_ids, "attention_mask": fwd_mask, "logits": logits_merged,
               "logits_unmerged": logits_unmerged},
              os.path.join(d, "merged_logits.safetensors"), metadata=ST_META)
    # the merge must equal W + (alpha/r) B A computed by hand
    ad = load_file(os.path.join(adir, "adapter_model.safetensors"))
    msd = merged.state_dict()
    bsd = load_model(name, pkg).state_dict()
    merge_err = 0.0
    for k in ad:
        if ".lora_A." not in k:
            continue
        mod = k[len("base_model.model."):-len(".lora_A.weight")]
        want = bsd[mod + ".weight"] + (LORA_ALPHA / LORA_R) * (ad[k.replace("lora_A", "lora_B")] @ ad[k])
        merge_err = max(merge_err, maxabs(msd[mod + ".weight"], want))

    meta["lora"] = {
        "batch": {"shape": list(ids.shape), "prompt_lens": prompt_lens, "real_lens": real_lens,
                  "n_target_tokens": int((labels[:, 1:] != -100).sum())},
        "lora_init_seed": spec["seed"] + 10, "lora_B_seed": spec["seed"] + 11,
        "trainable_params": trainable, "all_params": total, "n_adapter_tensors": len(adapter_keys),
        "loss_randB": loss.item(), "loss_randB_manual": loss_manual.item(),
        "loss_randB_after_adapter_reload": loss_re.item(), "loss_randB_fp64": loss64.item(),
        "grad_global_norm_randB": torch.stack([v.norm() for v in grads.values()]).norm().item(),
        "reload_grads_bitwise_equal": all(torch.equal(grads[k], grads_re[k]) for k in grads),
        "fp32_vs_fp64_grad_max_abs_diff": max(maxabs(grads[k], grads64[k]) for k in grads),
        "fp32_vs_fp64_grad_max_rel_err_per_tensor": max(rel_err(grads[k], grads64[k]) for k in grads),
        "merged_vs_unmerged_logits_max_abs_diff": maxabs(logits_merged, logits_unmerged),
        "merged_weight_vs_W_plus_scaling_BA_max_abs_diff": merge_err,
    }


# ---------------------------------------------------------------- 4. training run
def make_train(name, pkg, meta, trainer_check):
    spec = PACKAGES[name]
    d = ensure_dir(pkg, "train")
    base = load_model(name, pkg)
    ids, mask, labels, answer = train_batches(base.config.vocab_size, spec["data_seed"] + 2)
    save_file({"input_ids": ids, "attention_mask": mask, "labels": labels},
              os.path.join(d, "train_batches.safetensors"), metadata=ST_META)
    torch.manual_seed(spec["seed"] + 10)  # same seed as lora/adapter_randB -> identical lora_A
    model = get_peft_model(base, lora_config(name))
    model.save_pretrained(os.path.join(d, "adapter_init"))
    steps, history = run_training(model, ids, mask, labels, hf_loss)
    model.save_pretrained(os.path.join(d, "adapter_final"))
    save_file({k: torch.stack(v).contiguous() for k, v in history.items()},
              os.path.join(d, "params_per_step.safetensors"), metadata=ST_META)
    # loss of the trained adapter over all micro-batches (no grad), after reload
    re = PeftModel.from_pretrained(load_model(name, pkg), os.path.join(d, "adapter_final"))
    with torch.no_grad():
        final_losses = [re(input_ids=ids[k], attention_mask=mask[k], labels=labels[k]).loss.item()
                        for k in range(ids.shape[0])]
    log = {
        "description": "manual loop with HF Trainer semantics; step s uses micro-batches 2(s-1), 2(s-1)+1",
        "hyperparameters": {**TRAIN, "betas": list(TRAIN["betas"]), "scheduler": "cosine (get_cosine_schedule_with_warmup, num_cycles=0.5)",
                            "optimizer": "torch.optim.AdamW (weight decay on every LoRA tensor)",
                            "micro_batch_size": int(ids.shape[1]), "seq_len": int(ids.shape[2]),
                            "lora": {"r": LORA_R, "lora_alpha": LORA_ALPHA, "lora_dropout": 0.0,
                                     "target_modules": lora_targets(spec["arch"])}},
        "steps": steps,
        "final_adapter_loss_per_micro_batch": final_losses,
    }
    write_json(os.path.join(d, "train_log.json"), log)
    base64 = load_model(name, pkg, torch.float64)
    re64 = PeftModel.from_pretrained(base64, os.path.join(d, "adapter_init"), is_trainable=True).double()
    steps64, history64 = run_training(re64, ids, mask, labels, fp64_loss)
    final32 = {k: v[-1] for k, v in history.items()}
    final64 = {k: v[-1] for k, v in history64.items()}
    meta["train"] = {
        "fp32_vs_fp64_run": {
            "loss_max_abs_diff": max(abs(a["loss"] - b["loss"]) for a, b in zip(steps, steps64)),
            "grad_norm_max_rel_diff": max(abs(a["grad_norm"] - b["grad_norm"]) / b["grad_norm"]
                                          for a, b in zip(steps, steps64)),
            "adapter_final_max_abs_diff": max(maxabs(final32[k], final64[k]) for k in final32),
            "adapter_final_max_rel_err_per_tensor": max(rel_err(final32[k], final64[k]) for k in final32),
            "lora_B_final_abs_max": max(v.abs().max().item() for k, v in final32.items() if ".lora_B." in k),
        },
        "lora_init_seed": spec["seed"] + 10,
        "response_token_sequence": answer.tolist(),
        "n_target_tokens_per_micro_batch": [int((labels[k][:, 1:] != -100).sum()) for k in range(ids.shape[0])],
        "first_step_loss": steps[0]["loss"], "last_step_loss": steps[-1]["loss"],
        "mean_final_adapter_loss": sum(final_losses) / len(final_losses),
    }
    if trainer_check:
        meta["train"]["hf_trainer_crosscheck"] = trainer_crosscheck(name, pkg, ids, mask, labels, steps,
                                                                    os.path.join(d, "adapter_final"))


def token_weighted_loss(model, ids, mask, labels, n_items):
    """HF's loss with num_items_in_batch (as Trainer >= 4.46 passes it): sum of CE / n_items."""
    out = model(input_ids=ids, attention_mask=mask, labels=labels, num_items_in_batch=n_items)
    return out.loss, out.logits


def run_training(model, ids, mask, labels, loss_fn, token_weighted=False):
    """Manual loop with HF Trainer semantics (see train_log.json for the definition).
    token_weighted=True: transformers >= 4.46 Trainer default instead (meta.json only)."""
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=TRAIN["lr"], betas=TRAIN["betas"], eps=TRAIN["eps"],
                            weight_decay=TRAIN["weight_decay"])
    sched = get_cosine_schedule_with_warmup(opt, num_warmup_steps=TRAIN["warmup_steps"],
                                            num_training_steps=TRAIN["steps"])
    ga = TRAIN["grad_accum"]
    model.train()
    steps, history = [], {k: [] for k in lora_params(model)}
    for s in range(TRAIN["steps"]):
        lr_used = opt.param_groups[0]["lr"]
        mb_losses, logged = [], torch.zeros(())
        n_items = sum(int((labels[k] != -100).sum()) for k in range(s * ga, (s + 1) * ga))
        for k in range(s * ga, (s + 1) * ga):
            if token_weighted:
                loss, _ = token_weighted_loss(model, ids[k], mask[k], labels[k], torch.tensor(n_items))
                loss.backward()
                logged = logged + loss.detach().float()
            else:
                loss, _ = loss_fn(model, ids[k], mask[k], labels[k])
                (loss / ga).backward()  # Trainer 4.57 divides by the accumulation steps (4.44: accelerate did)
                logged = logged + loss.detach().float() / ga  # Trainer's tr_loss accumulation
            mb_losses.append(loss.item())
        gn = torch.nn.utils.clip_grad_norm_(model.parameters(), TRAIN["max_grad_norm"])
        opt.step()
        sched.step()
        model.zero_grad(set_to_none=True)
        steps.append({"step": s + 1, "micro_batches": list(range(s * ga, (s + 1) * ga)),
                      "loss": logged.item(), "micro_batch_losses": mb_losses, "grad_norm": gn.item(),
                      "clip_coef": min(1.0, TRAIN["max_grad_norm"] / (gn.item() + 1e-6)),
                      "lr": lr_used, "lr_after_scheduler_step": opt.param_groups[0]["lr"]})
        for k, p in lora_params(model).items():
            history[k].append(p.detach().clone())
    return steps, history


def trainer_crosscheck(name, pkg, ids, mask, labels, steps, final_dir):
    """Run transformers.Trainer on the same micro-batches (sequential order) and compare."""
    from torch.utils.data import SequentialSampler
    from transformers import Trainer

    spec = PACKAGES[name]
    ids_t, mask_t, labels_t = ids, mask, labels
    rows = [{"input_ids": ids[k, j], "attention_mask": mask[k, j], "labels": labels[k, j]}
            for k in range(ids.shape[0]) for j in range(ids.shape[1])]

    class SeqTrainer(Trainer):
        def _get_train_sampler(self, train_dataset=None):
            return SequentialSampler(train_dataset if train_dataset is not None else self.train_dataset)

    res = {}
    for mode in ("mean_per_micro_batch", "token_weighted_default"):
        model, logs = _run_trainer(name, pkg, ids, rows, SeqTrainer, mode)
        got = lora_params(model)
        if mode == "mean_per_micro_batch":
            final = load_file(os.path.join(final_dir, "adapter_model.safetensors"))
            ref_steps = steps
            res.update({
                "trainer_model_accepts_loss_kwargs": False,
                "final_adapter_max_abs_diff": max(maxabs(got[k], final[k]) for k in final),
                "loss_max_abs_diff_trainer_rounded_4dp": max(abs(h["loss"] - s["loss"]) for h, s in zip(logs, ref_steps)),
                "grad_norm_max_abs_diff": max(abs(float(h["grad_norm"]) - s["grad_norm"]) for h, s in zip(logs, ref_steps)),
                "trainer_logged_learning_rate_equals_lr": all(
                    abs(h["learning_rate"] - s["lr"]) < 1e-12 for h, s in zip(logs, ref_steps)),
                "trainer_logged_learning_rate_equals_lr_after_scheduler_step": all(
                    abs(h["learning_rate"] - s["lr_after_scheduler_step"]) < 1e-12 for h, s in zip(logs, ref_steps)),
                "n_logged_steps": len(logs),
            })
        else:
            # transformers' default since 4.46 for models whose forward takes **kwargs: each micro-batch's
            # loss is sum(CE) / (target tokens of all micro-batches of the optimizer step), no / accum
            base = load_model(name, pkg)
            torch.manual_seed(spec["seed"] + 10)
            manual = get_peft_model(base, lora_config(name))
            tw_steps, tw_hist = run_training(manual, ids_t, mask_t, labels_t, hf_loss, token_weighted=True)
            final_tw = {k: v[-1] for k, v in tw_hist.items()}
            final = load_file(os.path.join(final_dir, "adapter_model.safetensors"))
            res["token_weighted_default_trainer"] = {
                "description": "Trainer with its default num_items_in_batch loss (model_accepts_loss_kwargs=True) vs a "
                               "manual loop with loss_k = sum CE_k / N(step) (N = target tokens of both micro-batches); "
                               "not recorded in train/, which uses the mean-per-micro-batch definition",
                "final_adapter_trainer_vs_manual_token_weighted_max_abs_diff": max(maxabs(got[k], final_tw[k]) for k in final_tw),
                "loss_max_abs_diff_trainer_rounded_4dp": max(abs(h["loss"] - s["loss"]) for h, s in zip(logs, tw_steps)),
                "grad_norm_max_abs_diff": max(abs(float(h["grad_norm"]) - s["grad_norm"]) for h, s in zip(logs, tw_steps)),
                "step_losses": [s["loss"] for s in tw_steps],
                "final_adapter_vs_recorded_adapter_final_max_abs_diff": max(maxabs(final_tw[k], final[k]) for k in final),
                "final_adapter_vs_recorded_adapter_final_max_rel_err_per_tensor": max(rel_err(final_tw[k], final[k]) for k in final),
            }
    return res


def _run_trainer(name, pkg, ids, rows, trainer_cls, mode):
    import tempfile
    from transformers import TrainingArguments, default_data_collator

    spec = PACKAGES[name]
    base = load_model(name, pkg)
    torch.manual_seed(spec["seed"] + 10)
    model = get_peft_model(base, lora_config(name))
    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(
            output_dir=tmp, per_device_train_batch_size=int(ids.shape[1]),
            gradient_accumulation_steps=TRAIN["grad_accum"], max_steps=TRAIN["steps"],
            learning_rate=TRAIN["lr"], adam_beta1=TRAIN["betas"][0], adam_beta2=TRAIN["betas"][1],
            adam_epsilon=TRAIN["eps"], weight_decay=TRAIN["weight_decay"], max_grad_norm=TRAIN["max_grad_norm"],
            lr_scheduler_type="cosine", warmup_steps=TRAIN["warmup_steps"], optim="adamw_torch",
            logging_steps=1, save_strategy="no", report_to=[], use_cpu=True, remove_unused_columns=False,
            dataloader_num_workers=0, disable_tqdm=True, seed=0,
        )
        tr = trainer_cls(model=model, args=args, train_dataset=rows, data_collator=default_data_collator)
        assert tr.model_accepts_loss_kwargs, "expected a model forward with **kwargs"
        if mode == "mean_per_micro_batch":
            tr.model_accepts_loss_kwargs = False  # 4.44 semantics: mean per micro-batch, / grad accum
        tr.train()
        logs = [h for h in tr.state.log_history if "loss" in h]
    return model, logs


def tolerance_summary(meta):
    """One place that lists the numeric agreements measured while generating this package."""
    f, g, l, t = meta["forward"], meta["generate"], meta["lora"], meta["train"]
    out = {
        "reload_logits_max_abs_diff": meta["model"]["reload_logits_max_abs_diff"],
        "forward_logits_fp32_vs_fp64_max_abs_diff": f["fp32_vs_fp64_logits_max_abs_diff"],
        "generate_cache_vs_nocache_step_logits_max_abs_diff": g["cache_vs_nocache_step_logits_max_abs_diff"],
        "generate_min_top1_top2_margin": g["min_margin"],
        "lora_loss_fp32_vs_fp64_abs_diff": abs(l["loss_randB"] - l["loss_randB_fp64"]),
        "lora_grads_fp32_vs_fp64_max_abs_diff": l["fp32_vs_fp64_grad_max_abs_diff"],
        "lora_grads_fp32_vs_fp64_max_rel_err_per_tensor": l["fp32_vs_fp64_grad_max_rel_err_per_tensor"],
        "merged_vs_unmerged_logits_max_abs_diff": l["merged_vs_unmerged_logits_max_abs_diff"],
        "train_fp32_vs_fp64_loss_max_abs_diff": t["fp32_vs_fp64_run"]["loss_max_abs_diff"],
        "train_fp32_vs_fp64_adapter_final_max_abs_diff": t["fp32_vs_fp64_run"]["adapter_final_max_abs_diff"],
        "train_fp32_vs_fp64_adapter_final_max_rel_err_per_tensor": t["fp32_vs_fp64_run"]["adapter_final_max_rel_err_per_tensor"],
    }
    if "hf_trainer_crosscheck" in t:
        out["train_manual_loop_vs_hf_trainer_adapter_final_max_abs_diff"] = \
            t["hf_trainer_crosscheck"]["final_adapter_max_abs_diff"]
    return out


# ---------------------------------------------------------------- main
def main():
    argv = sys.argv[1:]
    if "--spec" in argv:
        i = argv.index("--spec")
        add_specs(argv[i + 1])
        del argv[i:i + 2]
    trainer_check = "--trainer-check" in argv
    name, out_root = [a for a in argv if not a.startswith("--")]
    setup_threads(2)
    pkg = os.path.join(out_root, name)
    if os.path.exists(pkg):
        shutil.rmtree(pkg)
    os.makedirs(pkg)
    t0 = time.time()
    meta = {"name": name, "architecture": PACKAGES[name]["arch"], "seed": PACKAGES[name]["seed"],
            "data_seed": PACKAGES[name]["data_seed"], "versions": versions()}
    model, fwd_ids, fwd_mask = make_model_and_forward(name, pkg, meta)
    meta["config"] = model.config.to_diff_dict()
    meta["config"].pop("_name_or_path", None)
    make_generate(name, model, pkg, meta)
    make_lora(name, pkg, fwd_ids, fwd_mask, meta)
    make_train(name, pkg, meta, trainer_check)
    meta["tolerances_observed"] = tolerance_summary(meta)
    write_json(os.path.join(pkg, "meta.json"), meta)
    print(f"[{name}] done in {time.time() - t0:.1f}s -> {pkg}")


if __name__ == "__main__":
    main()
