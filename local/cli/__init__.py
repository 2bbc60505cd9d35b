"""Command-line tools for the local stack (the only modules that print)."""
