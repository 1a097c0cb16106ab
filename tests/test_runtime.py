"""Where the model runs: precision choices, the fp16 loss scaler, RNG state, a single process's Dist."""

import random

import numpy as np
import pytest
import torch

from gpt.runtime import Dist, RuntimeSetupError, grad_scaler, resolve_precision, rng_state, set_rng_state


def test_only_fp16_gets_a_loss_scaler():
    cpu = torch.device("cpu")
    assert grad_scaler(cpu, "fp16").is_enabled()
    assert not grad_scaler(cpu, "bf16").is_enabled() and not grad_scaler(cpu, "fp32").is_enabled()


def test_fp16_is_refused_off_cuda():
    with pytest.raises(RuntimeSetupError, match="fp16 needs a CUDA device"):
        resolve_precision("fp16", torch.device("cpu"))
    assert resolve_precision("auto", torch.device("cpu")) in ("bf16", "fp32")


def test_rng_state_round_trips_every_generator():
    state = rng_state()
    first = (torch.rand(3), random.random(), np.random.rand())
    set_rng_state(state)
    again = (torch.rand(3), random.random(), np.random.rand())
    assert torch.equal(first[0], again[0]) and first[1:] == again[1:]


def test_a_single_process_sums_to_itself():
    d = Dist()
    assert d.master and not d.active and d.sum([1.5, 2.0], torch.device("cpu")) == [1.5, 2.0]
    d.barrier()
    d.teardown()
