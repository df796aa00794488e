"""Shared plumbing for the thin CLIs in ``tools/``: one-line errors and exit code 2 on misuse."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from crnn_ocr.extras import MissingExtra


class UsageError(ValueError):
    """Bad input from the command line (a missing file, a wrong argument): exit code 2."""


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """``--help`` shows each option's default, unless it has none (None, False, []) or its help names it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default in (None, False, [], argparse.SUPPRESS) or "default" in text or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line (``prog: error: ...``) and exits with 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        sys.exit(2)


def run_cli(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None, *, prog: str | None = None) -> None:
    """Run ``main``; turn expected errors into one line on stderr (``prog: error: ...``) and exit code 2.

    ``ValueError`` (bad data or arguments, checkpoint errors), ``MissingExtra`` (an optional
    dependency the command needs, with the extra that installs it), and the file errors a wrong path
    gives (not found, permission denied, a directory or a file where the other was expected) are
    user errors; anything else is a bug and keeps its traceback. ``prog`` defaults to the
    script's file name.
    """
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")  # no libpng warning lines beside our one-line errors
    if prog is None:
        prog = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "crnn_ocr"
    try:
        code = main(argv)
    except KeyboardInterrupt:
        sys.stderr.write(f"{prog}: interrupted\n")
        sys.exit(130)
    except (ValueError, MissingExtra, FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError,
            NotADirectoryError) as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        sys.stderr.write(f"{prog}: error: {msg}\n")
        sys.exit(2)
    sys.exit(code or 0)


def existing_file(path: str, what: str = "file") -> str:
    """Return ``path`` if it is a readable file, else raise a one-line ``UsageError``."""
    if not os.path.exists(path):
        raise UsageError(f"{path}: {what} not found")
    if os.path.isdir(path):
        raise UsageError(f"{path}: is a directory, expected a {what}")
    if not os.access(path, os.R_OK):
        raise UsageError(f"{path}: {what} is not readable")
    return path


def model_source(checkpoint: str | None, lexicon: str | None, kind: str, *, model: str | None = None) -> str:
    """Check a CLI's ``--checkpoint``, ``--model`` (a shipped model's name) and ``--lexicon``
    files; returns the checkpoint path, or the name of the shipped model (``--model``, else the
    one for ``kind``) for ``load_recognizer`` to resolve. One-line ``UsageError`` for anything missing."""
    from crnn_ocr.pretrained import default_model, pretrained_path

    if model is not None and checkpoint is not None:
        raise UsageError("--model and --checkpoint: give one of them")
    if checkpoint is None:
        try:
            checkpoint = model or default_model(kind)
            existing_file(str(pretrained_path(checkpoint)), "checkpoint")
        except ValueError as e:
            raise UsageError(f"--model {model}: {e}" if model else f"--checkpoint: none given and {e}") from None
    else:
        existing_file(checkpoint, "checkpoint")
    if lexicon:
        existing_file(lexicon, "lexicon")
    return checkpoint


def model_files(checkpoint: str | None, lexicon: str | None, kind: str, *, model: str | None = None) -> str:
    """``model_source``, with a shipped model's name replaced by its checkpoint file (PyTorch)."""
    from crnn_ocr.pretrained import pretrained_path

    source = model_source(checkpoint, lexicon, kind, model=model)
    return source if checkpoint is not None else str(pretrained_path(source))


def expand_inputs(patterns: list[str], extensions: tuple[str, ...], what: str = "image") -> list[str]:
    """Files named by ``patterns``: files as given, folders (their files with ``extensions``, e.g.
    ``preprocessing.IMAGE_EXTENSIONS``, sorted) and glob patterns. ``UsageError`` for a name that
    matches nothing."""
    import glob

    out: list[str] = []
    for pat in patterns:
        if os.path.isdir(pat):
            found = sorted(os.path.join(pat, f) for f in os.listdir(pat) if f.lower().endswith(extensions))
            if not found:
                raise UsageError(f"{pat}: folder holds no {what} files ({', '.join(extensions)})")
            out += found
        elif os.path.exists(pat):
            out.append(existing_file(pat, what))
        elif glob.has_magic(pat):
            found = sorted(p for p in glob.glob(pat, recursive=True) if os.path.isfile(p))
            if not found:
                raise UsageError(f"{pat}: no files match")
            out += found
        else:
            raise UsageError(f"{pat}: {what} not found")
    return out
