"""The `llmops` command line (Typer + Rich); heavy modules are imported inside commands."""
