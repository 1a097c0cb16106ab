"""Named presets: plain dotted overrides on top of the config defaults, so they compose and print.

`gpt train --preset NAME` applies one after the --config file and before the --section.key overrides
(gpt/config.py). This module must not import torch.
"""

from __future__ import annotations

from typing import Any

PRESETS: dict[str, dict[str, Any]] = {
    # The design's defaults: batch 64, block 128, 6 x 384, 6 heads, vocab 512.
    "default": {},
    # Finishes in about five minutes on a 2-core laptop CPU, tokenizer included. Regularised because a
    # 200 s budget sees a small corpus many times (without it the built-in corpus overfits after ~5
    # passes): stochastic depth 0.2 with weight decay 1.0 validated better than dropout 0.1 and skips
    # work where dropout adds it. It sets in from the 4th pass (full from the 8th): while the text is new
    # it only slows learning, so a large corpus that a run sees a few times is not regularised at all.
    # At most 12 passes over the text: past that validation got worse, so a faster machine stops there,
    # its lr decayed, instead of overfitting inside the same 200 s (benchmarks/README.md); never before
    # gpt.optim.MIN_CAPPED_STEPS steps, which a tiny corpus needs. A text that is mostly glossary or wiki
    # entries drops the regulariser and the cap: it is trained to recite them (gpt.qa_mix.recall_overrides).
    # NorMuon for the hidden matrices: its steps cost more, and in the same 200 s it still ends better.
    "cpu": {
        "tokenizer.vocab_size": 1024,
        "model.n_layer": 4, "model.n_head": 4, "model.n_embd": 256, "model.block_size": 128,
        "model.drop_path": 0.2, "train.weight_decay": 1.0, "train.regularise_after": 4.0,
        "model.pos": "rope", "model.norm": "rmsnorm", "model.mlp": "relu2", "model.bias": False,
        "model.qk_norm": True, "model.zero_init_proj": True,
        "train.batch_size": 32, "train.lr": 2e-3, "train.schedule": "wsd", "train.optimizer": "normuon",
        "train.max_iters": 100000, "train.max_time": 200.0, "train.max_epochs": 12.0,
        "train.eval_interval": 200, "train.ckpt_interval": 200, "train.eval_iters": 10,
    },
    "gpt2": {"model.norm": "layernorm", "model.mlp": "gelu", "model.pos": "learned", "model.bias": True},
    "llama": {
        "model.norm": "rmsnorm", "model.mlp": "swiglu", "model.pos": "rope", "model.bias": False,
        "model.tie_embeddings": False, "model.n_kv_head": 2, "model.norm_eps": 1e-6,
    },
    # The Tiny Shakespeare CPU speedrun (benchmarks/speedrun.py): 70 s, everything included.
    # Two layers beat four here: in 70 s the shallower model sees 1.5x the tokens (ablations in
    # benchmarks/README.md), and a 10x embedding lr lets the lookup table keep up. About as good at 3.5 passes
    # over the 1 MB text as at 4: a faster machine stops at 3.5. NorMuon learns more a step than AdamW (0.03
    # bits/byte at equal steps) for a fifth fewer steps in the 70 s; its lr at 1.5x the AdamW groups' and weight
    # decay at 0.5 are worth another 0.013 (benchmarks/README.md, round 24).
    "shakespeare-cpu": {
        "tokenizer.vocab_size": 1536, "tokenizer.special_tokens": [], "data.qa": "off",
        "model.n_layer": 2, "model.n_head": 4, "model.n_embd": 256, "model.block_size": 128,
        "model.pos": "rope", "model.norm": "rmsnorm", "model.mlp": "relu2", "model.bias": False,
        "model.qk_norm": True, "model.zero_init_proj": True, "model.tie_embeddings": False,
        "train.batch_size": 24, "train.lr": 3e-3, "train.embedding_lr_scale": 10.0, "train.optimizer": "normuon",
        "train.muon_lr": 4.5e-3, "train.weight_decay": 0.5,
        "train.schedule": "wsd", "train.decay_fraction": 0.4,
        "train.max_iters": 100000, "train.max_time": 60.0, "train.max_epochs": 3.5, "train.eval_interval": 100000,
        "train.ckpt_interval": 100000, "train.sample_tokens": 0, "train.warmup_iters": 30,
    },
    # For tests and smoke runs: seconds, not minutes.
    "tiny": {
        "tokenizer.vocab_size": 300, "model.n_layer": 2, "model.n_head": 2, "model.n_embd": 32,
        "model.block_size": 32, "train.batch_size": 8, "train.max_iters": 20, "train.lr": 1e-2,
        "train.eval_interval": 10,
        "train.eval_iters": 2, "train.ckpt_interval": 10, "train.log_interval": 5, "train.sample_tokens": 16,
        "train.compile": "off", "train.threads": 1,
    },
}
