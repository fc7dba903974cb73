"""`TrainConfig`: every knob of the training loop, typed, with checks that name the field."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..device import check_device_name
from ..errors import ConfigError
from ..utils.typed import check_fields, from_mapping


@dataclass
class TrainConfig:
    # optimisation
    learning_rate: float = 1e-4
    weight_decay: float = 0.01
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    max_grad_norm: float | None = 1.0
    #: "linear" or "cosine" decay after warm-up, or "constant"
    schedule: str = "linear"
    warmup_steps: int = 0
    #: fraction of max_steps used for warm-up when warmup_steps is 0
    warmup_ratio: float = 0.0
    # length: optimizer steps; epochs bound it when max_steps is 0
    max_steps: int = 0
    epochs: int = 1
    #: examples per micro-batch on each process
    batch_size: int = 32
    gradient_accumulation: int = 1
    #: weight of each named loss in the total (missing names weigh 1.0)
    loss_weights: dict = field(default_factory=dict)
    # precision and reproducibility
    bf16: bool = False
    seed: int = 42
    # data loading
    num_workers: int = 0
    #: batches collated ahead in a background thread while the model trains on the current one
    #: (null: 2 on CUDA, where the host is otherwise idle during a step; 0 on the CPU, whose cores the step
    #: itself uses: measured no faster there)
    prefetch: int | None = None
    #: compile the model with torch.compile (its first steps are slow while it compiles; measured in
    #: benchmarks/pretraining_throughput.py)
    compile: bool = False
    drop_last: bool = True
    shuffle: bool = True
    # evaluation and model selection
    eval_every: int = 0
    best_metric: str | None = None
    #: "min" or "max"
    best_mode: str = "min"
    #: stop after this many evaluations without improvement (0: never)
    early_stopping_patience: int = 0
    # checkpoints
    save_every: int = 0
    keep_last: int = 3
    # logging
    log_every: int = 10
    tensorboard: bool = False
    plot: bool = True
    progress: bool = True
    # robustness
    #: consecutive non-finite steps that stop the run
    max_bad_steps: int = 20
    # distributed: "ddp" or "fsdp" when launched by torchrun
    distributed: str = "ddp"
    #: where the run trains: "auto" (CUDA when present, else the CPU), "cpu", "cuda" or "cuda:N"; under
    #: torchrun each process uses its own GPU (cuda:LOCAL_RANK) when CUDA is present
    device: str = "auto"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self, where: str = "") -> None:
        check_fields(self, where)
        checks = [
            ("learning_rate", self.learning_rate > 0, "be positive"),
            ("batch_size", self.batch_size > 0, "be positive"),
            ("gradient_accumulation", self.gradient_accumulation > 0, "be positive"),
            ("schedule", self.schedule in ("linear", "cosine", "constant"), "be linear, cosine or constant"),
            ("best_mode", self.best_mode in ("min", "max"), "be min or max"),
            ("distributed", self.distributed in ("ddp", "fsdp"), "be ddp or fsdp"),
            ("warmup_ratio", 0 <= self.warmup_ratio < 1, "lie in [0, 1)"),
            ("max_steps", self.max_steps >= 0, "be >= 0"),
            ("epochs", self.epochs > 0 or self.max_steps > 0, "be positive when max_steps is 0"),
            ("keep_last", self.keep_last >= 1, "be >= 1"),
            ("max_grad_norm", self.max_grad_norm is None or self.max_grad_norm > 0, "be positive or null"),
            ("warmup_steps", self.warmup_steps >= 0, "be >= 0"),
            ("early_stopping_patience", self.early_stopping_patience >= 0, "be >= 0"),
            ("weight_decay", self.weight_decay >= 0, "be >= 0"),
            ("adam_beta1", 0 <= self.adam_beta1 < 1, "lie in [0, 1)"),
            ("adam_beta2", 0 <= self.adam_beta2 < 1, "lie in [0, 1)"),
            ("adam_epsilon", self.adam_epsilon >= 0, "be >= 0"),
            ("num_workers", self.num_workers >= 0, "be >= 0"),
            ("prefetch", self.prefetch is None or self.prefetch >= 0, "be >= 0 or null"),
            ("eval_every", self.eval_every >= 0, "be >= 0"),
            ("save_every", self.save_every >= 0, "be >= 0"),
            ("log_every", self.log_every >= 0, "be >= 0"),
            ("loss_weights", all(isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool)
                                 for k, v in self.loss_weights.items()), "map loss names to numbers"),
            ("max_bad_steps", self.max_bad_steps >= 1, "be >= 1"),
        ]
        for name, ok, must in checks:
            if not ok:
                raise ConfigError(f"{where}field '{name}' must {must}, got {getattr(self, name)!r}")
        try:
            check_device_name(self.device)
        except ConfigError as exc:
            raise ConfigError(f"{where}field 'device': {exc}") from None

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "") -> TrainConfig:
        config = from_mapping(cls, data, where)
        config.validate(where)
        return config

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
