"""The typer app and its command groups; command modules attach to these."""

from typing import Annotated

import typer

app = typer.Typer(
    name="xling",
    help="Measure how learning transfers across languages and tasks.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(help="Fetch and prepare datasets and embeddings.", no_args_is_help=True)
simulate_app = typer.Typer(help="Write synthetic results with planted structure.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(simulate_app, name="simulate")


def _print_version(value: bool) -> None:
    if value:
        import xling

        print(f"xling {xling.__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print xling's version and exit.")
    ] = False,
) -> None:
    """Measure how learning transfers across languages and tasks."""
