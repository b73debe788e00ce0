"""The `explore` command: a thin shell over the Python API.

explore --platform v100 --budget 2GFLOPs     # search (the default subcommand)
explore score resnet18 --platform t4 --dtype fp16
explore report runs/NAME                      # rewrite a run's HTML/Markdown report
explore ablate bottlenecks                    # a grid of variants, compared (explore ablate --list)
explore platforms | explore spaces
"""

from __future__ import annotations

import argparse
import re
import signal
import sys
import threading
from collections.abc import Sequence
from typing import NoReturn

from explorer.cli import search, tools
from explorer.cli.common import SIGNAL, interrupted_by, on_sigint, on_sigterm
from explorer.search.workers import clear_stop
from explorer.spec.ops import short_repr
from explorer.units import printable


class Parser(argparse.ArgumentParser):
    """argparse with its errors as one line (no usage block), exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"explore: error: {message}; see `{self.prog} --help`\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="explore",
        description="Channel-pruning design-space explorer. FLOPs = 2 x MACs throughout. "
        "Without a subcommand, runs `search`.",
    )
    sub = parser.add_subparsers(dest="command")
    search.add_parsers(sub)
    tools.add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    commands = set(parser._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    if not argv or (argv[0] not in commands and argv[0] not in ("-h", "--help")):
        argv = ["search", *argv]
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a one-line usage error (2)
        return exc.code if isinstance(exc.code, int) else 2
    on_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, on_sigterm) if on_main else None  # a polite kill stops like Ctrl-C
    # Ctrl-C as Python's own handler, noted for the trial loops too; an ignored SIGINT stays ignored
    own_sigint = on_main and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    if own_sigint:
        signal.signal(signal.SIGINT, on_sigint)
    SIGNAL["name"] = "SIGINT"
    clear_stop()
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print(f"explore: {interrupted_by()}", file=sys.stderr)
        return 143 if SIGNAL["name"] == "SIGTERM" else 130
    except BrokenPipeError:  # output piped into `head`
        sys.stderr.close()
        return 0
    except (ValueError, OSError, RuntimeError) as exc:
        print(f"explore: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except ImportError as exc:  # e.g. a database driver for --storage
        print(
            f"explore: error: {one_line(exc)}; install it (for PostgreSQL: pip install 'psycopg[binary]')",
            file=sys.stderr,
        )
        return 2
    finally:
        if on_main:
            signal.signal(signal.SIGTERM, previous)
        if own_sigint:
            signal.signal(signal.SIGINT, signal.default_int_handler)


FLAGS = {
    "space": "--space",
    "platform": "--platform",
    "budget": "--budget",
    "params": "--params",
    "memory": "--memory",
    "latency": "--latency",
    "weights": "--weights",
    "data": "--data",
    "importance": "--importance",
    "target": "--target",
    "criterion": "--criterion",
    "dtype": "--dtype",
    "batch": "--batch",
    "traffic": "--traffic",
    "rounds": "--rounds",
    "latency_model": "--latency-model",
    "convention": "--convention",
    "keep": "--keep",
    "align": "--align",
    "floor": "--floor",
    "objective": "--objective",
    "sampler": "--sampler",
    "seed": "--seed",
    "trials": "--trials",
    "timeout_s": "--timeout",
    "study": "--study",
    "jobs": "--jobs",
    "worker": "--worker",
    "out": "--out",
    "report": "--report",
    "storage": "--storage",
    "peak_flops_per_s": "--peak",
    "bandwidth_bytes_per_s": "--bandwidth",
}
"""The flag of each library argument: library errors name their own arguments (`keep=...`), the CLI its flags."""
_ARGUMENT = re.compile(r"^(" + "|".join(FLAGS) + r")=|`(" + "|".join(FLAGS) + r")`")


SETTINGS_AS_FLAGS = {"`bottlenecks`=False": "--no-bottlenecks"}
"""Library settings a flag sets without a value."""


def to_flags(text: str) -> str:
    """'keep=(0.5, 2.0): ...; raise `budget`' -> '--keep (0.5, 2.0): ...; raise --budget': the argument a
    library error starts with, and any argument it names in backticks, become the flags that set them."""
    for setting, flag in SETTINGS_AS_FLAGS.items():
        text = text.replace(setting, flag)
    return _ARGUMENT.sub(lambda m: FLAGS[m.group(1)] + " " if m.group(1) else FLAGS[m.group(2)], text)


def one_line(exc: BaseException) -> str:
    """The message of `exc` on one line, arguments shown as flags. An OSError's first argument is
    its error number, so it is shown as its text and the file it names."""
    if isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror + (f": {short_repr(str(exc.filename), 80)}" if exc.filename else "")
    else:
        text = exc.args[0] if exc.args and isinstance(exc.args[0], str) else str(exc)
    return printable(to_flags(" ".join(str(text).split())))


if __name__ == "__main__":
    raise SystemExit(main())
