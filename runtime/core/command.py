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
        _error("aborted", 130)
    except click.ClickException as e:  # bad option values: one line instead of usage + hint
        _error(f"{e.format_message()} (see --help)")
    except GanEdgeError as e:
        _error(str(e))
    except OSError as e:  # the file system said no (read-only, full, gone): name what and where
        where = " -> ".join(str(f) for f in (e.filename, e.filename2) if f is not None)
        _error(f"{e.strerror or e}{': ' + where if where else ''}")


def _error(message: str, status: int = 2) -> None:
    progress = sys.modules.get("runtime.core.progress")  # there only where work showed progress
    if progress is not None:
        progress.end_line()  # the error on a line of its own, not after a progress line
    click.echo(f"error: {message}", err=True)
    sys.exit(status)
