"""Making encoders smaller and faster: distillation, quantization, pruning, export."""
