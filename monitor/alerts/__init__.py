"""Alert rules (plain data from `monitor.toml`), their evaluation over metric rows, and the alert lifecycle."""
