import pytest

from crnn_ocr.metrics import compute_metrics, normalize_alnum


def test_alnum_protocol():
    assert normalize_alnum("Hello, World-2!") == "helloworld2"


def test_metrics_exact_values():
    m = compute_metrics(["hello", "World", "abc", ""], ["hello", "world!", "abd", "xy"])
    assert m.count == 4
    assert m.word_accuracy == 0.25
    assert m.word_accuracy_alnum == 0.5  # "World" == "world!" under the protocol
    # edits: 0 + 2 (W->w, missing !) + 1 + 2 = 5 over 5 + 6 + 3 + 2 = 16 reference characters
    assert m.cer == pytest.approx(5 / 16)
    assert m.one_minus_ned == pytest.approx((1 + (1 - 2 / 6) + (1 - 1 / 3) + 0) / 4)


def test_token_metrics():
    m = compute_metrics(["clef-G2 note-C4 barline"], ["clef-G2 note-D4 barline"], tokenize=str.split)
    assert m.cer == pytest.approx(1 / 3)


def test_length_mismatch():
    with pytest.raises(ValueError, match="2 predictions for 1 references"):
        compute_metrics(["a", "b"], ["a"])
