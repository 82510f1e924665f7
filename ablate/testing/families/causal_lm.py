"""A text-only causal LM: Llama with a ChatML tokenizer (Qwen2.5-Instruct's turn shape)."""

from __future__ import annotations

from pathlib import Path

from ablate.testing.parts import CHATML_TOKENS, chatml_tokenizer
from ablate.testing.registry import family

CHATML_CHAT_TEMPLATE = (
    # Qwen2.5-Instruct's shape: a default system turn, <|im_start|>role\n ... <|im_end|>\n
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\n"
    "You are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@family("causal_lm", images=False)
def build_tiny_causal_lm(out: Path, corpus: list[str], seed: int = 0) -> Path:
    """A random-weight text-only Llama (tiny shapes) with a ChatML tokenizer (Qwen2.5-style)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    if (out / "config.json").is_file():
        return out
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = chatml_tokenizer(corpus, CHATML_TOKENS, CHATML_CHAT_TEMPLATE)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=4096,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
