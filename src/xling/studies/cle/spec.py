"""The CLE grid's spec: methods × language pairs × training-dictionary sizes, where the files are, how BLI counts,
and the downstream tasks each mapped pair is evaluated on; validated so that every axis of the grid changes an input.

Paths in the spec are templates relative to the spec file's folder (``resolve_paths``): ``vectors`` with ``{lang}``
(one file per language), or ``src_vectors``/``tgt_vectors`` with ``{pair}``, ``{src}``, ``{tgt}`` (one pair of files
per pair, as ``xling cle simulate`` writes them); dictionaries with ``{pair}``, ``{src}``, ``{tgt}`` and ``{size}``.
A grid axis that changes no input (two sizes reading the same dictionaries, two pairs reading the same files, two
method entries alike) is an error: its "results" would be one result counted several times.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator, model_validator

from xling.config import ExecutorSpec, Spec
from xling.errors import XlingError
from xling.registry import DOWNSTREAM_TASKS

if TYPE_CHECKING:
    from xling.cle.protocol import Protocol

#: The paper's eight languages; its 28 pairs are the xling-eval dictionary folders.
PAPER_LANGUAGES = ("de", "en", "fi", "fr", "hr", "it", "ru", "tr")
PAPER_SIZES = ("500", "1k", "3k", "5k")
NO_SIZE = "none"
DownstreamTask = DOWNSTREAM_TASKS.choices()


class MethodEntry(Spec):
    """One method of the grid: a registered method name, optional parameters and a label for the tables."""

    method: str
    label: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.label or self.method


class DownstreamEntry(Spec):
    """One downstream task of the grid: its data folder (a template with ``{pair}``, ``{src}``, ``{tgt}``) and,
    optionally, the model, headline metric, model parameters, TED topics and CLIR stopwords
    (``xling cle downstream``'s options), the pairs it evaluates (default: every pair of the grid) and the model
    seeds (default: the grid's seed; the tables give the mean and standard deviation over them)."""

    data: str
    model: str | None = None
    metric: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    topics: list[str] | None = None
    stopwords: Literal["auto", "file", "nltk", "none"] = "auto"
    pairs: list[str] | None = Field(None, min_length=1)
    seeds: list[int] | None = Field(None, min_length=1)

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, value: list[int] | None) -> list[int] | None:
        if value is not None:
            if len(set(value)) != len(value):
                raise ValueError(f"a seed is listed twice: {value}")
            if min(value) < 0:
                raise ValueError(f"seeds must be >= 0, found {min(value)}")
        return value


class CLEGridSpec(Spec):
    """A CLE grid: which methods, pairs and dictionary sizes, where the files are, how BLI is counted, and which
    downstream tasks every mapped pair is evaluated on."""

    methods: list[str | MethodEntry] = Field(min_length=1)
    pairs: list[str] | Literal["paper"] = "paper"
    sizes: list[str] = Field(default_factory=lambda: list(PAPER_SIZES), min_length=1)
    vectors: str | None = None
    src_vectors: str | None = None
    tgt_vectors: str | None = None
    train_dict: str | None = None
    test_dict: str
    protocol: Literal["glavas2019", "vecmap", "muse"] | None = None
    max_vocab: int | None = Field(200000, gt=0)
    case: Literal["keep", "lower"] = "keep"
    retrieval: Literal["nn", "csls", "isf"] = "csls"
    convention: Literal["line", "source"] = "line"
    oov: Literal["skip", "wrong"] = "skip"
    fail_mrr: float = Field(0.05, ge=0.0, le=1.0)
    seed: int = 0
    cache: bool = True
    output: str = "xling-out/cle-grid"
    executor: ExecutorSpec = Field(default_factory=ExecutorSpec)
    max_retries: int = Field(1, ge=0)
    downstream: dict[DownstreamTask, DownstreamEntry] = Field(default_factory=dict)

    @field_validator("downstream", mode="before")
    @classmethod
    def _folder_alone(cls, value: Any) -> Any:
        """``task: DIR`` is short for ``task: {data: DIR}``."""
        if isinstance(value, dict):
            return {k: {"data": v} if isinstance(v, str) else v for k, v in value.items()}
        return value

    @field_validator("sizes", mode="before")
    @classmethod
    def _sizes_as_text(cls, value: Any) -> Any:
        return [str(v) for v in value] if isinstance(value, list) else value

    @field_validator("pairs")
    @classmethod
    def _pair_names(cls, value: Any) -> Any:
        if isinstance(value, list):
            for pair in value:
                if len(pair.split("-")) != 2 or not all(pair.split("-")):
                    raise ValueError(f"a pair is 'src-tgt' (e.g. en-de), found {pair!r}")
            if len(set(value)) != len(value):
                raise ValueError("a pair is listed twice")
        return value

    @model_validator(mode="after")
    def _check(self) -> CLEGridSpec:
        from xling.cle.mappers import check_method, seed_of

        labels = [m.name if isinstance(m, MethodEntry) else m for m in self.methods]
        if len(set(labels)) != len(labels):
            raise ValueError(f"methods: a label is used twice: {labels}")
        for entry in self.methods:
            method = entry.method if isinstance(entry, MethodEntry) else entry
            try:
                check_method(method)
            except XlingError as err:
                raise ValueError(str(err)) from None
            if isinstance(entry, MethodEntry):
                from xling.cle.mappers import make_mapper

                try:
                    make_mapper(method, **entry.params)
                except XlingError as err:
                    raise ValueError(str(err)) from None
            if seed_of(method) == "dictionary" and self.train_dict is None:
                raise ValueError(f"method {method!r} needs a training dictionary: set train_dict")
        if (self.vectors is None) == (self.src_vectors is None or self.tgt_vectors is None):
            raise ValueError(
                "give either vectors (a {lang} template) or both src_vectors and tgt_vectors "
                "({pair}/{src}/{tgt} templates)"
            )
        pair_keys = {"pair", "src", "tgt"}
        for field, template, keys in (
            ("vectors", self.vectors, {"lang"}),
            ("src_vectors", self.src_vectors, pair_keys),
            ("tgt_vectors", self.tgt_vectors, pair_keys),
            ("train_dict", self.train_dict, {"pair", "src", "tgt", "size"}),
            ("test_dict", self.test_dict, {"pair", "src", "tgt"}),
        ):
            if template is not None:
                _check_template(field, template, keys)
        from xling.cle.downstream.evaluate import check_task, model_params

        pairs = set(self.pair_list())
        for task, entry in self.tasks().items():
            _check_template(f"downstream.{task}.data", entry.data, pair_keys)
            try:
                model, _ = check_task(task, entry.model, entry.metric)
                model_params(model, entry.params)
            except XlingError as err:
                raise ValueError(f"downstream.{task}: {err}") from None
            unknown = [p for p in entry.pairs or [] if p not in pairs]
            if unknown:
                raise ValueError(f"downstream.{task}.pairs: {unknown[0]!r} is not a pair of the grid (pairs:)")
        check_axes(self)
        return self

    def tasks(self) -> dict[str, DownstreamEntry]:
        """Every downstream task as a ``DownstreamEntry``."""
        return dict(self.downstream)

    def conventions(self) -> Protocol:
        """The BLI conventions of every unit (``xling.cle.protocol.Protocol``): the spec's protocol, or xling's
        defaults with CSLS, with the options written in the spec on top."""
        from xling.cle.protocol import resolve

        keys = ("max_vocab", "case", "retrieval", "convention", "oov")
        given = {k: getattr(self, k) for k in keys if self.protocol is None or k in self.model_fields_set}
        return resolve(self.protocol, {"retrieval": "csls"}, **given)

    def entries(self) -> list[MethodEntry]:
        """Every method as a ``MethodEntry``."""
        return [m if isinstance(m, MethodEntry) else MethodEntry(method=m) for m in self.methods]

    def pair_list(self) -> list[str]:
        """The language pairs: the spec's list, or the paper's 28 pairs."""
        if self.pairs == "paper":
            from xling.cle.fetch import bli_pairs

            return bli_pairs()
        return list(self.pairs)


def _check_template(field: str, template: str, keys: set[str]) -> None:
    import string

    for _, name, _, _ in string.Formatter().parse(template):
        if name is not None and name not in keys:
            raise ValueError(f"{field}: unknown placeholder {{{name}}}; expected some of {sorted(keys)}")


def fill(pair: str) -> dict[str, str]:
    """The placeholders a pair fills in a file template: ``{pair}``, ``{src}``, ``{tgt}``."""
    src, tgt = pair.split("-")
    return {"pair": pair, "src": src, "tgt": tgt}


def unit_files(spec: CLEGridSpec, pair: str, size: str | None) -> tuple[str, str, str | None, str]:
    """The (unresolved) vectors and dictionary files of one (pair, size); ``size=None``: no training dictionary."""
    names = fill(pair)
    return (
        (spec.src_vectors or spec.vectors).format(lang=names["src"], **names),
        (spec.tgt_vectors or spec.vectors).format(lang=names["tgt"], **names),
        spec.train_dict.format(size=size, **names) if size is not None and spec.train_dict else None,
        spec.test_dict.format(**names),
    )


def check_axes(spec: CLEGridSpec) -> None:
    """Every axis of the grid changes an input; ``ValueError`` naming the axis and the two values otherwise.

    Two sizes that read the same training dictionary, two pairs that read the same files, a ``vectors`` template
    without ``{lang}`` (both sides one file) or two method entries with the same method and parameters would report
    one result several times under different names.
    """
    from xling.cle.mappers import seed_of

    seen: dict[tuple, str] = {}
    for entry in spec.entries():
        ident = (entry.method, json.dumps(entry.params, sort_keys=True, default=str))
        if ident in seen:
            raise ValueError(f"methods: {seen[ident]!r} and {entry.name!r} are the same method with the same params")
        seen[ident] = entry.name
    if spec.vectors is not None and "lang" not in _placeholders(spec.vectors):
        raise ValueError("vectors: the template has no {lang}: source and target would read the same file")
    with_dict = any(seed_of(e.method) == "dictionary" for e in spec.entries())
    by_files: dict[tuple, str] = {}
    for pair in spec.pair_list():
        if with_dict:
            by_dict: dict[str | None, str] = {}
            for size in spec.sizes:
                path = unit_files(spec, pair, size)[2]
                if path in by_dict:
                    raise ValueError(
                        f"sizes: {by_dict[path]} and {size} read the same training dictionary ({path}) for {pair}: "
                        "put {size} in train_dict, or list one size"
                    )
                by_dict[path] = size
        files = unit_files(spec, pair, spec.sizes[0] if with_dict else None)
        if files in by_files:
            raise ValueError(
                f"pairs: {by_files[files]} and {pair} read the same vectors and dictionaries: put {{pair}} (or "
                "{src}, {tgt}) in the file templates"
            )
        by_files[files] = pair


def _placeholders(template: str) -> set[str]:
    import string

    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def resolve_paths(spec: CLEGridSpec, folder: Path) -> CLEGridSpec:
    """The spec with its relative file templates, downstream folders and ``output`` made relative to ``folder``
    (the spec file's)."""
    for name in ("vectors", "src_vectors", "tgt_vectors", "train_dict", "test_dict", "output"):
        value = getattr(spec, name)
        if value is not None and not Path(value).expanduser().is_absolute():
            setattr(spec, name, str(folder / value))
    spec.downstream = {
        task: entry.model_copy(update={"data": str(folder / entry.data)})
        if not Path(entry.data).expanduser().is_absolute()
        else entry
        for task, entry in spec.tasks().items()
    }
    return spec
