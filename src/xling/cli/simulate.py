"""``xling simulate grid``: a synthetic transfer results table with planted structure (``xling cle simulate`` writes
simulated embedding spaces)."""

from __future__ import annotations

from pathlib import Path

import typer

from xling.cli.app import simulate_app


@simulate_app.command("grid")
def simulate_grid_cmd(
    out: Path = typer.Option(
        Path("xling-out/sim.csv"), "-o", "--out", metavar="FILE", help="Output CSV (or .parquet)."
    ),
    models: int = typer.Option(
        9, "--n-models", help="How many models (from a pool of Llama/Qwen/Gemma names; at most 9)."
    ),
    tasks: int = typer.Option(4, "--n-tasks", help="How many tasks (at most 4)."),
    languages: int = typer.Option(11, "--n-languages", help="How many languages (at most 11)."),
    seeds: int = typer.Option(3, min=1, help="Fine-tuning seeds per cell."),
    seed: int = typer.Option(0, min=0, help="Random seed of the simulation."),
    hubs: str = typer.Option("en", help="Comma-separated planted hub donor languages."),
    brittle: str = typer.Option(
        None, help="Comma-separated planted brittle recipient languages (default: the last one)."
    ),
    long: bool = typer.Option(False, "--long", help="Write the per-seed long table instead of the release schema."),
    interaction_rank: int = typer.Option(
        0, "--interaction-rank", min=0, help="Plant a source x target interaction of this rank, shared by all models."
    ),
    interaction_sd: float = typer.Option(2.0, "--interaction-sd", min=0.0, help="Its standard deviation in pp."),
    relatedness: float = typer.Option(
        0.0, help="pp added per sd of language closeness (URIEL syntax) to cross-language transfer."
    ),
) -> None:
    """Write a synthetic results table with planted structure (release schema by default)."""
    from rich.console import Console

    from xling.analysis.results import aggregate_seeds
    from xling.analysis.simulate import DEFAULT_LANGUAGES, DEFAULT_MODELS, DEFAULT_TASKS, SimulationSpec, simulate_long
    from xling.config import parse_spec
    from xling.errors import XlingError
    from xling.io import atomic_file

    for name, n, pool in (
        ("n-models", models, DEFAULT_MODELS),
        ("n-tasks", tasks, DEFAULT_TASKS),
        ("n-languages", languages, DEFAULT_LANGUAGES),
    ):
        if not 1 <= n <= len(pool):
            raise XlingError(f"--{name}: expected 1 to {len(pool)}, found {n}")
    langs = DEFAULT_LANGUAGES[:languages]
    split = lambda s: [x.strip() for x in s.split(",") if x.strip()]  # noqa: E731
    brittle = langs[-1] if brittle is None and len(langs) > 1 else brittle or ""
    for opt, values in (("hubs", split(hubs)), ("brittle", split(brittle))):
        unknown = [v for v in values if v not in langs]
        if unknown:
            raise XlingError(f"--{opt}: language {unknown[0]!r} is not simulated (languages: {', '.join(langs)})")
    spec = parse_spec(
        SimulationSpec,
        {
            "models": DEFAULT_MODELS[:models],
            "tasks": DEFAULT_TASKS[:tasks],
            "languages": langs,
            "n_seeds": seeds,
            "seed": seed,
            "hubs": split(hubs),
            "brittle": split(brittle),
            "interaction_rank": interaction_rank,
            "interaction_sd": interaction_sd,
            "relatedness": relatedness,
        },
        "simulate grid options",
    )
    table = simulate_long(spec)
    if not long:
        table = aggregate_seeds(table)
    mode = "wb" if out.suffix.lower() in {".parquet", ".pq"} else "w"
    with atomic_file(out, mode) as fh:
        if mode == "wb":
            table.to_parquet(fh, index=False)
        else:
            table.to_csv(fh, index=False)
    Console().print(
        f"wrote {out}: {len(table)} rows ({models} models x {tasks * languages} x {tasks * languages} cells"
        f"{', per seed' if long else ''}); planted hubs: {', '.join(spec.hubs) or 'none'}; "
        f"brittle: {', '.join(spec.brittle) or 'none'}"
        + (f"; interaction rank {spec.interaction_rank} sd {spec.interaction_sd:g}" if spec.interaction_rank else "")
        + (f"; relatedness {spec.relatedness:g} pp per sd of closeness" if spec.relatedness else "")
    )
