"""Bad input gets a ValueError that says what is wrong; odd but valid input decodes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crnn_ocr.alphabet import Alphabet
from crnn_ocr.decoding import CTCDecoder, batch_ctc_log_likelihood, ctc_log_likelihood, log_softmax

ABC = Alphabet("abc")
C = ABC.num_classes


def good(T: int = 5, seed: int = 0) -> np.ndarray:
    return log_softmax(np.random.default_rng(seed).normal(size=(T, C)))


@pytest.mark.parametrize("beam", [1, 4])
@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros(C), r"shape \(T, C\)"),
        (np.zeros((2, 3, C)), "decode_batch"),
        (np.zeros((3, C + 1)), "C=5 classes but the alphabet has 4"),
        (np.zeros((3, C - 1)), "C=3 classes"),
        (np.array([["a"] * C]), "numeric"),
    ],
)
def test_wrong_shape_or_type(beam, array, message):
    with pytest.raises(ValueError, match=message):
        CTCDecoder(ABC, beam_width=beam).decode(array)


@pytest.mark.parametrize("beam", [1, 4])
def test_nan_inf_probabilities_and_unnormalized(beam):
    dec = CTCDecoder(ABC, beam_width=beam)
    x = good()
    x[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"NaN \(first at frame 2, class 1\)"):
        dec.decode(x)
    x = good()
    x[3, 0] = np.inf
    with pytest.raises(ValueError, match=r"\+inf"):
        dec.decode(x)
    x = good()
    x[1] = -np.inf
    with pytest.raises(ValueError, match="frame 1 has no finite value"):
        dec.decode(x)
    with pytest.raises(ValueError, match="looks like probabilities"):
        dec.decode(np.exp(good()))
    with pytest.raises(ValueError, match="logits=True"):
        dec.decode(np.random.default_rng(0).normal(size=(4, C)) + 3)
    with pytest.raises(ValueError, match="not normalized"):
        dec.decode(good() - 1.0)
    # NaN is refused with logits=True as well; -inf log-probs are fine.
    x = good()
    x[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        dec.decode(x, logits=True)
    x = good()
    x[:, 2] = -np.inf
    x = log_softmax(x)
    assert 2 not in dec.decode(x).token_ids


def test_batch_errors_name_the_item():
    dec = CTCDecoder(ABC)
    batch = np.stack([good(), good()])
    batch[1, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"log_probs\[1\] contains NaN"):
        dec.decode_batch(batch)
    with pytest.raises(ValueError, match="one length per item"):
        dec.decode_batch(batch, lengths=[3])
    with pytest.raises(ValueError, match=r"lengths\[0\] = 9 is outside 0..5"):
        dec.decode_batch(batch, lengths=[9, 1])
    with pytest.raises(ValueError, match="integers"):
        dec.decode_batch(batch, lengths=[1.5, 1.0])
    with pytest.raises(ValueError, match=r"\(N, T, C\)"):
        dec.decode_batch(good())
    assert [r.text for r in dec.decode_batch(batch, lengths=[0, 0])] == ["", ""]


def test_bad_decoder_arguments():
    with pytest.raises(ValueError, match="beam_width"):
        CTCDecoder(ABC, beam_width=0)
    with pytest.raises(ValueError, match="lexicon_mode"):
        CTCDecoder(ABC, lexicon=["ab"], lexicon_mode="fuzzy")
    with pytest.raises(ValueError, match="max_edit_distance"):
        CTCDecoder(ABC, max_edit_distance=-1)
    with pytest.raises(ValueError, match="alpha"):
        CTCDecoder(ABC, alpha=float("nan"))
    with pytest.raises(ValueError, match="prune_log_prob"):
        CTCDecoder(ABC, prune_log_prob=1.0)
    with pytest.raises(ValueError, match="neither a preset"):
        CTCDecoder("no-such-alphabet")
    with pytest.raises(ValueError, match="alphabet must be"):
        CTCDecoder(["a", "b"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="lm must be"):
        CTCDecoder(ABC, lm=object())  # type: ignore[arg-type]


def test_forward_argument_errors():
    with pytest.raises(ValueError, match=r"id 4 at position 1 is outside 1..3"):
        ctc_log_likelihood(good(), [1, 4])
    with pytest.raises(ValueError, match="id 0"):
        batch_ctc_log_likelihood(good(), [[1], [0]])
    assert batch_ctc_log_likelihood(good(), []).shape == (0,)


@settings(max_examples=80, deadline=None)
@given(
    shape=st.lists(st.integers(0, 7), min_size=0, max_size=4),
    seed=st.integers(0, 2**32 - 1),
    poison=st.sampled_from([None, np.nan, np.inf, -np.inf, 1e300, -1e300]),
    logits=st.booleans(),
    beam=st.sampled_from([1, 3]),
)
def test_random_shapes_and_values_decode_or_raise_value_error(shape, seed, poison, logits, beam):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=shape) * 4
    if len(shape) >= 1 and shape[-1] == C and not logits:
        x = log_softmax(x)
    if poison is not None and x.size:
        x.flat[rng.integers(0, x.size)] = poison
    dec = CTCDecoder(ABC, beam_width=beam, lexicon=["ab", "ca"] if seed % 2 else None)
    try:
        res = dec.decode(x, logits=logits)
    except ValueError:
        return
    assert len(shape) == 2 and shape[1] == C
    assert 0.0 <= res.confidence <= 1.0 and not math.isnan(res.score)
    assert len(res.spans) == len(res.token_ids)
