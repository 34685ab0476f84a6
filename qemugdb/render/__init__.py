"""Renderers: records in, text/JSON/DOT out. Shared by the gdb commands and the CLI."""
