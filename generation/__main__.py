"""`python -m generation COMMAND ...`: the maintainer's command line.

Each command is a module of this package with a docstring (its help), ``add_arguments(parser)`` and
``main(args) -> int``. Adding a command is adding a module and a line in ``COMMANDS``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = {
    "run": "generation.run",
    "merge": "generation.merge",
    "validate": "generation.validate",
    "build-sample": "generation.sample",
    "publish": "generation.publish",
    "gallery": "generation.gallery",
}


def _summary(doc: str) -> str | None:
    """The docstring's first sentence (it may wrap over several lines)."""
    paragraph = " ".join(doc.split("\n\n")[0].split())
    return paragraph.split(". ")[0].rstrip(".") + "." if paragraph else None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m generation", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name != module_name:
                raise
            continue
        doc = (module.__doc__ or "").strip()
        sub = commands.add_parser(
            name, help=_summary(doc), description=doc,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(sub)
        sub.set_defaults(_main=module.main)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args._main(args)


if __name__ == "__main__":
    sys.exit(main())
