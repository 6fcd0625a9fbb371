"""CLI commands: export (to be filled in)."""

import click


def add_commands(cli: click.Group) -> None:
    pass
