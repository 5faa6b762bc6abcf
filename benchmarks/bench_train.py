"""Training loop time per step: xling's loop against a Hugging Face ``Trainer`` with the same settings.

The same model, LoRA (r 32, alpha 64, dropout 0, every projection), examples (xling's tokenisation of generated
items with long questions), batch size, AdamW learning rate, warm-up ratio and gradient clipping; bf16 on a GPU
(the model loaded in bf16, the Trainer's ``bf16=True``, xling's autocast), float32 on a CPU; the Trainer pads each
batch to its longest example (``DataCollatorForSeq2Seq``), as xling does; no validation, no checkpoints, no logging.
A run's time per step is the difference between a 3-epoch and a 1-epoch run over the difference in steps, so the
fixed costs (model set-up, tokenising, saving) cancel.

    python benchmarks/bench_train.py                           # CPU: hidden 256, 2 layers
    python benchmarks/bench_train.py --hidden 1024 --layers 4  # the GPU row of benchmarks/gpu.sh
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

WORDS = "red green blue cat dog bird tree river city house the of and in is was for on with as".split()


def make_items(n: int, words: int, seed: int = 0):
    """``n`` generated items whose questions have about ``words`` words (so examples are long, as the paper's)."""
    from xling.tasks.items import MCItem

    rng = random.Random(seed)
    return [
        MCItem(
            id=str(i),
            task="long",
            language="en",
            context="Question: " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(words // 2, words))),
            choices=tuple(rng.choice(WORDS) for _ in range(4)),
            gold=rng.randrange(4),
        )
        for i in range(n)
    ]


def xling_seconds_per_step(model_dir: str, items, batch: int, lr: float, out: Path) -> tuple[float, int]:
    """xling's loop: (seconds per step, steps per epoch), from a 1- and a 3-epoch run in one worker."""
    from xling.config import LoraSpec, ModelSpec, TrainSpec
    from xling.train import keep_base_models, train_adapter

    model = ModelSpec(name="bench", path=model_dir)
    lora = LoraSpec(r=32, alpha=64)
    loops = {}
    with keep_base_models():
        for epochs in (1, 1, 3):  # the first run warms the device up
            spec = TrainSpec(epochs=epochs, lr=lr, batch_size=batch, val_fraction=0.0, max_length=512)
            log = train_adapter(model, items, [], 0, out / f"xling{epochs}", lora, spec)
            loops[epochs] = log["loop_seconds"]
    steps = log["steps"] // 3
    return (loops[3] - loops[1]) / (2 * steps), steps


def trainer_seconds_per_step(model_dir: str, items, batch: int, lr: float, out: Path) -> tuple[float, str]:
    """The HF Trainer with the same settings: (seconds per step, its optimiser's name)."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, DataCollatorForSeq2Seq, Trainer, TrainingArguments

    from xling.config import TrainSpec
    from xling.models.causal import ensure_pad_token, tokenize_examples

    cuda = torch.cuda.is_available()
    tok = AutoTokenizer.from_pretrained(model_dir)
    ensure_pad_token(tok)
    examples = tokenize_examples(items, tok, TrainSpec(max_length=512), False)
    columns = ("input_ids", "labels", "attention_mask")
    data = Dataset.from_dict({name: [e[k] for e in examples] for k, name in enumerate(columns)})
    seconds, optim = {}, ""
    for epochs in (1, 1, 3):  # the first run warms the device up
        base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16 if cuda else torch.float32)
        model = get_peft_model(
            base.to("cuda" if cuda else "cpu"),
            LoraConfig(r=32, lora_alpha=64, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM"),
        )
        args = TrainingArguments(
            output_dir=str(out / f"trainer{epochs}"),
            num_train_epochs=epochs,
            per_device_train_batch_size=batch,
            learning_rate=lr,
            warmup_steps=0.1,  # a ratio when below 1 (transformers 5)
            max_grad_norm=1.0,
            weight_decay=0.0,
            bf16=cuda,
            use_cpu=not cuda,
            eval_strategy="no",
            save_strategy="no",
            logging_strategy="no",
            report_to=[],
            disable_tqdm=True,
            seed=0,
            remove_unused_columns=False,
        )
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=data,
            data_collator=DataCollatorForSeq2Seq(tok, padding="longest", label_pad_token_id=-100),
        )
        seconds[epochs] = trainer.train().metrics["train_runtime"]
        optim = str(args.optim)
    steps = -(-len(examples) // batch)
    return (seconds[3] - seconds[1]) / (2 * steps), optim


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--items", type=int, default=48)
    parser.add_argument("--words", type=int, default=120, help="words per question (at most)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=5e-5)
    args = parser.parse_args()

    from xling.models.tiny import build_tiny_llama

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = str(
            build_tiny_llama(
                root / "model",
                hidden_size=args.hidden,
                n_layers=args.layers,
                vocab_size=args.vocab,
                n_heads=max(4, args.hidden // 64),
                n_kv_heads=max(2, args.hidden // 128),
                init_range=0.02,
            )
        )
        items = make_items(args.items, args.words)
        t0 = time.perf_counter()
        ours, steps = xling_seconds_per_step(model, items, args.batch, args.lr, root)
        theirs, optim = trainer_seconds_per_step(model, items, args.batch, args.lr, root)
        print(
            f"hidden {args.hidden}, {args.layers} layers, {args.items} examples, batch {args.batch} "
            f"({steps} steps per epoch), {time.perf_counter() - t0:.0f} s in all"
        )
        print(f"xling loop {1000 * ours:.1f} ms/step; HF Trainer ({optim}) {1000 * theirs:.1f} ms/step")
        print(f"xling / Trainer: {ours / theirs:.2f} (goal <= 1)")


if __name__ == "__main__":
    main()
