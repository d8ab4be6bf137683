"""Thin command modules: parse options, call the core, render. Each has `register(app)`."""
