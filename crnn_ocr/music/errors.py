"""Where a score reading's errors come from: the symbol error rate split by what went wrong.

    >>> breakdown("clef-G2 note-C5_quarter barline".split(), "clef-G2 note-D5_quarter barline".split())
    {'pitch': 1}

The reading and the reference are aligned token by token (a Levenshtein alignment with as few
edits as the token edit distance of the symbol error rate, and among those the one that sets
tokens against tokens of their own kind), and each edit is named:

* ``pitch``: a note (or grace note) read with the right duration, dots and fermata but another
  pitch;
* ``duration``: a note or rest read at the right pitch (for notes) with another duration, dots
  or fermata;
* ``pitch+duration``: a note read with both wrong;
* otherwise the kind of the reference token (a substitution or deletion) or of the read token (an
  insertion): ``note``, ``gracenote``, ``rest``, ``multirest``, ``clef``, ``key``, ``time``,
  ``barline``, ``tie``, ``unknown`` (a token outside the grammar).

``pitch_offset(hyp, ref)`` says how far a ``pitch`` error is from the truth: ``accidental``
(the right line or space, another alteration: what the key signature or an accidental decides),
``step`` (one line or space off), ``2-3 steps``, ``octave`` or ``other``.

``pitchless(tokens)`` maps each note to its kind and duration only: the edit distance of two
pitchless sequences is the symbol error with pitch ignored. Standard library only (and
``crnn_ocr.music.semantic``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from crnn_ocr.music.semantic import diatonic_index

CATEGORIES = ("pitch", "duration", "pitch+duration", "note", "gracenote", "rest", "multirest", "clef", "key", "time",
              "barline", "tie", "unknown")
_KIND = {"note": "note", "gracenote": "gracenote", "rest": "rest", "multirest": "multirest", "clef": "clef",
         "keySignature": "key", "timeSignature": "time"}


def token_kind(token: str) -> str:
    """The category of one token (``note``, ``rest``, ``clef``, ``key``, ``time``, ``barline``, ...)."""
    if token in ("barline", "tie"):
        return token
    return _KIND.get(token.partition("-")[0], "unknown")


def _split_note(token: str) -> tuple[str, str, str]:
    """``note-C#5_quarter._fermata`` -> (kind, pitch, value); a rest has pitch ``""``."""
    kind, _, body = token.partition("-")
    if kind == "rest":
        return kind, "", body
    pitch, _, value = body.partition("_")
    return kind, pitch, value


def classify_substitution(hyp: str, ref: str) -> str:
    """The name of the error ``ref`` read as ``hyp`` (``hyp != ref``)."""
    kind = token_kind(ref)
    if kind in ("note", "gracenote", "rest") and token_kind(hyp) == kind:
        _, hp, hv = _split_note(hyp)
        _, rp, rv = _split_note(ref)
        if hv == rv:
            return "pitch"
        return "duration" if hp == rp else "pitch+duration"
    return kind


def _penalty(h: str, r: str) -> int:
    """Tie-break among alignments of equal edit count: a substitution within a kind (a note for
    a note) costs 0, across kinds 2, an insertion or deletion 1."""
    if h == r:
        return 0
    return 0 if token_kind(h) == token_kind(r) else 2


_EDIT = 1 << 20  # one edit outweighs every tie-break penalty of a sequence


def align(hyp: Sequence[str], ref: Sequence[str]) -> list[tuple[str | None, str | None]]:
    """A minimal-edit alignment as (read, reference) pairs: ``(h, None)`` an insertion,
    ``(None, r)`` a deletion, ``(h, r)`` a match or substitution. Among alignments with as few
    edits, the one pairing tokens of the same kind is chosen (a misread note is set against the
    note it stands for, not against the time signature beside it)."""
    n, m = len(hyp), len(ref)
    gap = _EDIT + 1
    d = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(1, n + 1):
        d[i][0] = i * gap
    for j in range(1, m + 1):
        d[0][j] = j * gap
    for i in range(1, n + 1):
        hi, row, prev = hyp[i - 1], d[i], d[i - 1]
        for j in range(1, m + 1):
            rj = ref[j - 1]
            sub = prev[j - 1] + (0 if hi == rj else _EDIT + _penalty(hi, rj))
            row[j] = min(sub, prev[j] + gap, row[j - 1] + gap)
    out: list[tuple[str | None, str | None]] = []
    i, j = n, m
    while i or j:
        if i and j and d[i][j] == d[i - 1][j - 1] + (0 if hyp[i - 1] == ref[j - 1] else
                                                      _EDIT + _penalty(hyp[i - 1], ref[j - 1])):
            out.append((hyp[i - 1], ref[j - 1]))
            i, j = i - 1, j - 1
        elif i and d[i][j] == d[i - 1][j] + gap:
            out.append((hyp[i - 1], None))
            i -= 1
        else:
            out.append((None, ref[j - 1]))
            j -= 1
    return out[::-1]


def breakdown(hyp: Sequence[str], ref: Sequence[str]) -> dict[str, int]:
    """Edits of reading ``hyp`` for ``ref`` by category (only the categories that occur); their
    sum is the token edit distance."""
    counts: Counter[str] = Counter()
    for h, r in align(hyp, ref):
        if h == r:
            continue
        if h is None:
            counts[token_kind(r)] += 1  # type: ignore[arg-type]
        elif r is None:
            counts[token_kind(h)] += 1
        else:
            counts[classify_substitution(h, r)] += 1
    return dict(counts)


PITCH_OFFSETS = ("accidental", "step", "2-3 steps", "octave", "other")


def pitch_offset(hyp: str, ref: str) -> str:
    """How far the pitch of note ``hyp`` is from that of note ``ref`` (one of ``PITCH_OFFSETS``)."""
    try:
        steps = abs(diatonic_index(_split_note(hyp)[1]) - diatonic_index(_split_note(ref)[1]))
    except ValueError:  # a token outside the grammar
        return "other"
    if steps == 0:
        return "accidental"
    return {1: "step", 2: "2-3 steps", 3: "2-3 steps", 7: "octave"}.get(steps, "other")


def pitch_offsets(hyp: Sequence[str], ref: Sequence[str]) -> dict[str, int]:
    """The ``pitch`` and ``pitch+duration`` edits of reading ``hyp`` for ``ref`` by ``pitch_offset``."""
    counts: Counter[str] = Counter()
    for h, r in align(hyp, ref):
        if h is not None and r is not None and h != r and classify_substitution(h, r) in ("pitch", "pitch+duration"):
            counts[pitch_offset(h, r)] += 1
    return dict(counts)


def pitchless(tokens: Sequence[str]) -> list[str]:
    """Notes and grace notes without their pitch (``note-C5_quarter`` -> ``note_quarter``)."""
    out = []
    for t in tokens:
        kind = t.partition("-")[0]
        if kind in ("note", "gracenote"):
            t = f"{kind}_{_split_note(t)[2]}"
        out.append(t)
    return out
