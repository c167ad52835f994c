"""Bundled model weights and quality figures (JSON), read with importlib.resources."""
