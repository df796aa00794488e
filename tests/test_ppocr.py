"""PaddleOCR (PP-OCR) recognizers read through crnn_ocr: detection, PaddleOCR's preprocessing and
greedy decoding reproduced, a reading that does not depend on its batch, every decoding feature
on an 18,710-class-like alphabet, and one clear line for an ONNX file that is not a CTC recognizer.

The tests build a tiny PP-OCR-like model in tmp_path (input (N, 3, 48, W), softmax output
(N, T, 5002), a ``character`` metadata key of 5,000 symbols); the ones against the real
PP-OCRv6 small model run only where its file is (``CRNN_OCR_PPOCR_MODEL`` or the known path).
"""

from __future__ import annotations

import json
import math
import os
import string
import subprocess
import sys
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from conftest import ROOT, WORDS, render_word

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from crnn_ocr.alphabet import Alphabet  # noqa: E402
from crnn_ocr.decoding import CharNgramLM, CTCDecoder, batch_ctc_log_likelihood, ctc_log_likelihood  # noqa: E402
from crnn_ocr.decoding.ctc import _beam, _prefix_beam_search, check_log_probs  # noqa: E402
from crnn_ocr.decoding.fusion import LexiconTrieScorer  # noqa: E402
from crnn_ocr.decoding.lexicon import Lexicon  # noqa: E402
from crnn_ocr.frontend import PaddleRecFrontend, frontend_from_dict  # noqa: E402
from crnn_ocr.metrics import normalize_alnum  # noqa: E402
from crnn_ocr.onnx_backend import OnnxModelError, probs_to_log_probs  # noqa: E402
from crnn_ocr.ppocr import fit_frames, ppocr_alphabet, read_character_file  # noqa: E402
from crnn_ocr.recognizer import Recognizer, load_recognizer  # noqa: E402

ENV = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "OMP_NUM_THREADS": "1"}
CHARS = list(string.ascii_letters + string.digits) + [chr(0x4E00 + i) for i in range(5000 - 62)]  # 5,000 symbols
REAL_MODEL = Path(os.environ.get("CRNN_OCR_PPOCR_MODEL", "/work/main/runs/teacher/PP-OCRv6_rec_small.onnx"))
REAL_CROPS = Path("/work/main/runs/iiit/dev.tsv")


# ------------------------------------------------------------------------------------ PaddleOCR's reference
# Transcribed from RapidOCR 3.10 (rapidocr/ch_ppocr_rec: TextRecognizer.resize_norm_img and
# CTCLabelDecode, Apache-2.0), itself PaddleOCR's tools/infer/predict_rec.py: the code to agree with.
def paddle_resize_norm_img(img: np.ndarray, max_wh_ratio: float, shape=(3, 48, 320)) -> np.ndarray:
    img_channel, img_height, img_width = shape
    img_width = int(img_height * max_wh_ratio)
    h, w = img.shape[:2]
    ratio = w / float(h)
    if math.ceil(img_height * ratio) > img_width:
        resized_w = img_width
    else:
        resized_w = int(math.ceil(img_height * ratio))
    resized_image = cv2.resize(img, (resized_w, img_height))
    resized_image = resized_image.astype("float32")
    resized_image = resized_image.transpose((2, 0, 1)) / 255
    resized_image -= 0.5
    resized_image /= 0.5
    padding_im = np.zeros((img_channel, img_height, img_width), dtype=np.float32)
    padding_im[:, :, 0:resized_w] = resized_image
    return padding_im


def paddle_batch(images_bgr: list[np.ndarray], shape=(3, 48, 320)) -> np.ndarray:
    """One batch as PaddleOCR builds it: every image padded to the batch's widest ratio."""
    max_wh_ratio = shape[2] / shape[1]
    for img in images_bgr:
        max_wh_ratio = max(max_wh_ratio, img.shape[1] * 1.0 / img.shape[0])
    return np.stack([paddle_resize_norm_img(img, max_wh_ratio, shape) for img in images_bgr]).astype(np.float32)


def paddle_greedy(preds: np.ndarray, character: list[str]) -> list[str]:
    """CTCLabelDecode: argmax, repeats removed, blank (0) dropped; character = ["blank", *chars, " "]."""
    texts = []
    for idx in preds.argmax(axis=2):
        selection = np.ones(len(idx), dtype=bool)
        selection[1:] = idx[1:] != idx[:-1]
        selection &= idx != 0
        texts.append("".join(character[i] for i in idx[selection]))
    return texts


def paddle_read_alone(session, images_bgr: list[np.ndarray], character: list[str]) -> tuple[list[str], list[np.ndarray]]:
    """PaddleOCR's reading of each image in a batch of its own (rec_batch_num = 1)."""
    name = session.get_inputs()[0].name
    preds = [session.run(None, {name: paddle_batch([img])})[0] for img in images_bgr]
    return [paddle_greedy(p, character)[0] for p in preds], [p[0] for p in preds]


# ------------------------------------------------------------------------------------ a tiny PP-OCR-like model
class TinyPaddleRec(torch.nn.Module):
    """(N, 3, 48, W) -> softmax (N, (W + 6) // 8, C), like a PP-OCR export. ``mix``: every frame also
    sees the mean of its row (padding included), as a PP-OCR model's attention does."""

    def __init__(self, num_classes: int, mix: bool = True) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 24, kernel_size=(48, 8), stride=(48, 8), padding=(0, 3))
        self.fc = torch.nn.Linear(24, num_classes)
        with torch.no_grad():
            self.fc.bias[0] += 0.8  # the blank often wins, as in a trained model
        self.mix = mix

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x).squeeze(2).transpose(1, 2)  # (N, T, 24)
        if self.mix:
            h = h + h.mean(dim=1, keepdim=True)
        return (20 * self.fc(torch.tanh(h))).softmax(-1)  # (N, T, C), peaky


def export_tiny(path: Path, *, mix: bool = True, characters: list[str] | None = CHARS, space: bool = True, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    model = TinyPaddleRec(len(CHARS) + 1 + space, mix).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(1, 3, 48, 320),), str(path), input_names=["x"], output_names=["softmax_0.tmp_0"],
                          dynamic_axes={"x": {0: "n", 3: "w"}, "softmax_0.tmp_0": {0: "n", 1: "t"}}, dynamo=False)
    if characters is not None:
        m = onnx.load(str(path))
        entry = m.metadata_props.add()
        entry.key, entry.value = "character", "\n".join(characters)
        onnx.save(m, str(path))
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("ppocr")
    images = []
    for i, w in enumerate([*WORDS[:6], "a", "internationalization recognition"]):
        img = cv2.cvtColor(render_word(w, height=32 + 8 * (i % 3)), cv2.COLOR_GRAY2BGR)
        img[:, :, i % 3] = 255 - img[:, :, i % 3] // 2  # colour, so that the channel order matters
        cv2.imwrite(str(tmp / f"{i}_{w}.png"), img)
        images.append(tmp / f"{i}_{w}.png")
    return export_tiny(tmp / "tiny_rec.onnx"), images


# ------------------------------------------------------------------------------------ alphabet, frames, front-end
def test_alphabet_has_the_blank_at_0_and_a_space_when_the_model_has_one(tmp_path):
    a = ppocr_alphabet(["a", "b", "c"], 5)
    assert a.symbols == ("a", "b", "c", " ") and a.blank == 0 and a.num_classes == 5 and not a.ignore_case
    assert ppocr_alphabet(["a", "b", "c"], 4).symbols == ("a", "b", "c")
    assert ppocr_alphabet(CHARS, len(CHARS) + 2).num_classes == 5002  # large alphabets are fine
    with pytest.raises(ValueError, match=r"m.onnx: the model has 9 classes but its character list 3 symbols"):
        ppocr_alphabet(["a", "b", "c"], 9, "m.onnx")
    with pytest.raises(ValueError, match="symbol 'a' is listed twice"):
        ppocr_alphabet(["a", "b", "a"], 4)
    (tmp_path / "dict.txt").write_text("a\n \nb\r\n", encoding="utf-8")  # PaddleOCR keeps a line holding a space
    assert read_character_file(tmp_path / "dict.txt") == ["a", " ", "b"]


def test_frames_are_measured():
    for stride, offset in ((8, 3), (8, 6), (4, 0), (4, 3), (16, 15)):
        assert fit_frames(lambda w, s=stride, o=offset: (w + o) // s) == (stride, offset)
    with pytest.raises(ValueError, match="not \\(W \\+ offset\\) // 8"):
        fit_frames(lambda w: w // 8 + (w < 200))
    with pytest.raises(ValueError, match="do not grow evenly"):
        fit_frames(lambda w: 25)


@pytest.mark.parametrize("size", [(32, 20), (48, 100), (31, 250), (40, 600), (17, 1000), (64, 9)])
def test_frontend_gives_paddleocrs_pixels(size):
    """Our prepare + to_batch equals PaddleOCR's resize_norm_img of the BGR image read alone, bit for bit."""
    rng = np.random.default_rng(size[1])
    rgb = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    fe = PaddleRecFrontend()
    ours = fe.to_batch([fe.prepare(rgb)])
    ref = paddle_batch([rgb[:, :, ::-1]])
    assert ours.shape == ref.shape and ours.shape[3] >= 320 and np.array_equal(ours, ref)
    assert frontend_from_dict(json.loads(json.dumps(fe.to_dict()))) == fe


# ------------------------------------------------------------------------------------ reading like PaddleOCR
def test_a_ppocr_file_is_detected_and_reads_as_paddleocr_reads_it(tiny):
    path, images = tiny
    rec = load_recognizer(path, threads=1)
    assert isinstance(rec.frontend, PaddleRecFrontend) and rec.kind == "text" and rec.backend.scores == "probs"
    assert rec.alphabet.num_classes == 5002 and rec.alphabet.symbols[-1] == " " and rec.frame_stride == 8
    assert [rec.output_length(w) for w in (320, 321, 322)] == [40, 40, 41]  # (W + 6) // 8, measured
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    texts, preds = paddle_read_alone(session, [cv2.imread(str(p)) for p in images], ["blank", *CHARS, " "])
    results = rec.read_batch(images)
    assert [r.text for r in results] == texts
    for p, ref in zip(images, preds):
        ours = rec.backend.logits(rec.frontend.to_batch([rec.prepare(p)]))[0]  # the model's probabilities
        assert ours.shape == ref.shape and np.abs(ours - ref).max() <= 1e-4
    lp, lengths = rec.log_probs([rec.prepare(images[0])])
    assert lengths[0] == lp.shape[1] == 40  # a narrow word: every frame of its 320 padded columns is decoded
    check_log_probs(lp[0], 5002)  # normalized log-probabilities


def test_the_reading_does_not_depend_on_the_batch(tiny):
    """PaddleOCR pads a batch to its widest ratio, which changes a model with attention; our reader
    gives a model without masking only equal widths, so every input reads as it reads alone."""
    path, images = tiny
    rec = load_recognizer(path, threads=1)
    alone = [rec.read(p) for p in images]
    batched = rec.read_batch(images[::-1], batch_size=8)[::-1]
    assert [r.text for r in batched] == [r.text for r in alone]
    assert np.allclose([r.score for r in batched], [r.score for r in alone], atol=1e-4)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    bgr = [cv2.imread(str(p)) for p in images]
    padded = session.run(None, {"x": paddle_batch(bgr)})[0][0]  # image 0 padded to the widest image
    own = session.run(None, {"x": paddle_batch(bgr[:1])})[0][0]
    assert np.abs(padded[: own.shape[0]] - own).max() > 1e-3  # PaddleOCR's batching would have changed it


def test_probabilities_become_normalized_log_probabilities():
    p = np.array([[[0.5, 0.5, 0.0], [1.0 + 2e-5, 0.0, 0.0]]], dtype=np.float32)
    lp = probs_to_log_probs(p)
    assert np.isfinite(lp).all() and np.allclose(np.exp(lp).sum(-1), 1, atol=1e-6)
    assert np.allclose(lp[0, 0, :2], np.log(0.5))


# ------------------------------------------------------------------------------------ decoding features, 5,002 classes
@pytest.fixture(scope="module")
def emissions(tiny):
    """Log-probs of the tiny model on the test images: (T, 5002) each."""
    path, images = tiny
    rec = load_recognizer(path, threads=1)
    out = []
    for p in images:
        lp, n = rec.log_probs([rec.prepare(p)])
        out.append(lp[0, : n[0]].astype(np.float64))
    return rec.alphabet, out


def test_beam_search_prunes_by_default_for_large_alphabets_only(emissions):
    alphabet, lps = emissions
    assert CTCDecoder(alphabet, beam_width=4).prune_log_prob == -10.0
    assert CTCDecoder(Alphabet.preset("printable"), beam_width=4).prune_log_prob is None
    assert CTCDecoder(alphabet, beam_width=4, prune_log_prob=None).prune_log_prob is None
    for lp in lps:
        for prune in (-10.0, -3.0):
            read = CTCDecoder(alphabet).decode(lp).text
            trie = Lexicon.build(["cat", "tree", CHARS[70] + CHARS[71], "a", read[:3], read], alphabet)
            for scorer in (None, LexiconTrieScorer(trie, alphabet)):
                # searching only the classes that reach the threshold is the pruned search itself
                assert _beam(lp, 5, prune, scorer) == _prefix_beam_search(lp, 5, prune, scorer)
        exact = CTCDecoder(alphabet, beam_width=8, prune_log_prob=None).decode(lp)
        pruned = CTCDecoder(alphabet, beam_width=8).decode(lp)
        assert pruned.score <= exact.score + 1e-9
        assert pruned.score == pytest.approx(ctc_log_likelihood(lp, pruned.token_ids))
        assert CTCDecoder(alphabet, beam_width=1).decode(lp).text == CTCDecoder(alphabet).decode(lp).text


def test_lexicons_trie_lm_and_hotwords_work_with_large_alphabets(emissions):
    alphabet, lps = emissions
    reads = [CTCDecoder(alphabet).decode(lp).text for lp in lps]
    words = ["cat", "Tree", "window", CHARS[70] + CHARS[71], "a b", *[w + "s" for w in WORDS], *reads[:4],
             *[r[:4] for r in reads[4:]]]
    words = [w for w in dict.fromkeys(words) if w]
    lexicon = Lexicon.build(words, alphabet)
    lm = CharNgramLM.train(words, order=3)
    for lp in lps:
        best = words[int(np.argmax(batch_ctc_log_likelihood(lp, [alphabet.encode(w) for w in words])))]
        assert CTCDecoder(alphabet, lexicon=lexicon).decode(lp).text == best  # exact: every word scored
        cand = CTCDecoder(alphabet, lexicon=lexicon, lexicon_mode="candidates").decode(lp)
        assert cand.text in words and cand.score == pytest.approx(ctc_log_likelihood(lp, cand.token_ids))
        trie = CTCDecoder(alphabet, lexicon=lexicon, lexicon_mode="trie", beam_width=8).decode(lp)
        assert trie.text == "" or all(w in words or w in ("a", "b") for w in trie.text.split(" "))
        fused = CTCDecoder(alphabet, lm=lm, alpha=0.5, beta=1.0, beam_width=8).decode(lp)
        assert fused.score == pytest.approx(ctc_log_likelihood(lp, fused.token_ids))  # the acoustic score
        hot = CTCDecoder(alphabet, hotwords=["window", reads[-1][:3]], beam_width=8).decode(lp)
        assert len(hot.spans) == len(hot.token_ids)


def test_long_lines_are_read_in_windows(tiny, tmp_path):
    """A model that sees only its columns (no mixing) reads a long line in windows as it reads it whole."""
    path = export_tiny(tmp_path / "local.onnx", mix=False, seed=1)
    line = np.concatenate([cv2.cvtColor(render_word(w, height=48), cv2.COLOR_GRAY2RGB) for w in WORDS * 2], axis=1)
    assert line.shape[1] > 1500
    whole = load_recognizer(path, threads=1)
    rec = Recognizer(whole.backend, PaddleRecFrontend(max_width=640), whole.decoder)
    prepared = rec.prepare(line)
    assert len(rec.windows(prepared.shape[1])) > 2 and whole.windows(prepared.shape[1]) == [(0, prepared.shape[1], 0, rec.output_length(prepared.shape[1]))]
    a, b = whole.read_prepared([prepared])[0], rec.read_prepared([prepared])[0]
    assert a.text == b.text and a.spans == b.spans and a.score == pytest.approx(b.score, abs=1e-3)
    assert max(e for _, e in b.spans) <= rec.output_length(prepared.shape[1])


# ------------------------------------------------------------------------------------ CLI and bad input
def run_tool(tool: str, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "tools" / tool), *map(str, args)], capture_output=True, text=True,
                          env=ENV, timeout=300)


def test_infer_and_evaluate_read_a_ppocr_file(tiny, tmp_path):
    path, images = tiny
    rec = load_recognizer(path, threads=1)
    r = run_tool("infer.py", "--image", *images, "--checkpoint", path, "--json", "--threads", 1, "--beam", 4,
                 "--visualize", tmp_path / "spans")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    beam = load_recognizer(path, threads=1, beam_width=4)
    assert [row["text"] for row in rows] == [res.text for res in beam.read_batch(images)]
    assert len(list((tmp_path / "spans").glob("*.png"))) == len(images)
    labels = tmp_path / "gt.tsv"
    labels.write_text("".join(f"{p}\t{res.text}\n" for p, res in zip(images, rec.read_batch(images))), encoding="utf-8")
    r = run_tool("evaluate.py", "--checkpoint", path, "--labels", labels, "--preset", "ppocr")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"{len(images)} samples: word accuracy 1.0000")


def test_a_file_without_characters_needs_an_alphabet(tiny, tmp_path):
    path, images = tiny
    bare = export_tiny(tmp_path / "bare.onnx", characters=None)
    with pytest.raises(OnnxModelError, match=r"bare.onnx: no character list: .*--alphabet"):
        load_recognizer(bare)
    r = run_tool("infer.py", "--image", images[0], "--checkpoint", bare)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert r.stderr.startswith(f"infer.py: error: {bare}: no character list")
    (tmp_path / "keys.txt").write_text("\n".join(CHARS) + "\n", encoding="utf-8")
    r = run_tool("infer.py", "--image", images[0], "--checkpoint", bare, "--preset", "ppocr", "--alphabet", tmp_path / "keys.txt")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\t")[1] == load_recognizer(path).read(images[0]).text
    with pytest.raises(OnnxModelError, match="bare.onnx: the model has 5002 classes but its character list 6 symbols"):
        load_recognizer(bare, alphabet=list("abcdef"))


def test_an_onnx_file_that_is_not_a_ctc_recognizer_gets_one_line(tmp_path, tiny):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(torch.nn.Linear(3, 2), (torch.zeros(1, 3),), str(tmp_path / "plain.onnx"), dynamo=False)
        torch.onnx.export(torch.nn.Conv2d(3, 4, 3), (torch.zeros(1, 3, 48, 64),), str(tmp_path / "conv.onnx"), dynamo=False,
                          input_names=["x"], output_names=["y"])
    with pytest.raises(OnnxModelError, match="plain.onnx: not a CTC recognizer: its input .* has rank 2, expected images"):
        load_recognizer(tmp_path / "plain.onnx")
    r = run_tool("infer.py", "--image", tiny[1][0], "--checkpoint", tmp_path / "conv.onnx", "--preset", "ppocr")
    assert r.returncode == 2 and "Traceback" not in r.stderr and r.stderr.count("\n") == 1
    assert r.stderr == f"infer.py: error: {tmp_path / 'conv.onnx'}: not a CTC recognizer: its output 'y' has rank 4, " \
                       "expected per-frame class scores (N, T, classes)\n"
    with pytest.raises(ValueError, match="runs on the onnx backend"):
        load_recognizer(tiny[0], backend="torch", preset="ppocr")
    with pytest.raises(OnnxModelError, match="unknown preset 'tesseract'"):
        load_recognizer(tiny[0], preset="tesseract")


# ------------------------------------------------------------------------------------ the real PP-OCRv6 small model
@pytest.mark.skipif(not REAL_MODEL.is_file() or not REAL_CROPS.is_file(), reason="PP-OCRv6_rec_small.onnx or the crops are absent")
def test_pp_ocrv6_small_reads_real_crops_as_paddleocr_does():
    rows = [line.split("\t") for line in REAL_CROPS.read_text(encoding="utf-8").splitlines()[:60]]
    paths = [p for p, _ in rows]
    rec = load_recognizer(REAL_MODEL, threads=1)
    session = rec.backend.session
    props = session.get_modelmeta().custom_metadata_map
    character = ["blank", *props["character"].splitlines(), " "]
    texts, preds = paddle_read_alone(session, [cv2.imread(p) for p in paths], character)
    assert [r.text for r in rec.read_batch(paths)] == texts
    for p, ref in zip(paths[:20], preds):
        ours = rec.backend.logits(rec.frontend.to_batch([rec.prepare(p)]))[0]
        assert np.abs(ours - ref).max() <= 1e-4
    assert sum(normalize_alnum(t) == normalize_alnum(w) for t, (_, w) in zip(texts, rows)) >= 54  # it reads real words


def test_a_ppocr_file_quantizes_to_int8(tiny, tmp_path):
    from crnn_ocr.deploy.export import ExportConfig, export

    path, images = tiny
    out = export(ExportConfig(checkpoint=str(path), int8=True, out=str(tmp_path / "tiny.int8.onnx")))
    fp32, int8 = load_recognizer(path, threads=1), load_recognizer(out, threads=1)
    assert int8.alphabet == fp32.alphabet and isinstance(int8.frontend, PaddleRecFrontend)
    ops = {n.op_type for n in onnx.load(str(out)).graph.node}
    assert "MatMulInteger" in ops or "DynamicQuantizeLinear" in ops
    a, b = (r.backend.logits(r.frontend.to_batch([r.prepare(images[3])]))[0] for r in (fp32, int8))
    assert (a.argmax(-1) == b.argmax(-1)).mean() >= 0.8
    with pytest.raises(ValueError, match="an ONNX model can only be quantized here"):
        export(ExportConfig(checkpoint=str(path), out=str(tmp_path / "x.onnx")))
