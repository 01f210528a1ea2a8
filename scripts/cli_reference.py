"""docs/cli.md: every command and option of tapcheck, as its ``--help`` gives them.

The reference is written from the commands themselves (click's own help records), so it cannot
drift from them; the test suite runs ``--check``::

    python3 scripts/cli_reference.py           # rewrite docs/cli.md
    python3 scripts/cli_reference.py --check   # exit 1 if docs/cli.md differs from the commands
"""

from __future__ import annotations

import argparse
import inspect
import sys
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "cli.md"
sys.path.insert(0, str(ROOT))  # the checkout's tapcheck, whatever is installed

HEADER = """# Every command and option

Written by `scripts/cli_reference.py` from the commands' own help (`tapcheck COMMAND --help`
gives the same); do not edit by hand. What the commands are for, with examples, is in the
[README](../README.md) and [usage.md](usage.md).
"""


def _prose(text: str) -> str:
    """Help text as Markdown shows it: ``<out>`` is a placeholder, not an HTML tag."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cell(text: str) -> str:
    """One table cell: one line, pipes escaped."""
    return _prose(" ".join(text.split())).replace("|", "\\|")


def _command(name: str, command: click.Command, parent: click.Context) -> list[str]:
    ctx = click.Context(command, info_name=name, parent=parent)
    usage = command.collect_usage_pieces(ctx)
    lines = [f"## `tapcheck {name}`", "", "```", f"tapcheck {name} {' '.join(usage)}", "```", ""]
    lines += [_prose(inspect.cleandoc(command.help or "").replace("\b\n", "")), ""]
    # every command has --help; the global table says it once
    rows = [r for p in command.get_params(ctx) if p.name != "help"
            and (r := p.get_help_record(ctx)) is not None]
    if rows:
        lines += ["| option | what it does |", "| --- | --- |"]
        lines += [f"| `{_cell(opts)}` | {_cell(what)} |" for opts, what in rows]
        lines.append("")
    return lines


def render() -> str:
    """The whole of docs/cli.md."""
    from tapcheck.cli import cli

    # the commands' own settings: -h beside --help
    top = click.Context(cli, info_name="tapcheck", **cli.context_settings)
    lines = [HEADER, "```", "tapcheck [--version] [--debug] COMMAND [OPTIONS] [ARGS]...", "```", ""]
    lines += ["| global option | what it does |", "| --- | --- |"]
    lines += [f"| `{_cell(o)}` | {_cell(w)} |" for p in cli.get_params(top)
              if (r := p.get_help_record(top)) is not None for o, w in [r]]
    lines.append("")
    for name in cli.list_commands(top):
        lines += _command(name, cli.get_command(top, name), top)
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if docs/cli.md differs from the commands")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT.relative_to(ROOT)} differs from the commands' help: run "
                  "python3 scripts/cli_reference.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
