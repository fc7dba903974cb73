"""Small helpers shared across the package (no model or data knowledge here)."""
