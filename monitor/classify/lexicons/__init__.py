"""Bundled lexicons (JSON), read with importlib.resources."""
