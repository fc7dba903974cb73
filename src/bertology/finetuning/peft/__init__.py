"""Parameter-efficient fine-tuning: bottleneck adapters (Houlsby et al. 2019) and LoRA (Hu et al. 2021).

The encoder stays frozen and each task trains (and saves) only a few small tensors, so one encoder can
carry several named task adapters and switch between them. Nothing here knows a model family: targets are
`nn.Linear` (and `nn.LayerNorm`) modules picked by name pattern and wrapped in place, so BERT, RoBERTa,
ALBERT (a layer shared across depth is wrapped once) and the task-head models all work unchanged.

* LoRA adds ``(alpha / r) * B A x`` to a frozen ``W x`` (A: r x in, random; B: out x r, zeros, so a fresh
  LoRA changes nothing). Our attention fuses q, k and v into one Linear, so a target may name one part of
  it ("attention.q") and then only those output rows get an update of their own, as in the paper, which
  adapts Wq and Wv (our default).
* A bottleneck adapter turns a sublayer's output projection ``h`` into ``h + up(act(down(h)))`` before
  dropout, the residual and the LayerNorm (the paper's placement); ``up`` starts at zero so a fresh adapter
  is the identity. As in the paper, each adapter also gets its own trainable copy of the layer norms.

Saved adapters are two files: ``adapter_model.safetensors`` (only the adapter tensors, plus any extra
tensors such as a task head) and ``adapter_config.json``; nothing is pickled.
"""

from .api import (
    active_adapters,
    adapter_config,
    adapter_names,
    adapter_state_dict,
    add_adapter,
    delete_adapter,
    freeze_except_adapters,
    merge_adapter,
    merge_and_unload,
    set_active_adapter,
    unmerge_adapter,
)
from .config import ADAPTER_CONFIG, ADAPTER_WEIGHTS, PeftConfig
from .files import LoadedAdapter, load_adapter, save_adapter
from .modules import Bottleneck, LoRA, PeftLinear, PeftNorm

__all__ = [
    "ADAPTER_CONFIG", "ADAPTER_WEIGHTS", "Bottleneck", "LoRA", "LoadedAdapter", "PeftConfig", "PeftLinear",
    "PeftNorm", "active_adapters", "adapter_config", "adapter_names", "adapter_state_dict", "add_adapter",
    "delete_adapter", "freeze_except_adapters", "load_adapter", "merge_adapter", "merge_and_unload",
    "save_adapter", "set_active_adapter", "unmerge_adapter",
]
