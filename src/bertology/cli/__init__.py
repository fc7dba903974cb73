"""The `bertology` command: thin subcommands over the library."""
