"""What ``tools/infer.py`` does: read files with one recognizer and print one line per file.

    code = infer(InferConfig(sources=["crops/"], media="image", checkpoint="best.onnx", json=True))

Images and audio take one path: the files of the media (``crnn_ocr.frontend.Media``) are listed,
``load_recognizer`` opens the model (a checkpoint, an export or a shipped model's name; it alone
decides the backend), ``Recognizer.read_files`` reads them in order, and each reading is printed:
``path<TAB>text<TAB>confidence`` (or a JSON object) for images, the transcript with word times
for audio (``crnn_ocr.speech``). Score models can also write what they read as MusicXML/MIDI
(``crnn_ocr.music``), image models draw their readings (``crnn_ocr.visualize``). A classifier or
tagger (``crnn_ocr.classify``; ``load_recognizer`` refuses it with ``WrongTask``) prints
``path<TAB>label<TAB>probability`` (a tagger: its labels over their thresholds), every class's
probability with ``json``, the ``top_k`` most probable classes with ``top_k``.

This module sits beside ``tools/``, above the core and the wings: it imports the speech and
music wings (lazily) to print their results; no other crnn_ocr module imports it.

Exit status: 0 every file was read; 1 some files could not be read (each named on stderr in one
line, every other file's line still printed) or a score reading is not valid music; 2 bad
arguments or a missing model, file or extra (``UsageError``, one line; see ``crnn_ocr.cli``), a
model of the other media, or a clip shorter than a classifier's minimum (named in one line, every
other file's line still printed).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from crnn_ocr.cli import UsageError, existing_file, expand_inputs, model_source
from crnn_ocr.decoding import DecodeResult
from crnn_ocr.extras import require
from crnn_ocr.frontend import media_named
from crnn_ocr.recognizer import Recognizer, load_recognizer
from crnn_ocr.tasks import WrongTask
from crnn_ocr.views import DEFAULT_VIEWS, check_frontend
from crnn_ocr.visualize import draw_readings, visualize_targets

PROGRESS_MIN_FILES = 64  # progress "auto": a bar for this many files or more
READS = {"image": ("text", "images"), "audio": ("speech", "audio (use --image)")}  # media -> default model kind, what it reads


@dataclass
class InferConfig:
    """``tools/infer.py``'s options (see its ``--help``)."""

    sources: list[str]  # files, folders or glob patterns
    media: str = "image"  # "image" or "audio"
    checkpoint: str | None = None
    model: str | None = None  # a shipped model's name
    preset: str | None = None  # "ppocr": read --checkpoint as a PaddleOCR recognizer
    alphabet: str | None = None  # a foreign model's character file (PaddleOCR dict)
    backend: str = "auto"
    lexicon: str | None = None
    no_lexicon: bool = False  # read a shipped closed-vocabulary model (spoken_digits) without its default lexicon
    lexicon_mode: str = "auto"
    max_edit_distance: int = 3
    beam: int = 1
    batch_size: int = 32
    precision: str = "fp32"
    threads: int | None = None
    workers: int = 4
    progress: str = "auto"  # "auto", "on", "off"
    json: bool = False
    visualize: str | None = None
    musicxml: str | None = None
    midi: str | None = None
    device: str | None = None
    top_k: int | None = None  # classifiers: print the k most probable classes
    key_lm: bool = False  # score models: beam search with the key-signature and bar prior (crnn_ocr.music.key_lm)
    adapt: bool = False  # re-estimate BatchNorm statistics on the inputs before reading them (crnn_ocr.adapt)
    views: bool = False  # read each image under crnn_ocr.views.DEFAULT_VIEWS and keep the reading they agree on
    recheck: bool = True  # the model's second look at unsure readings, if it has one (crnn_ocr.views.Recheck)


def infer(cfg: InferConfig) -> int:
    """Read every file ``cfg`` names and print one line per file to stdout; returns the exit status."""
    media = media_named(cfg.media)
    paths = expand_inputs(cfg.sources, media.extensions, media.name)
    for module in media.requires:
        require(module, f"--{media.name}")
    scores = bool(cfg.musicxml or cfg.midi)
    if cfg.visualize and media.name != "image":
        raise UsageError(f"--visualize draws image spans; it does not apply to --{media.name}")
    if cfg.views and media.name != "image":
        raise UsageError(f"--views: test-time views are for images; they do not apply to --{media.name}")
    if cfg.lexicon and cfg.no_lexicon:
        raise UsageError("--lexicon and --no-lexicon: give one of them")
    source = model_source(cfg.checkpoint, cfg.lexicon, "score" if scores else READS[media.name][0], model=cfg.model)
    targets = visualize_targets(cfg.visualize, paths) if cfg.visualize else {}
    if (cfg.preset or cfg.alphabet) and cfg.checkpoint is None:
        raise UsageError("--preset and --alphabet describe a foreign model: give its file with --checkpoint")
    if cfg.alphabet:
        existing_file(cfg.alphabet, "alphabet")
    try:
        rec = load_recognizer(source, backend=_backend(cfg, source), device=cfg.device, threads=cfg.threads, precision=cfg.precision,
                              preset=cfg.preset, alphabet=cfg.alphabet, recheck=cfg.recheck, beam_width=cfg.beam,
                              lexicon_mode=cfg.lexicon_mode, max_edit_distance=cfg.max_edit_distance,
                              # unless one is given (or --no-lexicon), a shipped closed-vocabulary model reads with its words
                              **({"lexicon": cfg.lexicon} if cfg.lexicon or cfg.no_lexicon else {}))
    except WrongTask:  # a classifier or tagger
        return classify(cfg, media.name, paths, source)
    if cfg.top_k:
        raise UsageError(f"--top-k: {source} is a {rec.kind} model (CTC); it applies to classifiers")
    if rec.frontend.media.name != media.name:
        raise UsageError(f"{source}: is a {rec.kind} model, it cannot read {READS[media.name][1]}")
    if cfg.views:  # else every file would be reported unreadable
        try:
            check_frontend(rec.frontend)
        except ValueError as e:
            raise UsageError(f"--views: {source}: {e}") from None
    if cfg.key_lm:
        if rec.kind != "score":
            raise UsageError(f"--key-lm: applies to score models; {source} is a {rec.kind} model")
        from crnn_ocr.decoding.decoder import CTCDecoder
        from crnn_ocr.music.key_lm import key_lm_decoder_options

        rec.decoder = CTCDecoder(rec.alphabet, lexicon=cfg.lexicon, lexicon_mode=cfg.lexicon_mode,
                                 max_edit_distance=cfg.max_edit_distance, **key_lm_decoder_options(cfg.beam))
    if scores and (rec.kind != "score" or len(paths) != 1):
        raise UsageError(f"--musicxml/--midi: need a score checkpoint (train.py --kind score) and one --image; "
                         f"got a {rec.kind} model and {len(paths)} images")
    if cfg.threads and rec.backend.uses_torch:
        import torch

        torch.set_num_threads(cfg.threads)  # process-wide; onnxruntime got them per session
    if cfg.precision == "bf16" and rec.backend.uses_torch:
        from crnn_ocr.torch_backend import SLOW_BF16, native_bf16

        if not native_bf16(rec.backend.device):
            sys.stderr.write(f"infer.py: warning: --precision bf16: {SLOW_BF16}\n")
    if cfg.adapt:
        adapt_to_inputs(rec, paths, source)
    line = _line_writer(rec, cfg.json)
    failed = FailedFiles()
    kept, last_text = [], ""
    with Progress(len(paths), media.name, cfg.progress, failed) as progress:
        for path, prepared, res in rec.read_files(paths, batch_size=cfg.batch_size, workers=cfg.workers, on_error=failed,
                                                  views=DEFAULT_VIEWS if cfg.views else None):
            sys.stdout.write(line(path, prepared, res) + "\n")
            if targets:
                kept.append((path, prepared, res))
            last_text = res.text
            progress.update()
    if targets:
        draw_readings(rec, kept, targets)
    if failed.count:
        return failed.finish(len(paths))
    if scores:
        return write_score_files(last_text, paths[0], cfg.musicxml, cfg.midi)
    return 0


def _line_writer(rec: Recognizer, as_json: bool) -> Callable[[str, np.ndarray, DecodeResult], str]:
    """What is printed for each reading, by the recognizer's media."""
    if rec.frontend.media.name == "audio":
        from crnn_ocr.speech import transcript, transcript_json, transcript_line

        audio_line = transcript_json if as_json else transcript_line
        return lambda path, features, res: audio_line(path, transcript(rec, res, features))
    if as_json:
        return lambda path, _, res: json.dumps(
            {"path": path, "text": res.text, "confidence": round(res.confidence, 6), "score": round(res.score, 6),
             "token_ids": list(res.token_ids), "spans": [list(s) for s in res.spans]}, ensure_ascii=False)
    return lambda path, _, res: f"{path}\t{res.text}\t{res.confidence:.4f}"


def classify(cfg: InferConfig, media: str, paths: list[str], source: str) -> int:
    """Classify or tag every file with a classifier (``crnn_ocr.classify``): one line per file."""
    from crnn_ocr.classify.reading import ClipTooShort, load_classifier, result_json, result_line

    ctc_only = {"--lexicon": cfg.lexicon, "--no-lexicon": cfg.no_lexicon, "--beam": cfg.beam != 1, "--visualize": cfg.visualize, "--musicxml": cfg.musicxml,
                "--midi": cfg.midi, "--precision": cfg.precision != "fp32", "--key-lm": cfg.key_lm,
                "--views": cfg.views}
    if any(ctc_only.values()):
        raise UsageError(f"{', '.join(k for k, v in ctc_only.items() if v)}: apply to CTC models; {source} is a classifier")
    clf = load_classifier(source, backend=_backend(cfg, source), device=cfg.device, threads=cfg.threads)
    if cfg.threads and clf.backend.uses_torch:
        import torch

        torch.set_num_threads(cfg.threads)
    if clf.frontend.media.name != media:
        raise UsageError(f"{source}: is a {clf.kind} model of {clf.frontend.media.name}, it cannot read {'images' if media == 'image' else 'audio'} "
                         f"(give --{clf.frontend.media.name} files)")
    if cfg.adapt:
        adapt_to_inputs(clf, paths, source)
    write = result_json if cfg.json else result_line
    failed, too_short = FailedFiles(), []

    def on_error(path: str, error: ValueError) -> None:
        if isinstance(error, ClipTooShort):  # a usage error, not a bad file: exit 2
            too_short.append(path)
            sys.stderr.write(f"infer.py: error: {error}\n")
        else:
            failed(path, str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__)

    with Progress(len(paths), media, cfg.progress, failed) as progress:
        for path, result in clf.classify_files(paths, batch_size=cfg.batch_size, workers=cfg.workers, on_error=on_error):
            sys.stdout.write(write(path, result, cfg.top_k, multilabel=clf.multilabel) + "\n")
            progress.update()
    if too_short:
        return 2
    return failed.finish(len(paths)) if failed.count else 0


def _backend(cfg: InferConfig, source: str) -> str:
    """The backend to ask for: ``--adapt`` needs torch, so "auto" means torch there unless the file is ONNX."""
    if cfg.adapt and cfg.backend == "auto" and not str(source).lower().endswith(".onnx"):
        return "torch"
    return cfg.backend


def adapt_to_inputs(reader, paths: list[str], source: str) -> None:
    """``--adapt``: the reader's BatchNorm statistics re-estimated on every input that prepares
    (the others are named when they are read); one line on stderr. ``UsageError`` for a reader
    that cannot adapt (an ONNX model) or when no input prepares."""
    if not reader.backend.uses_torch:
        raise UsageError(f"--adapt: {source} runs in {reader.backend.name}; adapting needs the torch backend (a .pt checkpoint)")
    from crnn_ocr.adapt import adapt_to_files  # imports torch

    try:
        layers, used = adapt_to_files(reader, paths)  # an unreadable file is reported when it is read
    except ValueError as e:
        raise UsageError(f"--adapt: {e}") from None
    sys.stderr.write(f"infer.py: adapted {layers} BatchNorm layers to {used} inputs\n")


class FailedFiles:
    """``on_error`` for ``read_files``: names each unreadable file on stderr at once, counts them."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, path, message: str) -> None:
        self.count += 1
        sys.stderr.write(f"infer.py: skipped {message if str(path) in message else f'{path}: {message}'}\n")

    def finish(self, total: int) -> int:
        if total > 1:
            sys.stderr.write(f"infer.py: {self.count} of {total} files could not be read\n")
        return 1


class Progress:
    """A tqdm bar on stderr (``mode`` "on", or "auto" for ``PROGRESS_MIN_FILES`` files or more) and,
    at the end, how many files were read per second."""

    def __init__(self, total: int, media: str, mode: str, failed: FailedFiles) -> None:
        self.total, self.noun, self.failed = total, "images" if media == "image" else "files", failed
        self.bar = None
        if mode == "on" or (mode == "auto" and total >= PROGRESS_MIN_FILES):
            from tqdm import tqdm  # only with a bar: the onnx deployment imports no tqdm

            self.bar = tqdm(total=total, unit="img" if media == "image" else "file", file=sys.stderr, dynamic_ncols=True)

    def __enter__(self) -> Progress:
        self.start = time.perf_counter()
        return self

    def update(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def __exit__(self, *exc) -> None:
        if self.bar is None:
            return
        self.bar.close()
        if exc[0] is None:
            read, elapsed = self.total - self.failed.count, time.perf_counter() - self.start
            sys.stderr.write(f"infer.py: read {read} {self.noun} in {elapsed:.2f} s ({read / elapsed:.1f} {self.noun}/s)\n")


def write_score_files(tokens: str, path: str, musicxml: str | None, midi: str | None) -> int:
    """Write a read semantic sequence as MusicXML/MIDI; an invalid one is reported (exit 1)."""
    from crnn_ocr.music import InvalidSequence, write_score

    try:
        write_score(tokens, musicxml=musicxml, midi=midi)
    except InvalidSequence as e:
        sys.stderr.write(f"infer.py: {path}: the reading is not valid music, no score written:\n")
        for issue in e.issues:
            sys.stderr.write(f"  {issue}\n")
        return 1
    except ImportError as e:
        raise UsageError(f"--musicxml/--midi need music21 (pip install 'crnn_ocr[music]'): {e}") from None
    for target in (musicxml, midi):
        if target:
            sys.stderr.write(f"infer.py: wrote {target}\n")
    return 0
