"""A tiny offline Llama (2 layers, byte-level BPE tokenizer) shared by tests, the grid and benchmarks.

Nothing is downloaded: the tokenizer is trained with the ``tokenizers`` library on generated text and
the weights are a seeded random initialisation, so the same ``seed`` always writes the same model.
"""

from __future__ import annotations

import random
from pathlib import Path

from xling.io import atomic_dir

_WORDS = (
    "the a of to and in is was for on with as by at from this that which what who answer question "
    "choice option true false yes no red green blue yellow black white cat dog bird fish tree river "
    "city house one two three four five six seven eight nine ten zero plus minus equals number color "
    "animal capital country language word sentence because therefore however not all some many few "
    "der die das und ist nicht ein eine le la les et est pas un une el los las y es no una o que "
    "il lo gli e non uma um os as é não dan ini itu adalah tidak yang"
).split()
_SCRIPTS = (
    "абвгдежзиклмнопрстуфхцчшщыэюя"
    "αβγδεζηθικλμνξοπρστυφχψω"
    "अआइईउऊएऐओऔकखगघचछजझटडतथदधनपफबभमयरलवशसह"
    "অআইঈউঊএঐওঔকখগঘচছজঝটডতথদধনপফবভমযরলশসহ"
    "ابتثجحخدذرزسشصضطظعغفقكلمنهوي"
    "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年"
)


_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}</s>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def _corpus(rng: random.Random, n_lines: int = 3000) -> list[str]:
    """Generated training text: words, letters A-Z, digits, punctuation and a few non-Latin scripts."""
    lines = []
    for _ in range(n_lines):
        parts = []
        for _ in range(rng.randint(3, 14)):
            roll = rng.random()
            if roll < 0.6:
                word = rng.choice(_WORDS)
                parts.append(word.capitalize() if rng.random() < 0.2 else word)
            elif roll < 0.7:
                parts.append(f"{chr(65 + rng.randrange(8))})")
            elif roll < 0.8:
                parts.append(str(rng.randrange(1000)))
            elif roll < 0.9:
                parts.append("".join(rng.choice(_SCRIPTS) for _ in range(rng.randint(1, 4))))
            else:
                parts.append(rng.choice(["Question:", "Answer:", "?", ".", ",", ":", "\n"]))
        lines.append(" ".join(parts))
    return lines


def build_tiny_tokenizer(seed: int = 0, vocab_size: int = 512):
    """A byte-level BPE tokenizer (any UTF-8 text encodes) that prepends ``<s>`` like Llama's, with a small
    chat template (for tests of the chat-template path)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<s>", "</s>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(random.Random(seed)), trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", tok.token_to_id("<s>"))]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>", model_max_length=512
    )
    fast.chat_template = _CHAT_TEMPLATE
    return fast


def build_tiny_llama(
    folder: str | Path,
    seed: int = 0,
    *,
    hidden_size: int = 64,
    n_layers: int = 2,
    max_positions: int = 512,
    init_range: float = 0.1,
    vocab_size: int | None = None,
    intermediate_size: int | None = None,
    n_heads: int = 4,
    n_kv_heads: int = 2,
    tie_embeddings: bool = False,
    dtype: str = "float32",
    device: str = "cpu",
) -> Path:
    """Write a tiny random Llama and its tokenizer to ``folder``; the same seed (and device) gives the same files.

    ``init_range`` (0.1, larger than Llama's 0.02) gives logits wide enough for LoRA to learn small tasks;
    ``vocab_size`` widens the embeddings and LM head beyond the tokenizer's ~512 tokens (the ids above them are
    never produced), so a benchmark pays a real model's head and log-softmax; ``intermediate_size`` (default twice
    the hidden size), the head counts and ``tie_embeddings`` give a real model's shape (the benchmarks' Llama-3.2-1B
    shape). The weights are initialised on ``device`` (a GPU builds a large one in seconds) and saved in ``dtype``.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    tokenizer = build_tiny_tokenizer(seed)
    config = LlamaConfig(
        vocab_size=max(len(tokenizer), vocab_size or 0),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size or 2 * hidden_size,
        num_hidden_layers=n_layers,
        num_attention_heads=n_heads,
        num_key_value_heads=n_kv_heads,
        max_position_embeddings=max_positions,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=tie_embeddings,
        initializer_range=init_range,
    )
    torch.manual_seed(seed)
    with torch.device(device):
        model = LlamaForCausalLM(config).to(getattr(torch, dtype))
    with atomic_dir(folder) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return Path(folder)
