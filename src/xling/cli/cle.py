"""Commands of `xling cle`: cross-lingual word embeddings (map, bli, run, grid, simulate)."""

import typer

from xling.cli.app import app

cle_app = typer.Typer(help="Cross-lingual word embeddings: map, evaluate with BLI, simulate.", no_args_is_help=True)
app.add_typer(cle_app, name="cle")
