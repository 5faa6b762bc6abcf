"""``xling data prepare``: fetch every dataset a config needs once, so later runs work offline."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from xling.config import GridSpec, Spec, load_spec, load_yaml, parse_spec
from xling.errors import XlingError


class DataSpec(Spec):
    """Datasets to materialise: tasks × languages × splits. Paper benchmarks come from ``source``: ``aligned``
    (the aligned release on the hub), ``upstream`` (the original datasets filtered by an id manifest,
    ``{split: [ids]}`` JSON) or a folder holding local copies of the aligned hub repos at
    ``FOLDER/<owner>/<name>/`` (as ``huggingface-cli download --repo-type dataset <owner>/<name> --local-dir
    FOLDER/<owner>/<name>`` writes them; relative to the data YAML)."""

    tasks: list[str] = Field(min_length=1)
    languages: list[str] = Field(min_length=1)
    splits: list[Literal["train", "test"]] = Field(default_factory=lambda: ["train", "test"])
    source: str = "aligned"
    manifest: str | None = None


def read_data_spec(path: str | Path, source: str | None = None) -> DataSpec:
    """A ``DataSpec`` YAML, or a grid config (its tasks and languages); ``source`` overrides the YAML's."""
    data = load_yaml(path)
    if isinstance(data, dict) and "models" in data:
        fields = {k: v for k, v in data.items() if k != "kind"}  # a grid spec may name its kind
        grid = parse_spec(GridSpec, fields, str(path)).relative_to(Path(path).resolve().parent)
        cells = {(c.task, c.language) for c in grid.source_cells() + grid.target_cells()}
        spec = DataSpec(tasks=sorted({t for t, _ in cells}), languages=sorted({lang for _, lang in cells}))
    else:
        spec = load_spec(DataSpec, path)
        if spec.manifest and not Path(spec.manifest).is_absolute():
            spec.manifest = str(Path(path).parent / spec.manifest)
        if spec.source not in ("aligned", "upstream") and not Path(spec.source).expanduser().is_absolute():
            spec.source = str(Path(path).parent / spec.source)
    if source is not None:
        spec.source = source
    if spec.source not in ("aligned", "upstream") and not Path(spec.source).expanduser().is_dir():
        raise XlingError(f"{path}: field 'source': {spec.source!r} is neither aligned, upstream nor a folder")
    return spec


def prepare_data(spec: DataSpec) -> list[str]:
    """Fetch and cache what ``spec`` names; returns one line per dataset prepared."""
    from xling.tasks import paper
    from xling.tasks.registry import MiniTask, resolve_task

    done = []
    for task in spec.tasks:
        source = resolve_task(task)
        if isinstance(source, paper.PaperBenchmark):
            langs = [lang for lang in spec.languages if lang in paper.LANGUAGES]
            if not langs:
                raise XlingError(f"task {task!r}: none of the languages {spec.languages} is one of the paper's")
            for path in paper.prepare([task], langs, spec.splits, spec.source, spec.manifest):
                done.append(str(path))
        elif not isinstance(source, MiniTask):
            for split in spec.splits:  # lm-eval YAMLs on the hub land in the datasets cache; local ones just check
                try:
                    source.items(source.languages()[0], split)
                except XlingError as err:
                    if "no split" not in str(err):
                        raise
            done.append(task)
    return done
