"""What every ``kizuna`` sub-command shares: the console, the CLI's actor, and how a refusal ends a command."""

from __future__ import annotations

import typer
from pydantic import ValidationError
from rich.console import Console

from kizuna.auth.permissions import Actor
from kizuna.errors import KizunaError

console = Console()
CLI = Actor.system("cli", origin="cli")


def fail(exc: Exception) -> typer.Exit:
    """Print why the command was refused (the field at fault first) and give the exit to raise (code 2)."""
    if isinstance(exc, ValidationError):
        message = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        console.print(f"[red]error:[/red] {message}")
    else:
        assert isinstance(exc, KizunaError)
        where = f" ({exc.field})" if exc.field else ""
        console.print(f"[red]error{where}:[/red] {exc.message}")
    return typer.Exit(code=2)
