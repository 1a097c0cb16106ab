import pytest
import torch
from safetensors.torch import load_file, save_file

from gpt.checkpoint import load_weights, save_weights
from gpt.config import Config, ModelConfig
from gpt.lora import (
    TARGETS,
    LoRAError,
    LoRALinear,
    apply_lora,
    load_lora_state_dict,
    lora_state_dict,
    merge_lora,
    merged_state_dict,
    store_base,
    trainable_parameters,
)
from gpt.model import GPT
from gpt.optim import build_optimizers

VARIANTS = {
    "gpt2": dict(),
    "gpt2-untied": dict(tie_embeddings=False),
    "llama": dict(norm="rmsnorm", mlp="swiglu", pos="rope", bias=False, tie_embeddings=False, n_kv_head=2),
    "modern": dict(norm="rmsnorm", mlp="relu2", pos="rope", bias=False, qk_norm=True, zero_init_proj=True),
}


def small(**kw) -> ModelConfig:
    return ModelConfig(**{**dict(vocab_size=97, block_size=24, n_layer=2, n_head=4, n_embd=32), **kw})


def base_model(variant: str, seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    model = GPT(small(**VARIANTS[variant]))
    with torch.no_grad():  # zero-init projections would hide mistakes; give every weight a value
        for p in model.parameters():
            p += 0.02 * torch.randn_like(p)
    return model


def perturb_adapters(model: GPT, seed: int = 5) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("lora_B"):
                p.copy_(0.05 * torch.randn(p.shape, generator=gen))


def batch(seed: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    data = torch.randint(0, 97, (4, 21), generator=gen)
    return data[:, :-1], data[:, 1:]


def adamw(model: GPT):
    cfg = Config()
    cfg.train.lr, cfg.train.weight_decay = 1e-2, 0.0
    return build_optimizers(model, cfg, torch.device("cpu"))


def train_steps(model: GPT, optimizers, steps: int, start: int = 0) -> list[float]:
    """The training step the Trainer takes (forward, backward, clip, step, zero); step i sees batch(3 + i % 2)."""
    losses = []
    for i in range(start, start + steps):
        x, y = batch(3 + i % 2)
        _, loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        for opt in optimizers:
            opt.step()
            opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("variant", VARIANTS)
def test_initial_forward_equals_base_exactly(variant):
    model = base_model(variant).eval()
    x, _ = batch()
    before = model.all_logits(x)
    names = apply_lora(model, rank=4, alpha=8, dropout=0.1)
    assert names == [f"h.{i}.{t}" for i in range(2) for t in TARGETS]
    assert torch.equal(model.all_logits(x), before)


@pytest.mark.parametrize("variant", VARIANTS)
def test_merged_forward_equals_adapter_forward(variant, tmp_path):
    model = base_model(variant).eval()
    keys = set(model.state_dict())
    apply_lora(model, rank=4, alpha=16)
    perturb_adapters(model)
    x, _ = batch()
    adapted = model.all_logits(x)
    assert not torch.allclose(adapted, base_model(variant).eval().all_logits(x), atol=1e-3)  # B really acts
    snapshot = merged_state_dict(model)
    assert set(snapshot) == keys
    merge_lora(model)
    assert not any(isinstance(m, LoRALinear) for m in model.modules())
    assert set(model.state_dict()) == keys
    assert all(torch.equal(model.state_dict()[k], snapshot[k]) for k in keys)
    assert torch.allclose(model.all_logits(x), adapted, atol=1e-5)
    # what export / generate / serve read: model.safetensors into a plain GPT
    save_weights(model, tmp_path / "model.safetensors")
    plain = GPT(small(**VARIANTS[variant])).eval()
    load_weights(plain, tmp_path / "model.safetensors")
    assert torch.equal(plain.all_logits(x), model.all_logits(x))
    assert all(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("variant", VARIANTS)
def test_only_adapters_train_and_loss_falls(variant):
    model = base_model(variant)
    apply_lora(model, rank=4, alpha=8)
    frozen = {k: v.clone() for k, v in model.state_dict().items() if ".lora_" not in k}
    adapters = lora_state_dict(model)
    optimizers = adamw(model)
    losses = train_steps(model, optimizers, 8)
    assert losses[-1] < losses[0] - 0.1, losses
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in frozen.items())  # every base tensor bitwise unchanged
    assert all(not torch.equal(state[k], v) for k, v in adapters.items())
    # the optimizer holds state for the adapters and nothing else
    held = [p for opt in optimizers for p in opt.state]
    assert {id(p) for p in held} == {id(p) for p in trainable_parameters(model).values()}
    expected = sum(2 * (4 * (m.in_features + m.out_features)) for m in model.modules() if isinstance(m, LoRALinear))
    assert sum(opt.state[p]["exp_avg"].numel() + opt.state[p]["exp_avg_sq"].numel()
               for opt in optimizers for p in opt.state) == expected


def test_trainable_parameter_count_and_target_choice():
    model = base_model("llama")
    names = apply_lora(model, rank=3, alpha=3, targets=("attn.c_attn",))
    assert names == ["h.0.attn.c_attn", "h.1.attn.c_attn"]
    trainable = trainable_parameters(model)
    assert sorted(trainable) == sorted(f"{n}.lora_{ab}" for n in names for ab in "AB")
    qkv_out = (4 + 2 * 2) * 8  # 4 query heads and 2 kv heads of size 8
    assert sum(p.numel() for p in trainable.values()) == 2 * 3 * (32 + qkv_out)
    assert model.h[0].attn.c_attn.lora_B.shape == (qkv_out, 3)
    assert model.h[0].attn.c_attn.scale == 1.0


@pytest.mark.parametrize("variant", ["gpt2", "llama"])
def test_adapter_state_round_trip_is_bitwise(variant, tmp_path):
    model = base_model(variant)
    apply_lora(model, rank=4, alpha=8, dropout=0.1)
    train_steps(model, adamw(model), 3)
    save_file(lora_state_dict(model), str(tmp_path / "adapters.safetensors"))
    fresh = base_model(variant)
    apply_lora(fresh, rank=4, alpha=8, dropout=0.1)
    load_lora_state_dict(fresh, load_file(str(tmp_path / "adapters.safetensors")))
    x, _ = batch(9)
    assert torch.equal(fresh.eval().all_logits(x), model.eval().all_logits(x))


def test_resume_from_adapters_and_optimizer_is_bitwise():
    """What a LoRA checkpoint must hold to resume exactly: adapters, optimizer state, RNG (for dropout)."""
    def fresh():
        model = base_model("llama")
        apply_lora(model, rank=4, alpha=8, dropout=0.2)
        return model, adamw(model)

    torch.manual_seed(11)
    whole, opts = fresh()
    train_steps(whole, opts, 6)
    torch.manual_seed(11)
    first, opts = fresh()
    train_steps(first, opts, 3)
    saved = (lora_state_dict(first), [o.state_dict() for o in opts], torch.get_rng_state())
    torch.manual_seed(99)  # anything in between must not matter
    second, opts = fresh()
    load_lora_state_dict(second, saved[0])
    for opt, state in zip(opts, saved[1]):
        opt.load_state_dict(state)
    torch.set_rng_state(saved[2])
    train_steps(second, opts, 3, start=3)
    assert all(torch.equal(a, b) for a, b in zip(lora_state_dict(whole).values(), lora_state_dict(second).values()))


def test_bf16_autocast_forward_and_backward():
    model = base_model("llama")
    apply_lora(model, rank=4, alpha=8)
    perturb_adapters(model)
    x, y = batch()
    reference = model.all_logits(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits, loss = model(x, y)
    assert logits.dtype == torch.bfloat16
    assert torch.allclose(logits.float(), reference, atol=0.05)
    loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert all(g is not None and g.dtype == torch.float32 for n, g in grads.items() if ".lora_" in n)
    assert all(g is None for n, g in grads.items() if ".lora_" not in n)


@pytest.mark.parametrize("kwargs, message", [
    (dict(rank=0, alpha=8), "LoRA rank must be at least 1, not 0"),
    (dict(rank=4, alpha=0), "LoRA alpha must be positive, not 0"),
    (dict(rank=4, alpha=8, dropout=1.0), "LoRA dropout must be in [0, 1), not 1.0"),
    (dict(rank=4, alpha=8, targets=("attn.c_attn", "lm_head")),
     "unknown LoRA target 'lm_head'; choose from attn.c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj"),
])
def test_bad_options_are_one_line_errors(kwargs, message):
    model = base_model("gpt2")
    with pytest.raises(LoRAError) as info:
        apply_lora(model, **kwargs)
    assert str(info.value) == message and info.value.code == 2
    assert all(p.requires_grad for p in model.parameters())  # a refused call changes nothing


def test_applying_twice_is_refused():
    model = base_model("gpt2")
    apply_lora(model, rank=2, alpha=2)
    with pytest.raises(LoRAError, match="already has LoRA adapters"):
        apply_lora(model, rank=2, alpha=2)


def test_loading_adapters_checks_names_and_shapes():
    model = base_model("gpt2")
    apply_lora(model, rank=4, alpha=8)
    good = lora_state_dict(model)
    missing = dict(good)
    del missing["h.1.mlp.c_fc.lora_A"]
    with pytest.raises(LoRAError, match=r"^adapters: missing tensor 'h.1.mlp.c_fc.lora_A'$"):
        load_lora_state_dict(model, missing, "adapters")
    other_rank = base_model("gpt2")
    apply_lora(other_rank, rank=2, alpha=8)
    with pytest.raises(LoRAError, match=r"'h.0.attn.c_attn.lora_A' has shape \(2, 32\), the model expects \(4, 32\)"):
        load_lora_state_dict(model, lora_state_dict(other_rank))
    with pytest.raises(LoRAError, match="unexpected tensor 'h.0.attn.c_attn.lora_C'"):
        load_lora_state_dict(model, {**good, "h.0.attn.c_attn.lora_C": torch.zeros(1)})
    with pytest.raises(LoRAError, match="has no LoRA adapters"):
        load_lora_state_dict(base_model("gpt2"), good)


def rounded_to_bf16(model: GPT) -> None:
    """What store_base does to the values, kept in fp32: every frozen matrix rounded to bf16."""
    with torch.no_grad():
        for p in model.parameters():
            if not p.requires_grad and p.dim() == 2:
                p.copy_(p.bfloat16().float())


@pytest.mark.parametrize("variant", ["gpt2", "llama"])  # tied head + learned positions; untied head + rope
def test_bf16_base_changes_only_the_rounding(variant, tmp_path):
    def adapted():
        model = base_model(variant)
        apply_lora(model, rank=4, alpha=8)
        perturb_adapters(model)
        return model

    model, reference = adapted(), adapted()
    rounded_to_bf16(reference)
    matrices = {n: p.numel() for n, p in model.named_parameters() if not p.requires_grad and p.dim() == 2}
    assert store_base(model, torch.bfloat16) == 2 * sum(matrices.values())  # 2 bytes saved per number
    dtypes = {n: p.dtype for n, p in model.named_parameters()}
    assert all(dtypes[n] == torch.bfloat16 for n in matrices) and len(matrices) >= 9
    assert all(d == torch.float32 for n, d in dtypes.items() if n not in matrices)  # adapters, norms, biases
    if variant == "gpt2":
        assert model.lm_head.weight is model.wte.weight  # still one tensor
    x, y = batch()
    results = []
    for m in (model, reference):  # under bf16 autocast the matmuls see the same numbers: bitwise equal
        with torch.autocast("cpu", dtype=torch.bfloat16):
            _, loss = m(x, y, return_logits=False)
        loss.backward()
        results.append((loss, {n: p.grad for n, p in m.named_parameters() if p.requires_grad}))
    (loss, grads), (ref_loss, ref_grads) = results
    assert torch.equal(loss, ref_loss) and grads.keys() == ref_grads.keys()
    assert all(torch.equal(grads[n], ref_grads[n]) for n in grads)
    # the export: fp32, the bf16 base upcast plus s * B A, bitwise what the rounded fp32 model merges to
    merged, expected = merged_state_dict(model), merged_state_dict(reference)
    assert merged.keys() == expected.keys()
    assert all(v.dtype == torch.float32 and torch.equal(v, expected[k]) for k, v in merged.items())
    # the base file holds bf16 and loads back into a model set up the same way
    save_weights(model, tmp_path / "base.safetensors", part="base")
    assert load_file(str(tmp_path / "base.safetensors"))["h.0.attn.c_attn.weight"].dtype == torch.bfloat16
    again = adapted()
    store_base(again, torch.bfloat16)
    load_weights(again, tmp_path / "base.safetensors", part="base")
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), model.state_dict().values()))
    merge_lora(model)
    assert all(p.dtype == torch.float32 and p.requires_grad for p in model.parameters())
    assert all(torch.equal(model.state_dict()[k], expected[k]) for k in expected)


def test_store_base_needs_adapters():
    with pytest.raises(LoRAError, match="call apply_lora first"):
        store_base(base_model("gpt2"), torch.bfloat16)
