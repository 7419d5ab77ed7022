"""`python -m generation COMMAND ...`: the maintainer's command line.

Each command is a module of this package with a docstring (its help), ``add_arguments(parser)`` and
``main(args) -> int``. Adding a command is adding a module and a line in ``COMMANDS``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

COMMANDS = {
    "run": "generation.run",
    "plan": "generation.plan",
    "merge": "generation.release.merge",
    "validate": "generation.release.validate",
    "build-sample": "generation.sample",
    "publish": "generation.release.publish",
    "gallery": "generation.gallery",
}
RELEASE_COMMANDS = ("merge", "validate", "build-sample", "publish")  # these take --quiet / --verbose


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
        if name in RELEASE_COMMANDS:
            verbosity = sub.add_mutually_exclusive_group()
            verbosity.add_argument("--quiet", action="store_true", help="errors and warnings only, no progress bars")
            verbosity.add_argument("--verbose", action="store_true", help="debug messages too")
        sub.set_defaults(_main=module.main)
    return parser


def configure_logging(quiet: bool = False, verbose: bool = False) -> None:
    """Library modules log through `logging`; the command line shows their messages on stderr. --quiet keeps
    warnings and errors and turns the progress bars off, --verbose adds debug messages."""
    logging.basicConfig(format="%(levelname)s: %(message)s", stream=sys.stderr, level=logging.WARNING)
    for name in ("generation", "rms_dataset"):  # our own notes; other libraries' only from WARNING up
        logging.getLogger(name).setLevel(logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO)
    if quiet:
        import datasets
        from huggingface_hub.utils import disable_progress_bars

        datasets.disable_progress_bars()
        disable_progress_bars()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(getattr(args, "quiet", False), getattr(args, "verbose", False))
    return args._main(args)


if __name__ == "__main__":
    sys.exit(main())
