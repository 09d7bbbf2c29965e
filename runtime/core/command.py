"""Run a click command so that every user error is one line on stderr and exit status 2."""
from __future__ import annotations

import sys

import click

from runtime.core.errors import GanEdgeError


def run_cli(command: click.Command, args=None) -> None:
    try:
        command.main(args=args, standalone_mode=False)
    except click.exceptions.Exit as e:  # --help and friends
        sys.exit(e.exit_code)
    except click.Abort:
        click.echo("error: aborted", err=True)
        sys.exit(130)
    except click.ClickException as e:  # bad option values: one line instead of usage + hint
        click.echo(f"error: {e.format_message()} (see --help)", err=True)
        sys.exit(2)
    except GanEdgeError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(2)
    except OSError as e:  # the file system said no (read-only, full, gone): name what and where
        where = " -> ".join(str(f) for f in (e.filename, e.filename2) if f is not None)
        click.echo(f"error: {e.strerror or e}{': ' + where if where else ''}", err=True)
        sys.exit(2)
