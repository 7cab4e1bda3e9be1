"""nulltta: test-time alignment of text-to-image diffusion models via null-text optimisation."""

__version__ = "0.1.0"
