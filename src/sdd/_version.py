"""The package version (model files import it from here, never from the package root)."""

__version__ = "0.2.0"
