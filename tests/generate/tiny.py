"""A tiny random Llama (2 layers, width 64) with a byte-level tokenizer, built in the tests.

Byte-level BPE reads any text without unknown tokens, so prompts with passages, numbers and
punctuation round-trip; the model is random, so tests compare behaviours, never wording.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

CORPUS = [
    "Answer the question using only the numbered passages.",
    "Items can be returned within 30 days of delivery for a full refund. [1]",
    "The warranty covers the motor for two years and the jar for one year. [2]",
    "Shipping takes three to five business days; express takes one day.",
    "I don't know: the documents I have do not answer this.",
    "Passages: Question: system user assistant",
]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def make_tokenizer() -> Any:
    from tokenizers import Tokenizer, decoders, pre_tokenizers, trainers
    from tokenizers import models as tok_models
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(tok_models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    raw.train_from_iterator(CORPUS * 4, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=raw,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|im_end|>",
        unk_token="<|endoftext|>",
        chat_template=CHAT_TEMPLATE,
    )


def make_llama(vocab_size: int, seed: int = 0, eos_token_id: int = 2) -> Any:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=1,
        eos_token_id=eos_token_id,
        pad_token_id=eos_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    with (
        torch.no_grad()
    ):  # a random model at init is nearly uniform; sharpen it so greedy paths differ
        for p in model.parameters():
            if p.ndim == 2:
                p.mul_(4.0)
    return model.eval()


def save_tiny(folder: Path, seed: int = 0) -> Path:
    tokenizer = make_tokenizer()
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    model = make_llama(len(tokenizer), seed, eos)
    model.generation_config.eos_token_id = eos
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


def train(
    peft_model: Any, texts: Sequence[tuple[str, str]], tokenizer: Any, *, steps: int, lr: float
) -> list[float]:
    """A few AdamW steps on (prompt, answer) pairs, loss on the answer only; the losses."""
    import torch

    params = [p for p in peft_model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(params, lr=lr)
    peft_model.train()
    losses = []
    for step in range(steps):
        prompt, answer = texts[step % len(texts)]
        p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        a = tokenizer(answer, add_special_tokens=False)["input_ids"]
        ids = torch.tensor([p + a])
        labels = torch.tensor([[-100] * len(p) + a])
        loss = peft_model(input_ids=ids, labels=labels).loss
        loss.backward()
        optimiser.step()
        optimiser.zero_grad()
        losses.append(float(loss.detach()))
    peft_model.eval()
    return losses
