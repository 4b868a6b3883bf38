"""Reading torch optimizers into SPEC's ``options.optimizer`` (edgewise._optimizer_model)."""

import pytest
import torch

from edgewise._optimizer_model import PLAIN_SGD, read_optimizer


def _params(n=1):
    return [torch.nn.Parameter(torch.zeros(2)) for _ in range(n)]


@pytest.mark.parametrize("kwargs,wire", [
    (dict(lr=0.1), {"kind": "sgd", "name": "SGD", "assumed": False}),
    (dict(lr=0.1, weight_decay=1e-4), {"kind": "sgd", "l2": 1e-4, "name": "SGD", "assumed": False}),
    (dict(lr=0.1, momentum=0.9), {"kind": "heavy_ball", "momentum": 0.9, "name": "SGD", "assumed": False}),
    (dict(lr=0.1, momentum=0.5, dampening=0.5), {"kind": "heavy_ball", "momentum": 0.5, "dampening": 0.5, "name": "SGD", "assumed": False}),
    (dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4),
     {"kind": "nesterov", "momentum": 0.9, "l2": 5e-4, "name": "SGD", "assumed": False}),
    # dampening without momentum is no momentum at all
    (dict(lr=0.1, momentum=0.0, dampening=0.3), {"kind": "sgd", "name": "SGD", "assumed": False}),
])
def test_sgd_kinds(kwargs, wire):
    model, note = read_optimizer(torch.optim.SGD(_params(), **kwargs))
    assert model.wire() == wire and note is None and not model.preconditioned


def test_adam_and_adamw():
    adam, _ = read_optimizer(torch.optim.Adam(_params(), lr=1e-3, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1,
                                              amsgrad=True))
    assert adam.wire() == {"kind": "adam", "beta1": 0.8, "l2": 0.1, "name": "Adam", "assumed": False}
    assert (adam.beta2, adam.eps, adam.amsgrad, adam.preconditioned) == (0.99, 1e-6, True, True)
    assert adam.round_momentum == 0.8
    adamw, _ = read_optimizer(torch.optim.AdamW(_params(), lr=1e-3, weight_decay=0.05))
    assert adamw.wire() == {"kind": "adam", "beta1": 0.9, "decoupled_decay": 0.05, "name": "AdamW", "assumed": False}
    assert adamw.eps == 1e-8 and adamw.beta2 == 0.999
    # Adam(decoupled_weight_decay=True) is AdamW
    dec, _ = read_optimizer(torch.optim.Adam(_params(), weight_decay=0.05, decoupled_weight_decay=True))
    assert dec.wire()["decoupled_decay"] == 0.05 and "l2" not in dec.wire()


@pytest.mark.parametrize("cls", [torch.optim.RMSprop, torch.optim.Adagrad, torch.optim.NAdam])
def test_other_optimizers_are_assumed_plain_sgd(cls):
    model, _ = read_optimizer(cls(_params(), lr=0.01))
    assert model.wire() == {"kind": "sgd", "name": cls.__name__, "assumed": True}
    assert "plain SGD" in model.describe()


def test_no_optimizer_is_plain_sgd_and_bad_input_is_refused():
    assert read_optimizer(None) == (PLAIN_SGD, None)
    with pytest.raises(TypeError):
        read_optimizer(object())


def test_param_groups_that_differ_use_group_0_with_a_note():
    a, b = _params(2)
    opt = torch.optim.SGD([{"params": [a]}, {"params": [b], "weight_decay": 0.0, "momentum": 0.5}], lr=0.1,
                          momentum=0.9, weight_decay=1e-4)
    model, note = read_optimizer(opt)
    assert model.wire() == {"kind": "heavy_ball", "momentum": 0.9, "l2": 1e-4, "name": "SGD", "assumed": False}
    assert "group 0" in note and "momentum" in note and "weight_decay" in note
    same = torch.optim.SGD([{"params": [a]}, {"params": [b]}], lr=0.1, momentum=0.9)
    assert read_optimizer(same)[1] is None


def test_names_are_capped_and_descriptions_are_short():
    class AVeryLongOptimizerName(torch.optim.SGD):
        pass
    AVeryLongOptimizerName.__name__ = "X" * 100
    model, _ = read_optimizer(AVeryLongOptimizerName(_params(), lr=0.1, momentum=0.9))
    assert len(model.wire()["name"]) == 64 and model.kind == "heavy_ball"
    assert read_optimizer(torch.optim.AdamW(_params()))[0].describe() == "AdamW β₁=0.9, ω=0.01, frozen P"
    assert read_optimizer(torch.optim.SGD(_params(), lr=0.1, momentum=0.9, nesterov=True))[0].describe() == \
        "SGD Nesterov β=0.9"
