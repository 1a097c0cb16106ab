"""LoRA: fine-tune a GPT by training a low-rank correction to each projection, with the model frozen.

A frozen linear layer computes y = x W^T + b, with W of shape (out, in). LoRA (Hu et al., 2021) learns

    y = x W^T + b + s * (x A^T) B^T,    A: (r, in),  B: (out, r),  s = alpha / r

so the weight in effect is W' = W + s * B A, a change of rank at most r. Only A and B are trained:
r * (in + out) numbers per layer instead of in * out (for r = 8 on a 768 x 768 projection, 2%).
B starts at zero, so before the first step the model computes exactly what the base model does;
A starts random (Kaiming uniform, as nn.Linear's own init) so that B's gradient, which is
s * dL/dy^T (x A^T), is not zero. Dividing by r keeps the update's size roughly independent of r:
change r and the same alpha and learning rate still work. Dropout, if any, is on the adapter's input only.

After training, ``merge_lora`` folds s * B A into W and puts plain nn.Linear layers back, so the
model is an ordinary GPT again: its state dict has the original keys and no extra cost at inference.

Under bf16 autocast, ``store_base`` may hold the frozen matrices (the wrapped W, the embeddings, the LM
head) in bf16: autocast rounds them to bf16 for every matmul anyway, so the fp32 copies only cost memory
and a cast per use. Adapters, norms, biases and the optimizer stay in fp32, and merging is done in fp32:
the merged weight is the bf16-rounded base, upcast, plus s * B A. That rounding is the one thing such a
run changes in the base: the embedding rows it looks up are bf16-rounded too, while the residual stream
stays fp32 (gpt/model.py upcasts the lookups).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from gpt.config import LORA_TARGETS as TARGETS
from gpt.errors import InputError
from gpt.model import state_mismatch


class LoRAError(InputError):
    """Bad LoRA options or a LoRA state that does not fit the model; one line, exit code 2."""


class LoRALinear(nn.Module):
    """A frozen nn.Linear plus a trainable low-rank update s * B A (see the module docstring).

    The base layer's weight and bias are held as this module's own `weight` and `bias` (the same
    tensors, not copies), so the base keys in the state dict keep their names: h.0.attn.c_attn.weight.
    """

    def __init__(self, base: nn.Linear, rank: int, alpha: float, dropout: float = 0.0):
        super().__init__()
        self.in_features, self.out_features = base.in_features, base.out_features
        self.weight, self.bias = base.weight, base.bias
        self.weight.requires_grad_(False)
        if self.bias is not None:
            self.bias.requires_grad_(False)
        self.rank, self.scale = rank, alpha / rank
        factory = {"device": base.weight.device, "dtype": base.weight.dtype}
        self.lora_A = nn.Parameter(torch.empty(rank, self.in_features, **factory))
        self.lora_B = nn.Parameter(torch.zeros(self.out_features, rank, **factory))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The base term is the very call nn.Linear makes, so while B = 0 the output is bitwise the base's.
        # The scale is applied to the (..., r) tensor: r numbers per token instead of out.
        low = F.linear(self.dropout(x), self.lora_A) * self.scale  # (..., r)
        return F.linear(x, self.weight, self.bias) + F.linear(low, self.lora_B)

    @torch.no_grad()
    def merged_weight(self) -> torch.Tensor:
        """W + s * B A, summed in fp32 and returned in the adapters' dtype (W's, unless store_base lowered W)."""
        delta = (self.lora_B.float() @ self.lora_A.float()) * self.scale
        return (self.weight.float() + delta).to(self.lora_A.dtype)

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, rank={self.rank}, scale={self.scale:g}"


def lora_modules(model: nn.Module) -> dict[str, LoRALinear]:
    return {name: m for name, m in model.named_modules() if isinstance(m, LoRALinear)}


def apply_lora(model: nn.Module, rank: int, alpha: float, dropout: float = 0.0,
               targets: tuple[str, ...] | list[str] = TARGETS) -> list[str]:
    """Wrap each targeted nn.Linear in a LoRALinear and freeze every other parameter; returns the wrapped names.

    A target is a module name suffix from TARGETS ("mlp.c_fc" wraps h.0.mlp.c_fc, h.1.mlp.c_fc, ...).
    """
    if rank < 1:
        raise LoRAError(f"LoRA rank must be at least 1, not {rank}")
    if not alpha > 0:
        raise LoRAError(f"LoRA alpha must be positive, not {alpha}")
    if not 0.0 <= dropout < 1.0:
        raise LoRAError(f"LoRA dropout must be in [0, 1), not {dropout}")
    unknown = [t for t in targets if t not in TARGETS]
    if unknown or not targets:
        raise LoRAError(f"unknown LoRA target {unknown[0] if unknown else '(none given)'!r}; "
                        f"choose from {', '.join(TARGETS)}")
    if lora_modules(model):
        raise LoRAError("the model already has LoRA adapters; merge them (merge_lora) before adding new ones")
    chosen = [name for name, m in model.named_modules()
              if isinstance(m, nn.Linear) and any(name == t or name.endswith("." + t) for t in targets)]
    if not chosen:
        raise LoRAError(f"no linear layer of this model is named like {', '.join(targets)}")
    for p in model.parameters():
        p.requires_grad_(False)
    for name in chosen:
        parent, _, attr = name.rpartition(".")
        setattr(model.get_submodule(parent), attr, LoRALinear(model.get_submodule(name), rank, alpha, dropout))
    return chosen


@torch.no_grad()
def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every adapter into its base weight and put a plain nn.Linear back, in place.

    The result is an ordinary model with the original state-dict keys; all its parameters are
    trainable again, as they were before apply_lora.
    """
    modules = lora_modules(model)
    dtype = _adapter_dtype(model)
    for name, module in modules.items():
        linear = nn.Linear(module.in_features, module.out_features, bias=module.bias is not None,
                           device=module.weight.device, dtype=module.lora_A.dtype)
        linear.weight.copy_(module.merged_weight())
        if module.bias is not None:
            linear.bias.copy_(module.bias)
        parent, _, attr = name.rpartition(".")
        setattr(model.get_submodule(parent), attr, linear)
    for p in model.parameters():
        if dtype is not None and p.is_floating_point():
            p.data = p.data.to(dtype)  # a base store_base lowered: back to the model's dtype
        p.requires_grad_(True)
    return model


@torch.no_grad()
def merged_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict merge_lora would give, without changing the model (for saving mid-training)."""
    dtype = _adapter_dtype(model)
    state = {k: v.to(dtype) if dtype is not None and v.is_floating_point() else v
             for k, v in model.state_dict().items() if ".lora_" not in k}
    for name, module in lora_modules(model).items():
        state[f"{name}.weight"] = module.merged_weight()
    return state


def store_base(model: nn.Module, dtype: torch.dtype) -> int:
    """Hold the frozen matrices (the wrapped W, embeddings, LM head) in dtype, in place; returns the bytes freed.

    For a model wrapped by apply_lora that trains under autocast to dtype (see the module docstring).
    Vectors (norms, biases) and everything trainable keep their dtype; tied weights stay one tensor.
    """
    if not lora_modules(model):
        raise LoRAError("store_base is for a model with LoRA adapters (call apply_lora first)")
    freed = 0
    with torch.no_grad():
        for p in model.parameters():
            if not p.requires_grad and p.dim() >= 2 and p.is_floating_point() and p.dtype != dtype:
                freed += p.numel() * (p.element_size() - dtype.itemsize)
                p.data = p.data.to(dtype)  # the same Parameter object: ties and module references hold
    return freed


def _adapter_dtype(model: nn.Module) -> torch.dtype | None:
    """The dtype the adapters train in: the model's own, which store_base may have lowered the base from."""
    return next((p.dtype for p in _adapters(model).values()), None)


def lora_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of the adapters only: {'h.0.attn.c_attn.lora_A': (r, in), '...lora_B': (out, r), ...}.

    Pass the model itself, not its torch.compile or DDP wrapper (whose keys carry a prefix).
    """
    return {k: v.detach().clone() for k, v in _adapters(model).items()}


def _adapters(model: nn.Module) -> dict[str, nn.Parameter]:
    return {n: p for n, p in model.named_parameters() if ".lora_" in n}


def load_lora_state_dict(model: nn.Module, state: dict[str, torch.Tensor], source: str = "LoRA state") -> None:
    """Copy adapters into a model already wrapped by apply_lora, refusing a missing, extra or mis-shaped tensor."""
    expected = _adapters(model)
    if not expected:
        raise LoRAError(f"{source}: the model has no LoRA adapters (call apply_lora with the same options first)")
    if problem := state_mismatch(expected, state):
        hint = {"tensor": " (a different rank or model?)", "unexpected": " (adapters on other targets?)"}
        raise LoRAError(f"{source}: {problem}{hint.get(problem.split()[0], '')}")
    with torch.no_grad():
        for key, tensor in expected.items():
            tensor.copy_(state[key])


def trainable_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """Parameters that will be trained: after apply_lora, the adapters and nothing else."""
    return {n: p for n, p in model.named_parameters() if p.requires_grad}
