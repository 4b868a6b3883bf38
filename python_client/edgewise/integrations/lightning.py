"""Edgewise in a Lightning ``Trainer``: a callback that runs rounds and logs through ``pl_module.log``.

Example::

    from edgewise.integrations.lightning import EdgewiseCallback

    trainer = lightning.Trainer(max_epochs=10, callbacks=[EdgewiseCallback(F.cross_entropy)])
    trainer.fit(module, train_loader)   # edgewise/lambda_gen, edgewise/eta_star, ... in every logger
"""

from __future__ import annotations

from typing import Any, Callable

import torch

try:
    import lightning.pytorch as pl
except ImportError:  # the older package name
    import pytorch_lightning as pl  # type: ignore[no-redef]

from ..monitor import Monitor
from ..report import StabilityReport
from ..stability_lr import StabilityLR
from ._metrics import report_metrics

__all__ = ["EdgewiseCallback"]


class EdgewiseCallback(pl.Callback):
    """Runs an Edgewise round at each training epoch's end (or every ``every_n_batches``
    batches) and logs the report's numbers with ``pl_module.log``, so every Lightning logger
    (CSV, TensorBoard, W&B, ...) receives ``edgewise/lambda_gen``, ``edgewise/eta_star``,
    ``edgewise/margin``, ... (epoch rounds at Lightning's epoch-end step; batch rounds at the
    global step, written to ``trainer.loggers`` at once, whatever ``log_every_n_steps`` is).
    The margin also shows in the progress bar.

    Only global rank zero measures (one sidecar per job); the other ranks go on training and
    wait for it at their next collective. Monitoring never stops training: a skipped round
    logs nothing and warns (see :class:`edgewise.Monitor`).

    Learning-rate control: a :class:`edgewise.StabilityLR` returned by ``configure_optimizers``
    is attached to this callback's monitor; or ``stability_lr=True`` (or a dict of its
    options) makes one on the first optimizer here.

    Args:
        loss_fn: mean-reduced ``loss_fn(output, target)`` of ``model(x)``.
        model: the module the probe goes through: the LightningModule itself (default), or a
            function ``pl_module -> nn.Module`` (e.g. ``lambda m: m.net``).
        probe: ``(x, y)`` probe tensors; by default ``probe_size`` samples are drawn from
            ``train_data``, else from the train dataloader's dataset.
        every_n_batches: round cadence in training batches; None: once per epoch.
        stability_lr: True or ``StabilityLR`` options to make one on the first optimizer.
        prefix: metric name prefix.
        **monitor_options: passed on to :class:`edgewise.Monitor` (``curvature``,
            ``endpoint``, ``log_dir``, ``bootstrap``, ...).
    """

    def __init__(
        self,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        *,
        model: Callable[[Any], torch.nn.Module] | None = None,
        probe: tuple[torch.Tensor, torch.Tensor] | None = None,
        train_data: Any = None,
        probe_size: int = 256,
        every_n_batches: int | None = None,
        stability_lr: bool | dict[str, Any] = False,
        prefix: str = "edgewise/",
        **monitor_options: Any,
    ) -> None:
        if every_n_batches is not None and every_n_batches <= 0:
            raise ValueError(f"expected a positive every_n_batches, got {every_n_batches}")
        self.loss_fn = loss_fn
        self.model_of = model
        self.probe = probe
        self.train_data = train_data
        self.probe_size = probe_size
        self.every_n_batches = every_n_batches
        self.stability_lr_options = stability_lr
        self.prefix = prefix
        self.monitor_options = monitor_options
        self.monitor: Monitor | None = None
        self.stability: StabilityLR | None = None
        self.batches = 0
        self.rounds = 0

    # ----------------------------------------------------------------- Lightning hooks

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        if not trainer.is_global_zero or self.monitor is not None:
            return
        loader = trainer.train_dataloader
        data = self.train_data if self.train_data is not None else getattr(loader, "dataset", None)
        optimizer = trainer.optimizers[0] if trainer.optimizers else None
        options = dict(self.monitor_options)
        if "batch_size" not in options and getattr(loader, "batch_size", None):
            # one SGD step averages over every device's batch and every accumulated one
            options["batch_size"] = loader.batch_size * trainer.world_size * trainer.accumulate_grad_batches
        if "n_train" not in options and data is not None and hasattr(data, "__len__"):
            options["n_train"] = len(data[0]) if isinstance(data, (tuple, list)) else len(data)
        self.monitor = Monitor(
            self.model_of(pl_module) if self.model_of is not None else pl_module,
            self.loss_fn,
            self.probe,
            train_data=data,
            probe_size=self.probe_size,
            optimizer=optimizer,
            **options,
        )
        self._attach_stability(trainer, optimizer)

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        self.batches += 1
        if self.every_n_batches is not None and self.batches % self.every_n_batches == 0:
            self._round(trainer, pl_module, on_step=True)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if self.every_n_batches is None:
            self._round(trainer, pl_module, on_step=False)

    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if self.monitor is not None:
            self.monitor.close()  # the sidecar stops; history stays (a later fit reconnects)

    def state_dict(self) -> dict[str, Any]:
        return {"batches": self.batches, "rounds": self.rounds}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.batches = int(state_dict.get("batches", 0))
        self.rounds = int(state_dict.get("rounds", 0))

    # ----------------------------------------------------------------- internals

    def _attach_stability(self, trainer: Any, optimizer: Any) -> None:
        assert self.monitor is not None
        for config in getattr(trainer, "lr_scheduler_configs", []):
            if isinstance(config.scheduler, StabilityLR):
                config.scheduler.attach(self.monitor)
                self.stability = config.scheduler
                return
        if self.stability_lr_options and optimizer is not None:
            options = self.stability_lr_options if isinstance(self.stability_lr_options, dict) else {}
            self.stability = StabilityLR(optimizer, self.monitor, **options)

    def _round(self, trainer: Any, pl_module: Any, *, on_step: bool) -> StabilityReport | None:
        if self.monitor is None:  # not rank zero, or not fitting
            return None
        report = self.monitor.round(step=trainer.global_step, epoch=trainer.current_epoch)
        self.rounds += 1
        metrics = report_metrics(report, self.prefix)
        for name, value in metrics.items():
            pl_module.log(name, value, on_step=on_step, on_epoch=not on_step, rank_zero_only=True,
                          prog_bar=name == f"{self.prefix}margin", logger=not on_step)
        if on_step and metrics:
            # Lightning writes step metrics only every `log_every_n_steps`; a round is rare and
            # costly, so it goes to every logger at once, at the current global step.
            for logger in trainer.loggers:
                logger.log_metrics(metrics, step=trainer.global_step)
        return report
