"""Edgewise in a Hugging Face ``Trainer``: a ``TrainerCallback`` whose reports go into the logs.

Example::

    from edgewise.integrations.transformers import EdgewiseCallback

    trainer = Trainer(model=model, args=args, train_dataset=train)
    EdgewiseCallback().attach(trainer)   # first in line, so W&B/TensorBoard/... get its numbers
    trainer.train()

Dict batches: the probe is the collated dict batch itself; its tensors other than ``labels``
(``input_ids``, ``attention_mask``, ``token_type_ids``, ...) are the model's keyword arguments
(:func:`logits_forward` returns the logits), ``labels`` are the targets and the loss is
``loss_fn(logits, labels)`` (cross-entropy by default; give a shifted one for causal LMs), so
the Gauss–Newton routes apply.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from typing import Any, Callable, Iterator

import torch
from transformers import TrainerCallback

from .._probe import _indices
from ..monitor import EdgewiseWarning, Monitor
from ..stability_lr import StabilityLR
from ._metrics import report_metrics

__all__ = ["EdgewiseCallback", "logits_cross_entropy", "logits_forward"]


def logits_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of ``logits[..., C]`` against ``labels[...]`` (-100 ignored), as
    Hugging Face sequence and token classification heads compute it."""
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100)


@contextlib.contextmanager
def _eager_attention(model: torch.nn.Module) -> Iterator[None]:
    """Eager attention while probing: the fused kernels have no forward-mode AD, and the
    padding-mask shortcuts of the others branch on tensor values, which vmap cannot."""
    config = getattr(model, "config", None)
    saved = getattr(config, "_attn_implementation", None)
    if config is not None and saved is not None:
        config._attn_implementation = "eager"
    try:
        yield
    finally:
        if config is not None and saved is not None:
            config._attn_implementation = saved


def logits_forward(model: torch.nn.Module, batch: dict[str, torch.Tensor], output: str = "logits") -> torch.Tensor:
    """``model(**batch).logits`` with eager attention (the oracle's ``forward=``).

    A 2-D ``attention_mask`` is handed to the model as the equivalent 4-D additive mask, which
    needs no value-dependent branch under vmap.
    """
    inputs = dict(batch)
    mask = inputs.get("attention_mask")
    if mask is not None and mask.dim() == 2:
        dtype = next(model.parameters()).dtype
        inputs["attention_mask"] = (1.0 - mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min
    with _eager_attention(model):
        out = model(**inputs)
    return out[output] if isinstance(out, dict) else getattr(out, output)


def _split_labels(batch: dict[str, Any], label_key: str = "labels") -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """``(inputs, labels)`` of a dict batch: its tensors other than the labels, and the labels."""
    if label_key not in batch:
        raise ValueError(f"expected the probe batch to have {label_key!r}, got keys {sorted(batch)}")
    inputs = {k: v for k, v in batch.items() if k != label_key and torch.is_tensor(v)}
    return inputs, batch[label_key]


class EdgewiseCallback(TrainerCallback):
    """Runs an Edgewise round at each epoch's end (or every ``every_n_steps`` optimizer steps)
    and puts ``edgewise/lambda_gen``, ``edgewise/eta_star``, ``edgewise/margin``, ... into the
    trainer's next ``on_log`` (and ``state.log_history``).

    Reporters (W&B, TensorBoard, ...) read the logs in callback order, so the callback must
    come before them: :meth:`attach` puts it first; passed in ``Trainer(callbacks=[...])`` it
    comes after them and only ``log_history`` gets the numbers (it warns).

    Only the main process measures. η* is that of the Trainer's optimizer (AdamW by default:
    Adam with its second-moment preconditioner frozen at each round's start, so the first
    round before any optimizer step is skipped; see :class:`edgewise.Monitor`).

    Args:
        loss_fn: ``loss_fn(logits, labels)``; default :func:`logits_cross_entropy`.
        probe: a dict batch (tensors with a leading sample dimension, ``labels`` included);
            default: ``probe_size`` training samples collated by the train dataloader.
        probe_size: probe samples drawn from the training set when ``probe`` is None.
        every_n_steps: round cadence in optimizer steps; None: at each epoch's end.
        stability_lr: True or ``StabilityLR`` options to cap the optimizer's lr.
        prefix: metric name prefix.
        seed: seed of the probe draw.
        **monitor_options: passed on to :class:`edgewise.Monitor`.
    """

    def __init__(
        self,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = logits_cross_entropy,
        *,
        probe: dict[str, torch.Tensor] | None = None,
        probe_size: int = 64,
        every_n_steps: int | None = None,
        stability_lr: bool | dict[str, Any] = False,
        prefix: str = "edgewise/",
        seed: int = 0,
        **monitor_options: Any,
    ) -> None:
        if every_n_steps is not None and every_n_steps <= 0:
            raise ValueError(f"expected a positive every_n_steps, got {every_n_steps}")
        self.loss_fn = loss_fn
        self.probe = probe
        self.probe_size = probe_size
        self.every_n_steps = every_n_steps
        self.stability_lr_options = stability_lr
        self.prefix = prefix
        self.seed = seed
        self.monitor_options = monitor_options
        self.monitor: Monitor | None = None
        self.stability: StabilityLR | None = None
        self._pending: dict[str, float] = {}
        self._attached = False

    def attach(self, trainer: Any) -> "EdgewiseCallback":
        """Puts this callback first in ``trainer``'s callbacks, before the reporters."""
        callbacks = trainer.callback_handler.callbacks
        if self in callbacks:
            callbacks.remove(self)
        callbacks.insert(0, self)
        self._attached = True
        return self

    # ----------------------------------------------------------------- Trainer events

    def on_train_begin(self, args: Any, state: Any, control: Any, model=None, optimizer=None,
                       train_dataloader=None, **kwargs: Any) -> None:
        if not state.is_world_process_zero or self.monitor is not None:
            return
        if not self._attached and args.report_to and args.report_to != ["none"]:
            warnings.warn("edgewise: passed in Trainer(callbacks=...), the callback runs after the reporters "
                          f"{args.report_to}; use EdgewiseCallback(...).attach(trainer) so they receive its numbers",
                          EdgewiseWarning, stacklevel=2)
        batch = self.probe if self.probe is not None else self._draw_probe(train_dataloader)
        x, y = _split_labels(batch)
        dataset = getattr(train_dataloader, "dataset", None)
        n_train = len(dataset) if dataset is not None else len(y)
        batch_size = args.train_batch_size * args.gradient_accumulation_steps * max(1, args.world_size)
        options = {"console": True} | self.monitor_options
        options.setdefault("forward", logits_forward)
        self.monitor = Monitor(model, self.loss_fn, (x, y), n_train=n_train,
                               batch_size=min(batch_size, n_train), optimizer=optimizer, **options)
        if self.stability_lr_options and optimizer is not None:
            opts = self.stability_lr_options if isinstance(self.stability_lr_options, dict) else {}
            self.stability = StabilityLR(optimizer, self.monitor, **opts)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.every_n_steps is not None and state.global_step % self.every_n_steps == 0:
            self._round(state, control)

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.every_n_steps is None:
            self._round(state, control)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
        if not self._pending or logs is None:
            return
        logs.update(self._pending)
        if state.log_history and state.log_history[-1].get("step") == state.global_step:
            state.log_history[-1].update(self._pending)  # Trainer copied `logs` there before us
        self._pending = {}

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._pending:  # the last round after the last log: keep it in the history
            state.log_history.append({**self._pending, "step": state.global_step})
            self._pending = {}
        if self.monitor is not None:
            self.monitor.close()

    # ----------------------------------------------------------------- internals

    def _draw_probe(self, loader: Any) -> dict[str, torch.Tensor]:
        dataset = getattr(loader, "dataset", None)
        collate = getattr(loader, "collate_fn", None)
        if dataset is None or collate is None:
            raise ValueError("expected a train dataloader with a dataset and collate_fn to draw the probe; pass probe=")
        pick = _indices(len(dataset), self.probe_size, self.seed)
        batch = collate([dataset[int(i)] for i in pick])
        return {k: v for k, v in batch.items() if torch.is_tensor(v)}

    def _round(self, state: Any, control: Any) -> None:
        if self.monitor is None:
            return
        epoch = None if state.epoch is None else int(math.ceil(state.epoch)) - 1
        report = self.monitor.round(step=state.global_step, epoch=epoch)
        metrics = report_metrics(report, self.prefix)
        if metrics:
            self._pending.update(metrics)
            control.should_log = True

