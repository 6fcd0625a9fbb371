"""CLI commands: demo (to be filled in)."""

import click


def add_commands(cli: click.Group) -> None:
    pass
