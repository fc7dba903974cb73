"""Fine-tuning helpers: choosing and combining encoder layers for task heads."""
