"""Runs: each turns one typed config into components and hands them to the one Trainer (or to analysis).

This is the only layer that wires packages together; the library packages below never import it, and
`cli/` parses arguments and calls a run.
"""
