"""Optimizers and the learning-rate schedule.

AdamW with weight decay on matrices only; optionally Muon or NorMuon (`Muon` below) for the hidden matrices.
An untied token embedding is its own group at lr x embedding_lr_scale, without decay: each row gets a
gradient only when its token occurs, so it learns slowest of all the weights. The schedule is a function
of progress in [0, 1] (steps, or elapsed time for a time budget), so it fits both kinds of run.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from gpt.config import Config, TrainConfig

EMBEDDINGS = {"wte.weight", "wpe.weight", "lm_head.weight"}
MIN_CAPPED_STEPS = 200  # train.max_epochs never ends a run sooner: a few KB of notes make 12 passes in 2 steps


def passes_cap(cfg: Config, text_tokens: int, tokens_per_step: int) -> int:
    """How many tokens a run may see under train.max_epochs (0: no cap): that many passes over the text, or
    MIN_CAPPED_STEPS steps if that is more. Passes guard a small corpus against overfitting; a tiny one
    (a notes folder) needs steps to learn anything, and its questions need it to memorise."""
    if not cfg.train.max_epochs or not text_tokens:
        return 0
    return max(round(cfg.train.max_epochs * text_tokens), MIN_CAPPED_STEPS * tokens_per_step)


def lr_multiplier(cfg: Config, step: int, progress: float) -> float:
    """Linear warmup times a cosine / warmup-stable-decay / constant shape of progress in [0, 1]."""
    tr = cfg.train
    if tr.warmup_iters >= 0:
        warm = min(1.0, (step + 1) / (tr.warmup_iters + 1))
    else:  # 2% of the run, by progress, so it also fits time-budgeted runs
        warm = min(1.0, max(progress, 1e-3) / 0.02)
    # the decay shape starts where warmup ends, so the peak lr is reached
    w = 0.02 if tr.warmup_iters < 0 else 0.0 if tr.max_time else min(0.5, tr.warmup_iters / tr.max_iters)
    p = min(max((progress - w) / (1 - w), 0.0), 1.0)
    if tr.schedule == "cosine":
        shape = tr.min_lr_ratio + (1 - tr.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * p))
    elif tr.schedule == "wsd":
        start = 1.0 - tr.decay_fraction
        shape = 1.0 if p < start else tr.min_lr_ratio + (1 - tr.min_lr_ratio) * (1.0 - p) / tr.decay_fraction
    else:
        shape = 1.0
    return warm * shape


def parameter_roles(model: nn.Module, cfg: Config) -> dict[str, list[nn.Parameter]]:
    """model's trainable parameters by role (frozen ones, e.g. under LoRA, are left out).

    'hidden': the blocks' matrices; 'embeddings': the other matrices (position table, an untied LM head);
    'vectors': norms' gains and biases; 'token_table': the untied token embedding (empty when tied).
    """
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    token_table = [params.pop("wte.weight")] if not cfg.model.tie_embeddings and "wte.weight" in params else []
    return {"hidden": [p for n, p in params.items() if p.dim() == 2 and n not in EMBEDDINGS],
            "embeddings": [p for n, p in params.items() if p.dim() == 2 and n in EMBEDDINGS],
            "vectors": [p for n, p in params.items() if p.dim() < 2],
            "token_table": token_table}


def param_groups(roles: dict[str, list[nn.Parameter]], decay: list[nn.Parameter], cfg: Config) -> list[dict]:
    """Optimizer groups: `decay` with weight decay, vectors without, the token table at lr x embedding_lr_scale."""
    tr = cfg.train
    groups = [{"params": decay, "weight_decay": tr.weight_decay}, {"params": roles["vectors"], "weight_decay": 0.0}]
    if roles["token_table"]:
        groups.append({"params": roles["token_table"], "weight_decay": 0.0, "lr": tr.lr * tr.embedding_lr_scale})
    return [g for g in groups if g["params"]]


def build_optimizers(model: nn.Module, cfg: Config, device: torch.device) -> list[torch.optim.Optimizer]:
    """The optimizers over model's trainable parameters; each group records its `base_lr` for set_lr."""
    tr = cfg.train
    roles = parameter_roles(model, cfg)
    fused = {"fused": True} if device.type in ("cuda", "cpu") else {}  # see benchmarks/README.md
    optimizers: list[torch.optim.Optimizer] = []
    if tr.optimizer in ("muon", "normuon"):
        pieces = {id(m.weight): m.row_pieces for m in model.modules() if hasattr(m, "row_pieces")}
        optimizers.append(Muon(roles["hidden"], lr=tr.muon_lr or tr.lr, weight_decay=tr.weight_decay,
                               pieces=pieces, normalise=tr.optimizer == "normuon"))
        decay = roles["embeddings"]
    else:
        decay = roles["hidden"] + roles["embeddings"]
    optimizers.append(torch.optim.AdamW(param_groups(roles, decay, cfg), lr=tr.lr, betas=(tr.beta1, tr.beta2),
                                        **fused))
    for opt in optimizers:
        for group in opt.param_groups:
            group["base_lr"] = group["lr"]
    return optimizers


@torch.no_grad()
def orthogonalise(g: torch.Tensor, steps: int) -> torch.Tensor:
    """About U V^T of g = U S V^T (the nearest matrix with all singular values 1), by a quintic Newton-Schulz
    iteration in bf16. Keller Jordan's coefficients push the singular values into about [0.7, 1.2] fast rather
    than to 1 exactly: updates that precise train no better (benchmarks/README.md, round 23)."""
    a, b, c = 3.4445, -4.7750, 2.0315
    x = g.bfloat16()
    wide = x.size(0) <= x.size(1)
    x = x if wide else x.T  # x @ x.T is then the smaller square
    x = x / (x.norm() + 1e-7)  # singular values <= 1, where the iteration converges
    for _ in range(steps):
        xxt = x @ x.T
        x = torch.addmm(x, torch.addmm(xxt, xxt, xxt, beta=b, alpha=c), x, beta=a)  # a x + (b xxt + c xxt^2) x
    return (x if wide else x.T).to(g.dtype)


class Muon(torch.optim.Optimizer):
    """Muon for the hidden matrices: momentum, then the update orthogonalised (every direction of the map moves by
    the same amount, not mostly the few the gradient is largest in), scaled to an RMS of 0.2, AdamW's typical
    update, so its lr is in AdamW's units. A matrix that stacks separate maps (`row_pieces` on its module: q, k
    and v) is orthogonalised map by map. With `normalise` it is NorMuon (Li et al. 2025, arXiv 2510.05491): each
    output row (neuron) of the orthogonalised update is divided by its running RMS, so that no neuron's updates
    stay larger than the others', before the scaling to 0.2. Weight decay is decoupled, as AdamW's."""

    def __init__(self, params: list[nn.Parameter], lr: float, weight_decay: float, pieces: dict[int, list[int]],
                 normalise: bool = True, momentum: float = 0.95, beta2: float = 0.95, ns_steps: int = 3):
        super().__init__(params, {"lr": lr, "weight_decay": weight_decay, "momentum": momentum, "beta2": beta2,
                                  "ns_steps": ns_steps, "normalise": normalise})
        self.pieces = pieces

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        for group in self.param_groups:  # a checkpoint of torch.optim.Muon, which an earlier version used
            for key, value in self.defaults.items():
                group.setdefault(key, False if key == "normalise" else value)

    @torch.no_grad()
    def step(self) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.mul_(1 - group["lr"] * group["weight_decay"])
                    for rows, update in zip(p.split(self.sizes(p)), self.update(p, group)):
                        rows.add_(update, alpha=-group["lr"])

    def sizes(self, p: nn.Parameter) -> list[int]:
        """The rows of each map stacked in p: all of them, unless its module gave row_pieces."""
        return self.pieces.get(id(p), [len(p)])

    def update(self, p: nn.Parameter, group: dict) -> list[torch.Tensor]:
        """p's update, a tensor for each of its pieces."""
        state, beta = self.state[p], group["momentum"]
        momentum = state.setdefault("momentum_buffer", torch.zeros_like(p)).lerp_(p.grad, 1 - beta)
        nesterov = p.grad.lerp(momentum, beta)
        pieces = [orthogonalise(m, group["ns_steps"]) for m in nesterov.split(self.sizes(p))]
        if group["normalise"]:
            rms = [o.square().mean(1, keepdim=True) for o in pieces]  # (rows, 1) each
            running = state.setdefault("row_rms", [torch.zeros_like(r) for r in rms])  # unbiased up to a factor
            pieces = [o / (v.lerp_(r, 1 - group["beta2"]).sqrt() + 1e-8) for o, v, r in zip(pieces, running, rms)]
        return [o.mul_(0.2 * o.numel() ** 0.5 / (o.norm() + 1e-8)) for o in pieces]


def regulariser_strength(cfg: Config, passes: float) -> float:
    """How much of the regulariser (model.drop_path, weight decay past the default 0.1) applies after `passes`
    passes over the text: none for the first train.regularise_after passes (a run that sees its text a few times
    underfits, and regularising only slows it), rising over as many again to all of it, in quarters (a compiled
    model recompiles for each value)."""
    start = cfg.train.regularise_after
    return 1.0 if not start else math.floor(4 * min(max(passes / start - 1.0, 0.0), 1.0)) / 4


def set_regulariser(model: nn.Module, optimizers: list[torch.optim.Optimizer], cfg: Config, passes: float) -> None:
    """The regulariser's strength after `passes` passes over the text (regulariser_strength): drop path at strength
    x model.drop_path, decayed groups at the default weight decay plus strength x the rest."""
    strength = regulariser_strength(cfg, passes)
    for block in getattr(model, "h", ()):
        block.drop_path = cfg.model.drop_path * strength
    floor = min(cfg.train.weight_decay, TrainConfig.weight_decay)
    for opt in optimizers:
        for group in opt.param_groups:
            if group["weight_decay"] or group.get("base_weight_decay"):
                group.setdefault("base_weight_decay", group["weight_decay"])
                group["weight_decay"] = floor + (group["base_weight_decay"] - floor) * strength


def set_lr(optimizers: list[torch.optim.Optimizer], multiplier: float) -> None:
    """Every group's lr = its base_lr x multiplier (the schedule's value at this step)."""
    for opt in optimizers:
        for group in opt.param_groups:
            group["lr"] = group["base_lr"] * multiplier


class WeightAverage:
    """An exponential moving average of the trainable weights, taken after every step (train.weight_average is
    its decay per step; 0: off). The last step's weights carry the noise of its small batches; their recent
    average often predicts held-out text better (benchmarks/README.md, round 21), so the trainer tries it at the
    end and keeps whichever validates better (not where the trained answers are the point: gpt/train.py).
    Bias-corrected: a run shorter than the horizon averages what it has."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay, self.weight = decay, 0.0  # weight: the sum of the coefficients, to divide by
        self.params = [p for p in model.parameters() if p.requires_grad] if decay else []
        self.average = [torch.zeros_like(p, dtype=torch.float32) for p in self.params]

    @torch.no_grad()
    def update(self) -> None:
        if self.params:
            torch._foreach_mul_(self.average, self.decay)
            torch._foreach_add_(self.average, [p.float() for p in self.params], alpha=1.0 - self.decay)
            self.weight = self.weight * self.decay + 1.0 - self.decay

    @torch.no_grad()
    def swap(self, weights: list[torch.Tensor] | None = None) -> list[torch.Tensor]:
        """Put `weights` (default: the average) into the model; returns the weights it held."""
        held = [p.detach().clone() for p in self.params]
        for p, w in zip(self.params, weights or [a / self.weight for a in self.average]):
            p.copy_(w)
        return held

    def state_dict(self) -> dict:
        return {"decay": self.decay, "weight": self.weight, "average": self.average}

    def load_state_dict(self, state: dict | None) -> None:
        """A checkpoint's average; one without (an older version's, or another decay) starts it afresh."""
        if state and state["decay"] == self.decay and len(state["average"]) == len(self.average):
            self.weight, self.average = state["weight"], [a.to(p.device) for a, p in zip(state["average"], self.params)]
