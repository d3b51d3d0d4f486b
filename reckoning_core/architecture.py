"""Fresh small causal LMs (GPT-2 or Llama shapes) sized for a given tokenizer."""

from __future__ import annotations

from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)


def new_causal_lm(tokenizer: PreTrainedTokenizerBase, arch: str = "gpt2", n_layer: int = 4, d_model: int = 256,
                  n_head: int = 4, n_positions: int = 512, dropout: float = 0.0, seed: int = 0) -> PreTrainedModel:
    """Random-init model whose bos/eos/pad ids are the tokenizer's (GPT2Config defaults to 50256)."""
    import torch

    torch.manual_seed(seed)
    ids = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
           "pad_token_id": tokenizer.pad_token_id}
    vocab = len(tokenizer)
    if arch == "gpt2":
        gcfg = GPT2Config(vocab_size=vocab, n_positions=n_positions, n_embd=d_model, n_layer=n_layer,
                         n_head=n_head, resid_pdrop=dropout, embd_pdrop=dropout, attn_pdrop=dropout,
                         activation_function="gelu_pytorch_tanh", **ids)  # gelu_new, one fused kernel
        gcfg._attn_implementation = "eager"
        return GPT2LMHeadModel(gcfg)
    if arch == "llama":
        cfg = LlamaConfig(vocab_size=vocab, hidden_size=d_model, intermediate_size=4 * d_model,
                          num_hidden_layers=n_layer, num_attention_heads=n_head, num_key_value_heads=n_head,
                          max_position_embeddings=n_positions, tie_word_embeddings=True, **ids)
        cfg._attn_implementation = "eager"
        return LlamaForCausalLM(cfg)
    raise ValueError(f"arch must be gpt2 or llama, not {arch!r}")
