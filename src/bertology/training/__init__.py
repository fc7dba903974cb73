"""The training engine: one loop (Trainer) for every objective, with checkpoints that never lose work."""

from .callbacks import Callback
from .checkpoints import CheckpointManager, CheckpointStore
from .config import TrainConfig
from .data import ResumableLoader, batch_seed
from .protocol import StepOutput, as_step_output
from .seeding import seed_everything
from .trainer import Trainer, TrainingDiverged, TrainResult

__all__ = [
    "Callback", "CheckpointManager", "CheckpointStore", "ResumableLoader", "StepOutput", "TrainConfig", "TrainResult", "Trainer",
    "TrainingDiverged", "as_step_output", "batch_seed", "seed_everything",
]
