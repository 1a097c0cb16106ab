import io

import pytest
import torch

from gpt.config import resolve
from gpt.model import GPT
from gpt.optim import Muon, build_optimizers, orthogonalise


def _model_and_optimizers(overrides: dict) -> tuple[GPT, list[torch.optim.Optimizer]]:
    cfg = resolve(preset="tiny", overrides={"model.vocab_size": 300, **overrides})
    torch.manual_seed(0)
    model = GPT(cfg.model)
    return model, build_optimizers(model, cfg, torch.device("cpu"))


FUSED_TWO_WAYS = {"train.optimizer": "normuon", "model.mlp": "swiglu", "model.n_kv_head": 1}  # unequal q / k / v


def _step(model: GPT, optimizers: list[torch.optim.Optimizer], seed: int) -> float:
    x = torch.randint(0, 300, (8, 32), generator=torch.Generator().manual_seed(seed))
    _, loss = model(x, x)
    loss.backward()
    for opt in optimizers:
        opt.step()
        opt.zero_grad()
    return loss.item()


def test_optimizer_groups_decay_matrices_only_and_speed_up_an_untied_embedding():
    untied = {"model.tie_embeddings": False, "train.embedding_lr_scale": 10, "train.lr": 1e-3}
    model, (adamw,) = _model_and_optimizers(untied)
    by_param = {id(p): g for g in adamw.param_groups for p in g["params"]}
    assert len(by_param) == len(list(model.parameters()))  # every parameter once
    for name, p in model.named_parameters():
        group = by_param[id(p)]
        if name == "wte.weight":
            assert group["lr"] == pytest.approx(1e-2) and group["weight_decay"] == 0.0
        else:
            assert group["lr"] == pytest.approx(1e-3)
            assert group["weight_decay"] == (0.1 if p.dim() == 2 else 0.0), name
    _, (opt,) = _model_and_optimizers({"model.tie_embeddings": True, "train.embedding_lr_scale": 10})
    assert all(g["lr"] == pytest.approx(resolve(preset="tiny").train.lr) for g in opt.param_groups)  # tied: lr


@pytest.mark.parametrize("optimizer", ["muon", "normuon"])
def test_muon_takes_the_hidden_matrices_and_trains(optimizer):
    model, (muon, adamw) = _model_and_optimizers({"train.optimizer": optimizer})
    assert isinstance(muon, Muon) and muon.param_groups[0]["lr"] == adamw.param_groups[0]["lr"]
    hidden = {id(p) for p in muon.param_groups[0]["params"]}
    assert hidden and all(p.dim() == 2 for p in muon.param_groups[0]["params"])
    assert id(model.wte.weight) not in hidden
    losses = [_step(model, [muon, adamw], seed=0) for _ in range(30)]  # one batch, learnt by heart
    assert losses[-1] < losses[0] - 1.0


@pytest.mark.parametrize("shape", [(64, 32), (32, 64)])
def test_orthogonalise_brings_every_singular_value_near_one(shape):
    g = torch.randn(*shape, generator=torch.Generator().manual_seed(0)) * 100  # the scale does not matter
    values = torch.linalg.svdvals(orthogonalise(g, steps=3))
    assert values.min() > 0.6 and values.max() < 1.25
    assert torch.linalg.svdvals(g).max() / torch.linalg.svdvals(g).min() > 4  # where the gradient was uneven


def test_a_fused_matrix_is_orthogonalised_map_by_map():
    """q, k and v share one matrix; each piece's update depends on its own gradient only."""
    for normalise in (False, True):
        updates = []
        for k_scale in (1.0, 50.0):
            p = torch.nn.Parameter(torch.zeros(3 * 16, 16))
            p.grad = torch.randn(3 * 16, 16, generator=torch.Generator().manual_seed(0))
            p.grad[16:32] *= k_scale  # k's gradient much larger: it must not shrink q's or v's update
            opt = Muon([p], lr=1.0, weight_decay=0.0, pieces={id(p): [16, 16, 16]}, normalise=normalise)
            updates.append(torch.cat(opt.update(p, opt.param_groups[0])))
        assert torch.allclose(updates[0][:16], updates[1][:16], atol=1e-6)
        assert torch.allclose(updates[0][32:], updates[1][32:], atol=1e-6)
        for update in updates:  # each map moves by an RMS of 0.2 (AdamW's typical update), whatever its scale
            assert all(abs(piece.square().mean().sqrt() - 0.2) < 1e-4 for piece in update.split(16))


def test_normuon_gives_every_neuron_the_same_update_size():
    p = torch.nn.Parameter(torch.zeros(32, 64))
    p.grad = torch.randn(32, 64, generator=torch.Generator().manual_seed(0)) * torch.linspace(0.1, 10, 32)[:, None]
    rows = {}
    for normalise in (False, True):
        opt = Muon([p], lr=1.0, weight_decay=0.0, pieces={}, normalise=normalise)
        (update,) = opt.update(p, opt.param_groups[0])
        rows[normalise] = update.square().mean(1).sqrt()
    assert rows[False].max() / rows[False].min() > 1.2  # orthogonalised, the rows still differ
    assert torch.allclose(rows[True], torch.full((32,), 0.2), rtol=1e-3)


def test_normuon_resumes_from_its_saved_state_exactly():
    model, optimizers = _model_and_optimizers(FUSED_TWO_WAYS)
    for seed in range(3):
        _step(model, optimizers, seed)
    saved = io.BytesIO()
    torch.save({"model": model.state_dict(), "optimizers": [opt.state_dict() for opt in optimizers]}, saved)
    straight = [_step(model, optimizers, seed) for seed in range(3, 6)]

    saved.seek(0)
    state = torch.load(saved, weights_only=True)  # as checkpoints are read: no code executed
    model, optimizers = _model_and_optimizers(FUSED_TWO_WAYS)
    model.load_state_dict(state["model"])
    for opt, opt_state in zip(optimizers, state["optimizers"]):
        opt.load_state_dict(opt_state)
    assert [_step(model, optimizers, seed) for seed in range(3, 6)] == straight
