"""The alphabet: symbols <-> ids, the blank, presets, files and label errors."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crnn_ocr.alphabet import BLANK, PRESETS, Alphabet, ctc_min_frames


def test_blank_and_ids():
    a = Alphabet("abc")
    assert (BLANK, a.blank, a.num_classes) == (0, 0, 4)
    assert [a.id_of(s) for s in "abc"] == [1, 2, 3]
    assert [a.symbol_of(i) for i in range(4)] == ["", "a", "b", "c"]
    with pytest.raises(ValueError, match="outside the alphabet"):
        a.symbol_of(4)
    with pytest.raises(KeyError):
        a.id_of("z")


def test_encode_decode_characters():
    a = Alphabet(string.ascii_lowercase + " ")
    ids = a.encode("hello world")
    assert ids[:3] == [8, 5, 12] and len(ids) == 11
    assert a.decode(ids) == "hello world"
    assert a.decode([0, 8, 0, 5]) == "he"  # blanks dropped, no collapsing
    assert a.decode([8, 8]) == "hh"
    assert not a.is_tokenized and a.separator == ""


def test_unknown_symbol_names_symbol_and_position():
    a = Alphabet.preset("digits")
    with pytest.raises(ValueError, match=r"symbol 'x' at position 2 of label '12x4' is not in the alphabet"):
        a.encode("12x4")
    assert a.try_encode("12x4") is None
    assert a.try_encode("124") == [2, 3, 5]


def test_tokens():
    music = Alphabet(["clef-G2", "note-C4_quarter", "barline"])
    assert music.is_tokenized and music.separator == " "
    assert music.encode("clef-G2 note-C4_quarter  barline") == [1, 2, 3]
    assert music.encode(["barline", "clef-G2"]) == [3, 1]
    assert music.decode([1, 0, 2]) == "clef-G2 note-C4_quarter"
    assert music.tokenize("clef-G2 barline") == ["clef-G2", "barline"]
    with pytest.raises(ValueError, match=r"symbol 'note-X' at position 1"):
        music.encode("clef-G2 note-X")
    words = Alphabet(["a", "b"], separator=" ")
    assert words.is_tokenized and words.encode("a b a") == [1, 2, 1]


def test_presets():
    assert Alphabet.preset("digits").symbols == tuple("0123456789")
    alnum = Alphabet.preset("alphanumeric")
    assert alnum.num_classes == 37 and alnum.ignore_case
    assert alnum.encode("AbC") == alnum.encode("abc")
    assert Alphabet.preset("alphanumeric_cased").num_classes == 63
    printable = Alphabet.preset("printable")
    assert printable.num_classes == 96 and " " in printable and "~" in printable
    assert set(PRESETS) == {"digits", "alphanumeric", "alphanumeric_cased", "printable"}
    with pytest.raises(ValueError, match="unknown alphabet preset"):
        Alphabet.preset("klingon")


def test_file_round_trip_and_resolve(tmp_path):
    for a in (Alphabet.preset("printable"), Alphabet(["clef-G2", "note-C4", "barline"]), Alphabet("αβγ😀")):
        path = tmp_path / "alphabet.txt"
        a.save(path)
        back = Alphabet.from_file(path, separator=a.separator)
        assert back.symbols == a.symbols
        assert Alphabet.from_dict(a.to_dict()) == a
    assert Alphabet.resolve("digits") == Alphabet.preset("digits")
    assert Alphabet.resolve(str(path)).symbols == Alphabet("αβγ😀").symbols
    a = Alphabet("ab")
    assert Alphabet.resolve(a) is a
    with pytest.raises(ValueError, match="neither a preset"):
        Alphabet.resolve(tmp_path / "missing.txt")


def test_file_errors(tmp_path):
    dup = tmp_path / "dup.txt"
    dup.write_text("a\nb\na\n", encoding="utf-8")
    with pytest.raises(ValueError, match="listed twice"):
        Alphabet.from_file(dup)
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no symbols"):
        Alphabet.from_file(empty)
    with pytest.raises(ValueError, match="cannot read"):
        Alphabet.from_file(tmp_path / "missing.txt")


def test_bad_alphabets():
    with pytest.raises(ValueError, match="at least one symbol"):
        Alphabet("")
    with pytest.raises(ValueError, match="appears twice"):
        Alphabet("aba")
    with pytest.raises(ValueError, match="lower-case"):
        Alphabet("aB", ignore_case=True)
    with pytest.raises(ValueError, match="separator"):
        Alphabet(["a b", "c"])
    with pytest.raises(ValueError, match="single-character"):
        Alphabet(["ab", "c"], separator="")


def test_from_labels_and_min_frames():
    a = Alphabet.from_labels(["cab", "bad"])
    assert a.symbols == ("a", "b", "c", "d")
    t = Alphabet.from_labels(["x y", "y z"], separator=" ")
    assert t.symbols == ("x", "y", "z")
    assert ctc_min_frames([1, 1, 2]) == 4 and ctc_min_frames([]) == 0


@settings(max_examples=100, deadline=None)
@given(label=st.text(alphabet=string.ascii_letters + string.digits, max_size=30))
def test_encode_decode_round_trip(label):
    cased = Alphabet.preset("alphanumeric_cased")
    assert cased.decode(cased.encode(label)) == label
    folded = Alphabet.preset("alphanumeric")
    assert folded.decode(folded.encode(label)) == label.lower()
    assert len(folded.encode(label)) == len(label)


@settings(max_examples=60, deadline=None)
@given(tokens=st.lists(st.sampled_from(["clef-G2", "note-C4", "rest", "barline"]), max_size=12))
def test_token_round_trip(tokens):
    music = Alphabet(["clef-G2", "note-C4", "rest", "barline"])
    ids = music.encode(" ".join(tokens))
    assert music.encode(tokens) == ids
    assert music.decode(ids) == " ".join(tokens)
