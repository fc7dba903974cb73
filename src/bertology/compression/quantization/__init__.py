"""Int8 models: torch's dynamic and static int8 layers, 8-bit embeddings, Q8BERT's quantization-aware
training, and the folder format that saves them without pickle. Methods by name in `QUANTIZERS`."""

from .methods import QUANTIZERS, QuantizeOptions, quantize_encoder
from .qat import FakeQuantLinear, QATOptions, fake_quantize, restore
from .storage import QUANTIZATION_FILE, is_quantized_folder, load_quantized, save_quantized

__all__ = ["QUANTIZATION_FILE", "QUANTIZERS", "FakeQuantLinear", "QATOptions", "QuantizeOptions", "fake_quantize",
           "is_quantized_folder", "load_quantized", "quantize_encoder", "restore", "save_quantized"]
