"""Helpers of the tokenizer tests: corpus generation, reference tokenizers, running logitlens."""
