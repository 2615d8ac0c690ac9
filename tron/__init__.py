"""tron: frozen unconditional generators made conditional (TR0N)."""
__version__ = "0.1.0"
