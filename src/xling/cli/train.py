"""``xling train`` and ``xling eval``: one source cell's adapter, and scores of a base model and its adapters."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Literal

import typer

from xling.cli.app import app
from xling.cli.common import ConfigOption, JsonOption, KindOption, emit_json
from xling.config import EngineConfig, ModelSpec, load_spec, parse_spec
from xling.errors import XlingError
from xling.jsonable import records


def _config(path: Path | None) -> EngineConfig:
    return load_spec(EngineConfig, path) if path else EngineConfig()


def model_spec(arg: str | None, kind: str, config: EngineConfig) -> ModelSpec:
    """``--model``: a model YAML, a local folder, or a hub id (else the config's ``model``)."""
    if arg is None:
        if config.model is None:
            raise XlingError("no model: pass --model or set 'model' in --config")
        return config.model
    if arg.endswith((".yaml", ".yml")):
        return load_spec(ModelSpec, arg)
    local = Path(arg).expanduser()
    if local.exists() or arg.startswith((".", "/", "~")):
        return parse_spec(ModelSpec, {"name": local.resolve().name, "path": str(local), "kind": kind}, "--model")
    return parse_spec(ModelSpec, {"name": arg, "kind": kind}, "--model")


@app.command()
def train(
    task: str = typer.Option(..., "--task", help="Task YAML path, mini:<name>, or a paper benchmark name."),
    lang: str = typer.Option(..., "--lang", help="Source language."),
    out: Path = typer.Option(..., "-o", "--out", metavar="DIR", help="Adapter folder to write."),
    model: str | None = typer.Option(None, "--model", help="Model folder, hub id or model YAML."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the LoRA initialisation, data order and dropout."),
    kind: KindOption = "causal",
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Fine-tune LoRA on one source cell (task × language) and save the adapter."""
    from rich.console import Console

    from xling.train import train_cell

    cfg = _config(config)
    spec = model_spec(model, kind, cfg)
    folder = train_cell(spec, task, lang, seed, out, cfg.lora, cfg.train, progress=not as_json)
    log = json.loads((folder / "train_log.json").read_text())
    if as_json:
        emit_json({"adapter": str(folder), **log})
        return
    val = log["best_val_loss"]
    Console().print(
        f"adapter written to [bold]{folder}[/] (kept epoch {log['kept_epoch']}"
        + (f", validation loss {val:.4f})" if val is not None else ")")
    )


@app.command("eval")
def evaluate(
    task: list[str] = typer.Option(..., "--task", help="Task (repeatable): YAML path, mini:<name> or benchmark."),
    out: Path = typer.Option(..., "-o", "--out", metavar="DIR", help="Output folder."),
    model: str | None = typer.Option(None, "--model", help="Model folder, hub id or model YAML."),
    adapter: list[str] = typer.Option([], "--adapter", help="Adapter folder, or NAME=FOLDER (repeatable)."),
    lang: list[str] = typer.Option([], "--lang", help="Languages (repeatable; default: all of each task)."),
    split: Literal["train", "test"] | None = typer.Option(
        None, "--split", help="Split to score (default: the config's, test)."
    ),
    kind: KindOption = "causal",
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Score the base model and every adapter on every task × language; write log-likelihoods and scores."""
    from rich.console import Console
    from rich.table import Table

    from xling.score import score_items, summarize, write_outputs
    from xling.tasks.registry import load_aligned, resolve_task

    cfg = _config(config)
    spec = model_spec(model, kind, cfg)
    score = cfg.score if split is None else cfg.score.model_copy(update={"split": split})
    adapters: dict[str, str | None] = {"base": None}
    for entry in adapter:
        name, _, folder = entry.rpartition("=") if "=" in entry else (Path(entry).name, "", entry)
        if name in adapters:
            raise XlingError(f"adapter name {name!r} given twice (use NAME=FOLDER to tell them apart)")
        adapters[name] = folder
    items = []
    for t in task:
        langs = list(lang) or resolve_task(t).languages()
        for lang_items in load_aligned(t, langs, score.split).values():
            items += lang_items
    partial = out.resolve().parent / f".{out.resolve().name}.partial"  # finished cells: a rerun resumes from them
    console = Console(stderr=as_json)
    if partial.is_dir():
        console.print(f"resuming: {len(list(partial.glob('*.parquet')))} finished cell(s) in {partial}")
    loglik = score_items(spec, adapters, items, score, progress=not as_json, checkpoint_dir=partial)
    write_outputs(
        loglik,
        out,
        {"model": spec, "adapters": adapters, "tasks": task, "languages": lang, "score": score},
        score.benchmark_format,
        tasks=task,
    )
    shutil.rmtree(partial, ignore_errors=True)
    if as_json:
        emit_json(
            {
                "out": str(out),
                "scores": records(summarize(loglik)),
                "peak_memory_bytes": loglik.attrs.get("peak_memory_bytes"),
            }
        )
        return
    table = Table("adapter", "task", "language", "n", "acc", "acc_norm", "acc_bytes")
    for row in summarize(loglik).itertuples(index=False):
        table.add_row(
            row.adapter,
            row.task,
            row.language,
            str(row.n),
            f"{row.acc:.4f}",
            f"{row.acc_norm:.4f}",
            f"{row.acc_bytes:.4f}",
        )
    console.print(table)
    peak = loglik.attrs.get("peak_memory_bytes") or 0
    console.print(f"wrote {out}/loglikelihoods.parquet and {out}/scores.csv; peak memory {peak / 2**20:.0f} MiB")
