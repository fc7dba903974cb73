"""The one training loop: pretraining, fine-tuning and distillation all run through `Trainer.train`.

What it trains is any module whose forward returns named losses (see `protocol.py`); everything else is
here: optimizer and schedule, accumulation, clipping, bf16 autocast, evaluation and model selection,
checkpoints that survive kills, exact resume, signals, non-finite steps, DDP/FSDP, and what users see.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn
from tqdm.auto import tqdm

from ..errors import BertologyError, CheckpointError
from ..utils.io import atomic_write, check_writable
from .callbacks import Callback
from .checkpoints import Checkpoint, CheckpointStore
from .config import TrainConfig
from .data import Prefetcher, ResumableLoader
from .distributed import World, device_for, init_world, wrap
from .metrics_log import MetricsLog, plot_curves
from .optim import build_optimizer, build_scheduler
from .peak import encoder_training_flops, matmul_peak_flops, raise_peak, training_flops
from .protocol import StepOutput, as_step_output
from .seeding import seed_everything

logger = logging.getLogger("bertology")


class TrainingDiverged(BertologyError):
    """Too many consecutive steps with a non-finite loss or gradient."""


@dataclass
class TrainResult:
    step: int
    #: finished, interrupted (signal), early_stopping
    stopped: str
    run_dir: Path
    last_checkpoint: Path | None
    best_step: int | None = None
    best_value: float | None = None
    skipped_steps: int = 0
    #: the signal that interrupted the run (SIGINT, SIGTERM), or None
    stop_signal: str | None = None


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch


def _count(batch: Any) -> tuple[int, int | torch.Tensor]:
    """(examples, tokens) in a batch: tokens are real (unpadded) ones where a mask says so, counted on the
    batch's device and read only at log time (a per-step read would stall a GPU)."""
    if isinstance(batch, dict):
        if "attention_mask" in batch:
            mask = batch["attention_mask"]
            return int(mask.shape[0]), mask.sum()
        if "input_ids" in batch:
            ids = batch["input_ids"]
            return int(ids.shape[0]), int(ids.numel())
        first = next((v for v in batch.values() if isinstance(v, torch.Tensor)), None)
        n = int(first.shape[0]) if first is not None and first.dim() else 1
        return n, n
    if isinstance(batch, (list, tuple)) and batch and isinstance(batch[0], torch.Tensor):
        return int(batch[0].shape[0]), int(batch[0].shape[0])
    return 1, 1


def _scalars(out: StepOutput, total: torch.Tensor) -> dict[str, torch.Tensor | float]:
    """The numbers to log for one forward: the weighted total, each named loss, each metric. Tensors stay
    where they are (on the GPU: no synchronisation); `_Window` sums them and reads them at log time."""
    values: dict[str, torch.Tensor | float] = {"loss": total.detach()}
    if len(out.losses) > 1 or "loss" not in out.losses:
        values.update({f"loss/{k}": v.detach().float() for k, v in out.losses.items()})
    values.update({k: v.detach().float() if isinstance(v, torch.Tensor) else float(v) for k, v in out.metrics.items()})
    return values


class Trainer:
    def __init__(
        self,
        module: nn.Module,
        train_data: Sequence[Any],
        config: TrainConfig,
        run_dir: str | os.PathLike,
        collate: Callable | None = None,
        eval_data: Sequence[Any] | None = None,
        eval_collate: Callable | None = None,
        run_config: dict[str, Any] | None = None,
        callbacks: Sequence[Callback] = (),
        param_groups: list[dict] | None = None,
        evaluator: Callable[[nn.Module], dict[str, float]] | None = None,
    ) -> None:
        """`param_groups` replaces the default AdamW groups (e.g. layer-wise learning rates; a group's "lr"
        is its peak rate); `evaluator(model)` adds metrics that are not means over batches (F1, correlations)
        to every evaluation, under "eval/<name>"."""
        self.config = config
        self.callbacks = list(callbacks)
        self.evaluator = evaluator
        self.run_dir = Path(run_dir)
        self.world: World = init_world()
        self.device = device_for(self.world, config.device)
        self.raw = module.to(self.device)
        self.module = wrap(self.raw, self.world, config.distributed)
        if config.compile:  # checkpoints and the export keep using `raw`, whose parameter names are plain
            self.module = torch.compile(self.module)
        self.prefetch = config.prefetch if config.prefetch is not None else (2 if self.device.type == "cuda" else 0)
        self.fsdp = self.world.distributed and config.distributed == "fsdp"
        self.loader = ResumableLoader(train_data, config.batch_size, config.seed, collate, config.shuffle,
                                      config.drop_last, config.num_workers, self.world.rank, self.world.size,
                                      pin_memory=self.device.type == "cuda")
        self.eval_loader = None
        if eval_data is not None:
            self.eval_loader = ResumableLoader(eval_data, config.batch_size, config.seed, eval_collate or collate,
                                               shuffle=False, drop_last=False, rank=self.world.rank,
                                               world_size=self.world.size, pin_memory=self.device.type == "cuda")
        self.run_config = {"train": config.to_dict(), **(run_config or {})}
        self.optimizer = build_optimizer(self.raw, config, param_groups)
        per_epoch = max(1, len(self.loader) // config.gradient_accumulation)
        self.total_steps = config.max_steps or config.epochs * per_epoch
        self.scheduler = build_scheduler(self.optimizer, config, self.total_steps)
        self.checkpoints = CheckpointStore(self.run_dir / "checkpoints", config.keep_last)
        # progress, restored on resume
        self.step = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        self.tokens_seen = 0
        self.skipped_steps = 0
        self.consecutive_bad = 0
        self.best_value: float | None = None
        self.best_step: int | None = None
        self.evals_without_improvement = 0
        self.last_saved_step = -1
        self._stop_signal: str | None = None
        self._flops_sizes = _encoder_sizes(self.raw)
        self._trainable = _trainable_share(self._flops_sizes)

    # ------------------------------------------------------------------------------------- the loop
    def train(self, resume: bool = False) -> TrainResult:
        cfg, world = self.config, self.world
        seed_everything(cfg.seed)
        if world.is_main:
            check_writable(self.run_dir, "the run folder")  # a clear error now, not after the first steps
            self.checkpoints.clean_partial()
            with atomic_write(self.run_dir / "config.yaml") as handle:
                yaml.safe_dump(self.run_config, handle, sort_keys=False, allow_unicode=True)
        world.barrier()
        log = MetricsLog(self.run_dir, cfg.tensorboard) if world.is_main else None
        if resume:
            checkpoint = self.checkpoints.latest_valid(set_aside=world.is_main)
            if checkpoint is None:
                logger.warning("--resume: no complete checkpoint in %s; starting from scratch", self.checkpoints.folder)
                if log is not None:
                    log.rewind(0)  # the restarted run logs every step again
            else:
                self._load(checkpoint)
                if log is not None:
                    log.rewind(self.step)
                logger.info("resumed from %s (step %d, epoch %d, batch %d)", checkpoint.path, self.step,
                            self.epoch, self.batch_in_epoch)
        self._dtype = torch.bfloat16 if cfg.bf16 else torch.float32
        peak = self._peak = matmul_peak_flops(self._dtype, self.device.type)
        restore = self._install_signal_handlers()
        bar = tqdm(total=self.total_steps, initial=self.step, disable=not (cfg.progress and world.is_main),
                   unit="step", desc="training", dynamic_ncols=True)
        stopped = "finished"
        window = _Window()
        try:
            for callback in self.callbacks:  # inside the try: a failing callback still gets on_train_end
                callback.on_train_start(self)
            stopped = self._loop(log, bar, window, peak)
        finally:
            bar.close()
            self._restore_signal_handlers(restore)
            for callback in self.callbacks:
                callback.on_train_end(self)
        if self.step != self.last_saved_step:
            self._save()
        result = TrainResult(self.step, stopped, self.run_dir, self._last_path(), self.best_step, self.best_value,
                             self.skipped_steps, self._stop_signal if stopped == "interrupted" else None)
        if world.is_main:
            self._finish(log, result)
        world.barrier()
        return result

    def _loop(self, log: MetricsLog | None, bar: tqdm, window: _Window, peak: float) -> str:
        self._micro = 0  # micro-batches of the current optimizer step (an epoch's end may cut through one)
        self.module.train()
        while self.step < self.total_steps:
            with self._epoch_batches() as batches:
                stop = self._epoch(batches, log, bar, window, peak)
            if stop:
                return stop
            if self.step >= self.total_steps:
                break
            self.epoch += 1
            self.batch_in_epoch = 0
        return "finished"

    def _epoch_batches(self):
        """The rest of this epoch's micro-batches, collated ahead in a thread when `prefetch` says so."""
        batches = self.loader.epoch(self.epoch, self.batch_in_epoch)
        return Prefetcher(batches, self.prefetch) if self.prefetch else contextlib.nullcontext(batches)

    def _epoch(self, batches, log: MetricsLog | None, bar: tqdm, window: _Window, peak: float) -> str | None:
        """Train on the rest of one epoch; returns why training stops, or None to go on."""
        cfg, world = self.config, self.world
        accum = cfg.gradient_accumulation
        for batch in batches:
            self.batch_in_epoch += 1
            batch = _to_device(batch, self.device)
            examples, tokens = _count(batch)
            if self._micro == 0:
                for callback in self.callbacks:
                    callback.on_step_start(self)
                self._trainable = _trainable_share(self._flops_sizes)  # callbacks may (un)freeze layers
            sync = self._micro == accum - 1
            no_sync = (self.module.no_sync() if world.distributed and not sync and not self.fsdp
                       and hasattr(self.module, "no_sync") else contextlib.nullcontext())
            with no_sync:
                out = self.forward(batch, extra=True)
                total = self.total_loss(out)
                self.backward(total)
                for callback in self.callbacks:
                    callback.after_backward(self, batch, out)
            window.add_micro(out, total, tokens, self._flops(batch, tokens))
            self._micro += 1
            if self._micro < accum:
                continue
            self._micro = 0
            norm = torch.nn.utils.clip_grad_norm_(self.raw.parameters(), cfg.max_grad_norm or float("inf"))
            if hasattr(norm, "full_tensor"):  # FSDP: a sharded (DTensor) total
                norm = norm.full_tensor()
            # The one host read of the step: were its losses and its gradient finite? (A non-finite loss
            # gives non-finite gradients too; it is named first.)
            loss_bad, grad_bad = (bool(v) for v in torch.stack(
                [~torch.isfinite(window.step_total), ~torch.isfinite(norm)]).tolist())
            bad = world.any(loss_bad or grad_bad)
            if bad:
                window.discard_step()
                self._bad_step("loss" if loss_bad or not grad_bad else "gradient")
                continue
            for callback in self.callbacks:
                callback.before_optimizer_step(self)
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.step += 1
            self.consecutive_bad = 0
            for callback in self.callbacks:
                callback.on_step_end(self)
            self.tokens_seen = self.tokens_seen + window.step_tokens
            window.end_step(norm.detach())
            bar.update(1)
            if cfg.log_every and self.step % cfg.log_every == 0:
                self._log(log, bar, window, self._peak)
            stop = self._after_step(log)
            if stop:
                return stop
            if self.step >= self.total_steps:
                return None
        return None

    def forward(self, batch: Any, extra: bool = False) -> StepOutput:
        """One forward pass under the run's precision; `extra` adds the callbacks' loss terms."""
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.config.bf16):
            out = as_step_output(self.module(**batch) if isinstance(batch, dict) else self.module(batch))
            if extra:
                for callback in self.callbacks:
                    out.losses.update(callback.extra_losses(self, batch, out))
        return out

    def backward(self, loss: torch.Tensor) -> None:
        """Backward of one micro-batch's loss, scaled for gradient accumulation."""
        (loss / self.config.gradient_accumulation).backward()

    def total_loss(self, out: StepOutput) -> torch.Tensor:
        """The weighted sum of the named losses, in fp32."""
        weights = self.config.loss_weights
        terms = [weights.get(name, 1.0) * loss.float() for name, loss in out.losses.items()]
        if not terms:
            raise ValueError("the module returned no losses")
        return torch.stack(terms).sum()

    def _bad_step(self, what: str) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self.skipped_steps += 1
        self.consecutive_bad += 1
        logger.warning("non-finite %s at step %d (epoch %d, batch %d): step skipped (%d skipped so far)",
                       what, self.step + 1, self.epoch, self.batch_in_epoch - 1, self.skipped_steps)
        if self.consecutive_bad >= self.config.max_bad_steps:
            self._save()  # parameters are untouched by skipped steps: this is the last good state
            raise TrainingDiverged(
                f"{self.consecutive_bad} consecutive steps had a non-finite {what}; stopped at step {self.step}. "
                f"The last good state is saved in {self._last_path()}. Try a lower learning_rate, "
                "max_grad_norm, or look for bad examples near this data position."
            )

    def _after_step(self, log: MetricsLog | None) -> str | None:
        cfg = self.config
        stop = None
        if self.eval_loader is not None and cfg.eval_every and self.step % cfg.eval_every == 0:
            stop = self._evaluate_and_select(log)
        if cfg.save_every and self.step % cfg.save_every == 0 and self.step != self.last_saved_step:
            self._save()
        if self.world.any(self._stop_signal is not None):
            if self.step != self.last_saved_step:
                self._save()
            logger.warning("stopped by %s at step %d; resume with --resume", self._stop_signal or "a peer", self.step)
            return "interrupted"
        return stop

    # ----------------------------------------------------------------------------------- evaluation
    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Example-weighted means of every loss and metric over the evaluation data."""
        if self.eval_loader is None:
            raise ValueError("no eval_data was given to the Trainer")
        was_training = self.module.training
        self.module.eval()
        sums: dict[str, float] = {}
        count = 0.0
        for batch in self.eval_loader.epoch(0):
            batch = _to_device(batch, self.device)
            examples, _ = _count(batch)
            out = self.forward(batch)
            for key, value in _scalars(out, self.total_loss(out)).items():
                sums[key] = sums.get(key, 0.0) + float(value) * examples
            count += examples
        keys = sorted(sums)
        reduced = self.world.all_reduce_sum([sums[k] for k in keys] + [count])
        results = {f"eval/{k}": v / max(reduced[-1], 1.0) for k, v in zip(keys, reduced[:-1], strict=True)}
        if self.evaluator is not None:
            results.update({f"eval/{k}": float(v) for k, v in self.evaluator(self.raw).items()})
        self.module.train(was_training)
        return results

    def _evaluate_and_select(self, log: MetricsLog | None) -> str | None:
        cfg = self.config
        results = self.evaluate()
        if log is not None:
            log.write({"step": self.step, "split": "eval", "loss": results["eval/loss"], **results})
        if cfg.best_metric is None:
            return None
        if cfg.best_metric not in results:
            raise ValueError(f"best_metric {cfg.best_metric!r} is not among the evaluation results {sorted(results)}")
        value = results[cfg.best_metric]
        better = self.best_value is None or (value < self.best_value if cfg.best_mode == "min" else value > self.best_value)
        if better:
            if self.best_step is not None:
                self.checkpoints.protected.discard(self.best_step)
            self.best_value, self.best_step = value, self.step
            self.evals_without_improvement = 0
            self.checkpoints.protected.add(self.step)
            self._save()
        else:
            self.evals_without_improvement += 1
            if cfg.early_stopping_patience and self.evals_without_improvement >= cfg.early_stopping_patience:
                logger.warning("early stopping at step %d: %s has not improved for %d evaluations (best %.6g at "
                               "step %d)", self.step, cfg.best_metric, self.evals_without_improvement,
                               self.best_value, self.best_step)
                return "early_stopping"
        return None

    # -------------------------------------------------------------------------------------- logging
    def _log(self, log: MetricsLog | None, bar: tqdm, window: _Window, peak: float) -> None:
        values = window.flush()
        elapsed = max(values.pop("_seconds"), 1e-9)
        # Every process logged its own shard of the batch: average the values, add up the tokens.
        keys = sorted(values)
        reduced = self.world.all_reduce_sum([values[k] for k in keys])
        values = {k: v / self.world.size for k, v in zip(keys, reduced, strict=True)}
        tokens = values.pop("_tokens") * self.world.size
        flops = values.pop("_flops") * self.world.size / elapsed
        if flops / self.world.size > peak:  # the cached peak was measured under load: it heals here
            peak = self._peak = raise_peak(self._dtype, self.device.type, flops / self.world.size)
        record = {"step": self.step, "split": "train", **values}
        record.update({
            "epoch": self.epoch,
            "lr": self.scheduler.get_last_lr()[0],
            "tokens_per_s": tokens / elapsed,
            "mfu": flops / (peak * self.world.size),
            "skipped_steps": self.skipped_steps,
        })
        if log is not None:
            log.write(record)
            bar.set_postfix(loss=f"{record['loss']:.4f}", lr=f"{record['lr']:.2e}",
                            tok_s=f"{record['tokens_per_s']:.0f}", mfu=f"{100 * record['mfu']:.1f}%")

    def _flops(self, batch: Any, tokens: int) -> float:
        """Training FLOPs of one micro-batch (see peak.py): counted from the encoder's sizes when the module
        holds a BERT-family encoder, else the 6 x parameters x tokens estimate."""
        sizes = self._flops_sizes
        ids = batch.get("input_ids") if isinstance(batch, dict) else None
        if sizes is None or not isinstance(ids, torch.Tensor) or ids.dim() != 2:
            return training_flops(self.raw, tokens)
        hidden, intermediate, layers, vocab, mlm, _ = sizes
        labels = batch.get("labels")
        predicted: int | torch.Tensor = 0
        if mlm and isinstance(labels, torch.Tensor) and labels.shape == ids.shape:
            predicted = (labels != -100).sum()  # read at log time with the rest
        # tokens: the real (unmasked) ones; attention runs over the batch's padded length
        return encoder_training_flops(hidden, intermediate, layers, vocab, tokens, ids.shape[1], predicted,
                                      self._trainable)

    def _finish(self, log: MetricsLog | None, result: TrainResult) -> None:
        if log is not None:
            log.close()
            if self.config.plot:
                plot_curves(log.read(), self.run_dir / "curves.png")
        with atomic_write(self.run_dir / "result.json") as handle:
            json.dump({"step": result.step, "stopped": result.stopped, "best_step": result.best_step,
                       "best_value": result.best_value, "skipped_steps": result.skipped_steps,
                       "last_checkpoint": str(result.last_checkpoint) if result.last_checkpoint else None},
                      handle, indent=2)
        # an interrupted run is not finished: its model is not exported as if it were (resume it instead)
        if result.stopped != "interrupted" and hasattr(self.raw, "save_pretrained") and not self.fsdp:
            self.raw.save_pretrained(self.model_dir)

    @property
    def model_dir(self) -> Path:
        """Where the trained model is exported at the end (nothing under FSDP: no process holds it whole)."""
        return self.run_dir / "model"

    # ---------------------------------------------------------------------------------- checkpoints
    # What a checkpoint holds is decided here; which file each part goes to, in checkpoints.CheckpointStore.
    def _last_path(self) -> Path | None:
        return self.checkpoints.last_path()

    def _model_state(self) -> dict[str, torch.Tensor] | None:
        if self.fsdp:
            from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

            return get_model_state_dict(self.module, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        return None

    def _trainer_state(self) -> dict[str, Any]:
        """Progress and model selection: what, with the weights, optimizer and RNG, makes a resume exact."""
        return {
            "step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
            "tokens_seen": int(self.tokens_seen), "skipped_steps": self.skipped_steps,
            "best_value": self.best_value, "best_step": self.best_step,
            "evals_without_improvement": self.evals_without_improvement,
            "world_size": self.world.size, "scheduler": self.scheduler.state_dict(),
        }

    def _save(self) -> Checkpoint | None:
        world, store = self.world, self.checkpoints
        tmp = store.begin(self.step) if world.is_main else store.temp_path(self.step)
        world.barrier()
        full_state = self._model_state()  # every rank takes part in gathering FSDP shards
        try:
            store.write_process_files(tmp, world.rank, self.optimizer.state_dict() if self.fsdp else None)
            if world.is_main:
                store.write_main_files(
                    tmp,
                    model=full_state if full_state is not None else self.raw,
                    optimizer_state=None if self.fsdp else self.optimizer.state_dict(),
                    callback_states=[c.state_dict() for c in self.callbacks],
                    trainer_state=self._trainer_state(),
                    run_config=self.run_config,
                )
            world.barrier()
            checkpoint = store.commit(tmp, self.step) if world.is_main else None
        except BaseException:
            if world.is_main:
                store.abort(tmp)  # no partial checkpoint left; the earlier ones are untouched
            raise
        world.barrier()
        self.last_saved_step = self.step
        return checkpoint

    def _load(self, checkpoint: Checkpoint) -> None:
        store = self.checkpoints
        state = store.read_trainer_state(checkpoint)
        if state["world_size"] != self.world.size:
            raise CheckpointError(
                f"{checkpoint.path}: written by {state['world_size']} processes, resumed with {self.world.size}; "
                "the data position counts global batches, so resume with the same number of processes"
            )
        if self.fsdp:
            from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

            set_model_state_dict(self.module, store.read_model_state(checkpoint),
                                 options=StateDictOptions(full_state_dict=True))
        else:
            store.load_model(checkpoint, self.raw)
        self.optimizer.load_state_dict(
            store.read_optimizer_state(checkpoint, self.device, self.world.rank if self.fsdp else None))
        self.scheduler.load_state_dict(state["scheduler"])
        saved = store.read_callback_states(checkpoint, len(self.callbacks))
        if saved is not None:
            for callback, callback_state in zip(self.callbacks, saved, strict=True):
                callback.load_state_dict(callback_state)
        store.restore_rng_state(checkpoint, self.world.rank)
        self.step, self.epoch, self.batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
        self.tokens_seen, self.skipped_steps = state["tokens_seen"], state["skipped_steps"]
        self.best_value, self.best_step = state["best_value"], state["best_step"]
        self.evals_without_improvement = state["evals_without_improvement"]
        if self.best_step is not None:
            self.checkpoints.protected.add(self.best_step)
        self.last_saved_step = self.step

    # -------------------------------------------------------------------------------------- signals
    def _install_signal_handlers(self) -> dict:
        if threading.current_thread() is not threading.main_thread():
            return {}

        def handler(signum, frame):
            if self._stop_signal is not None:  # a second signal: stop at once
                raise KeyboardInterrupt
            self._stop_signal = signal.Signals(signum).name
            logger.warning("%s received: saving a checkpoint after this step", self._stop_signal)

        return {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}

    @staticmethod
    def _restore_signal_handlers(previous: dict) -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _encoder_sizes(module: nn.Module) -> tuple[int, int, int, int, bool, list[nn.Parameter]] | None:
    """(hidden, intermediate, layers, vocab, has an MLM head, non-embedding weights) of the BERT-family encoder
    inside `module`, or None when it holds none. Walked once per run; what changes during training (which
    weights are frozen) is read from the weights list by `_trainable_share`."""
    from ..models.heads import MaskedLMHead

    config = next((getattr(m, "config", None) for m in module.modules()
                   if all(hasattr(getattr(m, "config", None), k) for k in
                          ("hidden_size", "intermediate_size", "num_hidden_layers", "vocab_size"))), None)
    if config is None:
        return None
    weights = [p for name, p in module.named_parameters() if "embed" not in name or "norm" in name]
    mlm = any(isinstance(m, MaskedLMHead) for m in module.modules())
    return (int(config.hidden_size), int(config.intermediate_size), int(config.num_hidden_layers),
            int(config.vocab_size), mlm, weights)


def _trainable_share(sizes: tuple | None) -> float:
    """The trainable share of the non-embedding weights (LoRA, adapters and frozen layers make it small)."""
    if sizes is None:
        return 1.0
    weights = sizes[-1]
    total = sum(p.numel() for p in weights)
    return sum(p.numel() for p in weights if p.requires_grad) / max(total, 1)

class _Window:
    """Sums since the last log line (losses and metrics averaged per optimizer step).

    Everything is summed where it was computed (device tensors) and read back once, in `flush`.
    """

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.sums: dict[str, Any] = {}
        self.micro_sums: dict[str, Any] = {}
        self.micro_count = 0
        self.steps = 0
        self.tokens: Any = 0
        self.step_tokens: Any = 0
        self.flops: Any = 0.0
        self.step_flops: Any = 0.0
        self.norm: Any = 0.0

    @property
    def step_total(self) -> torch.Tensor:
        """The sum of this step's micro-batch losses so far (non-finite when any was)."""
        total = self.micro_sums.get("loss", 0.0)
        return total if isinstance(total, torch.Tensor) else torch.tensor(float(total))

    def add_micro(self, out: StepOutput, total: torch.Tensor, tokens: Any, flops: Any = 0.0) -> None:
        for key, value in _scalars(out, total).items():
            self.micro_sums[key] = self.micro_sums.get(key, 0.0) + value
        self.micro_count += 1
        self.step_tokens = self.step_tokens + tokens
        self.step_flops = self.step_flops + flops

    def discard_step(self) -> None:
        self.micro_sums, self.micro_count, self.step_tokens, self.step_flops = {}, 0, 0, 0.0

    def end_step(self, grad_norm: Any) -> None:
        for key, value in self.micro_sums.items():
            self.sums[key] = self.sums.get(key, 0.0) + value / self.micro_count
        self.micro_sums, self.micro_count = {}, 0
        self.tokens = self.tokens + self.step_tokens
        self.flops = self.flops + self.step_flops
        self.step_tokens, self.step_flops = 0, 0.0
        self.steps += 1
        self.norm = self.norm + grad_norm

    def flush(self) -> dict[str, float]:
        keys = [*self.sums, "grad_norm", "_tokens", "_flops"]
        values = [*self.sums.values(), self.norm, self.tokens, self.flops]
        read = _read_all(values)  # the window's one host read
        now = time.perf_counter()
        steps = max(self.steps, 1)
        record = {k: v / steps for k, v in zip(keys[:-3], read[:-3], strict=True)}
        record.update({"grad_norm": read[-3] / steps, "_tokens": read[-2], "_flops": read[-1],
                       "_seconds": now - self.start})
        self.__init__()
        return record


def _read_all(values: list[Any]) -> list[float]:
    """Floats of a mix of numbers and (device) tensors, with one transfer for all the tensors."""
    tensors = [v for v in values if isinstance(v, torch.Tensor)]
    if not tensors:
        return [float(v) for v in values]
    host = iter(torch.stack([t.detach().double().reshape(()) for t in tensors]).cpu().tolist())
    return [next(host) if isinstance(v, torch.Tensor) else float(v) for v in values]
