"""Test and benchmark support, not the product path: tiny random-weight model families
(`families/`, one module each) and their registry. Only re-exports."""

from ablate.testing.families.causal_lm import build_tiny_causal_lm
from ablate.testing.families.idefics3 import build_tiny_idefics3
from ablate.testing.families.llava import build_tiny_llava
from ablate.testing.families.onevision import build_tiny_llava_onevision
from ablate.testing.families.qwen2vl import build_tiny_qwen2vl
from ablate.testing.registry import TINY_FAMILIES, TinyBuilder, family, image_text_families

__all__ = [
    "TINY_FAMILIES",
    "TinyBuilder",
    "build_tiny_causal_lm",
    "build_tiny_idefics3",
    "build_tiny_llava",
    "build_tiny_llava_onevision",
    "build_tiny_qwen2vl",
    "family",
    "image_text_families",
]
