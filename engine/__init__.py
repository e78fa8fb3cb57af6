"""Weftworks engine: the core, importable without FastAPI."""

__version__ = "0.1.0"
