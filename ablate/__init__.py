"""ablate: distributed data-mixture ablations for fine-tuning vision-language models."""

__version__ = "0.1.0"
