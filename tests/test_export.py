"""Deployment: ONNX / TorchScript export parity, the torch-free onnxruntime backend, int8,
numpy preprocessing and batched file reading."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import cv2
import numpy as np
import pytest
import torch

from conftest import ROOT, render_word

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from crnn_ocr.alphabet import Alphabet  # noqa: E402
from crnn_ocr.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from crnn_ocr.deploy.export import ExportConfig, export, export_onnx, frame_rule  # noqa: E402
from crnn_ocr.frontend import ImageFrontend  # noqa: E402
from crnn_ocr.model import ARCHS, ModelConfig, build_model, output_length  # noqa: E402
from crnn_ocr.onnx_backend import ONNX_FORMAT, OnnxModelError, read_onnx_metadata  # noqa: E402
from crnn_ocr.preprocessing import image_to_tensor, images_to_batch, pad_batch  # noqa: E402
from crnn_ocr.recognizer import load_recognizer  # noqa: E402
from crnn_ocr.speech import AudioFrontend  # noqa: E402

ENV = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "OMP_NUM_THREADS": "1"}
WORDS = ["a", "cat", "tree", "window", "recognition", "internationalization"]  # widths 16 .. ~300 px


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: on a shared, busy machine OpenMP barriers make 2 threads ~100x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def exported(one_thread, tmp_path_factory):
    """A random-weight crnn_compact checkpoint and its fp32 and int8 ONNX exports."""
    torch.manual_seed(0)
    tmp = tmp_path_factory.mktemp("export")
    alphabet = Alphabet.preset("alphanumeric")
    config = ModelConfig(num_classes=alphabet.num_classes, arch="crnn_compact", hidden_size=64)
    model = build_model(config)
    ck = tmp / "model.pt"
    save_checkpoint(ck, {"kind": "text", "model_config": config.to_dict(), "alphabet": alphabet.to_dict(),
                         "preprocess": {"height": 32, "channels": 1, "max_width": 400}, "model": model.state_dict()})
    export_onnx(ck, tmp / "model.onnx")
    export_onnx(ck, tmp / "model.int8.onnx", int8=True)
    images = []
    for w in WORDS:
        cv2.imwrite(str(tmp / f"{w}.png"), render_word(w))
        images.append(tmp / f"{w}.png")
    export_onnx(ck, tmp / "model.static.onnx", int8=True, calibration=images)
    return tmp, model.eval(), images


def test_frame_rule_matches_every_arch():
    rules = {arch: frame_rule(ModelConfig(num_classes=5, arch=arch)) for arch in ARCHS}
    assert [(rules[a].stride, rules[a].offset, rules[a].min_width) for a in ("crnn", "resnet", "mobilenetv3")] == [
        (4, 4, 4), (4, 2, 2), (4, 3, 1)]
    for arch, rule in rules.items():
        config = ModelConfig(num_classes=5, arch=arch)
        assert all(rule(w) == output_length(w, config) for w in range(rule.min_width, 700))


def test_onnx_logits_match_pytorch_at_several_widths_and_batches(exported):
    tmp, model, _ = exported
    session = ort.InferenceSession(str(tmp / "model.onnx"), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for n, w in [(1, 4), (1, 16), (3, 37), (1, 100), (5, 257), (2, 800)]:
        x = rng.uniform(-1, 1, (n, 1, 32, w)).astype(np.float32)
        with torch.inference_mode():
            ref = model(torch.from_numpy(x)).numpy()  # (N, T, K)
        got = session.run(["logits"], {"images": x, "widths": np.full(n, w, dtype=np.int64)})[0]
        assert got.shape == ref.shape == (n, w // 4 + 1, 37)
        assert np.abs(got - ref).max() <= 1e-4


def test_onnx_and_torch_recognizers_read_the_same(exported):
    tmp, _, images = exported
    torch_rec = load_recognizer(tmp / "model.pt", backend="torch", device="cpu", channels_last=False)
    onnx_rec = load_recognizer(tmp / "model.onnx", backend="onnx", threads=1)
    prepared = [torch_rec.prepare(p) for p in images]
    assert [p.shape for p in prepared] == [p.shape for p in map(onnx_rec.prepare, images)]
    lp_t, len_t = torch_rec.log_probs(prepared)  # one batch of 6 widths, right-padded
    lp_o, len_o = onnx_rec.log_probs(prepared)
    assert np.array_equal(len_t, len_o) and np.array_equal(len_t, [im.shape[1] // 4 + 1 for im in prepared])
    assert np.abs(lp_t - lp_o).max() <= 1e-4
    for batch_size in (1, 4):
        a = torch_rec.read_batch(images, batch_size=batch_size)
        b = onnx_rec.read_batch(images, batch_size=batch_size)
        assert [r.text for r in a] == [r.text for r in b]
        assert any(r.text for r in a)  # random weights still emit symbols: the comparison is not vacuous
        assert np.allclose([r.score for r in a], [r.score for r in b], atol=1e-3)
    assert load_recognizer(tmp / "model.onnx").backend.name == "onnx"
    assert load_recognizer(tmp / "model.pt", device="cpu").backend.name == "torch"


def test_onnx_metadata_makes_the_file_self_contained(exported):
    tmp, model, _ = exported
    meta = read_onnx_metadata(tmp / "model.onnx")
    assert meta["kind"] == "text" and meta["precision"] == "fp32" and meta["format"] == ONNX_FORMAT
    assert meta["alphabet"] == Alphabet.preset("alphanumeric").to_dict()
    assert meta["frontend"] == {"kind": "image", "height": 32, "channels": 1, "max_width": 400, "width_scale": 1.0}
    assert meta["frames"] == {"stride": 4, "offset": 4, "min_width": 4}
    assert meta["model_config"] == model.config.to_dict()
    rec = load_recognizer(tmp / "model.onnx", backend="onnx", threads=1)
    assert rec.frontend == ImageFrontend(32, 1, 400) and rec.alphabet.num_classes == 37 and rec.output_length(100) == 26


def test_width_scale_travels_with_the_model(exported, tmp_path):
    """A model trained on stretched images is read stretched, by torch and by the bare .onnx file."""
    tmp, model, images = exported
    ck = load_checkpoint(tmp / "model.pt")
    ck["preprocess"] = {**ck["preprocess"], "width_scale": 1.5}
    save_checkpoint(tmp_path / "wide.pt", ck)
    export_onnx(tmp_path / "wide.pt", tmp_path / "wide.onnx")
    assert read_onnx_metadata(tmp_path / "wide.onnx")["frontend"] == {"kind": "image", "height": 32, "channels": 1, "max_width": 400,
                                                                     "width_scale": 1.5}
    plain = load_recognizer(tmp / "model.pt", backend="torch", device="cpu")
    torch_rec = load_recognizer(tmp_path / "wide.pt", backend="torch", device="cpu")
    onnx_rec = load_recognizer(tmp_path / "wide.onnx", backend="onnx", threads=1)
    for p in images[1:4]:  # "cat", "tree", "window": rendered 32 px tall, so only the scale changes the width
        w = plain.prepare(p).shape[1]
        assert torch_rec.prepare(p).shape == onnx_rec.prepare(p).shape == (32, round(w * 1.5))
    assert [r.text for r in torch_rec.read_batch(images)] == [r.text for r in onnx_rec.read_batch(images)]


def test_int8_export_quantizes_lstm_and_linear_only_and_stays_close(exported):
    import onnx

    tmp, _, images = exported
    ops = {node.op_type for node in onnx.load(str(tmp / "model.int8.onnx")).graph.node}
    assert "DynamicQuantizeLSTM" in ops and "MatMulInteger" in ops and "ConvInteger" not in ops
    assert read_onnx_metadata(tmp / "model.int8.onnx")["precision"] == "int8"
    fp32 = load_recognizer(tmp / "model.onnx", backend="onnx", threads=1)
    int8 = load_recognizer(tmp / "model.int8.onnx", backend="onnx", threads=1)
    prepared = [fp32.prepare(p) for p in images]
    assert np.abs(fp32.log_probs(prepared)[0] - int8.log_probs(prepared)[0]).max() < 0.05


@pytest.mark.filterwarnings("ignore:`torch.jit")
def test_int8_with_calibration_also_quantizes_the_convolutions(exported):
    import onnx

    tmp, _, images = exported
    graph = onnx.load(str(tmp / "model.static.onnx")).graph
    ops = {node.op_type for node in graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv", "DynamicQuantizeLSTM"} <= ops and "ConvInteger" not in ops
    convs = [node for node in graph.node if node.op_type == "Conv"]
    dequantized = {o for node in graph.node if node.op_type == "DequantizeLinear" for o in node.output}
    assert len(convs) == 7 and all(set(c.input) <= dequantized for c in convs)  # int8 input, weight, int32 bias
    meta = read_onnx_metadata(tmp / "model.static.onnx")
    assert meta["quantization"] == {"method": "static+dynamic", "ops": ["Conv", "LSTM", "MatMul", "Gemm"],
                                    "calibration_images": len(images)}
    fp32 = load_recognizer(tmp / "model.onnx", backend="onnx", threads=1)
    int8 = load_recognizer(tmp / "model.static.onnx", backend="onnx", threads=1)
    prepared = [fp32.prepare(p) for p in images]
    a, b = fp32.log_probs(prepared[:1])[0], int8.log_probs(prepared[:1])[0]
    assert a.shape == b.shape and np.abs(a - b).max() < 0.5


def test_score_and_speech_models_export_too(tmp_path):
    """Tall inputs (64 rows: the trunk keeps H' > 1 and projects it) and a non-image kind."""
    torch.manual_seed(1)
    alphabet = Alphabet(list("abcdefgh"))
    config = ModelConfig(num_classes=alphabet.num_classes, arch="crnn_compact", height=64, hidden_size=32)
    model = build_model(config).eval()
    save_checkpoint(tmp_path / "speech.pt", {"kind": "speech", "model_config": config.to_dict(), "alphabet": alphabet.to_dict(),
                                             "preprocess": {"height": 64, "channels": 1, "max_width": None,
                                                            "audio": {"sample_rate": 8000, "n_mels": 64, "win_ms": 25.0, "hop_ms": 10.0,
                                                                      "n_fft": None, "fmin": 20.0, "fmax": None}},
                                             "model": model.state_dict()})
    export_onnx(tmp_path / "speech.pt", tmp_path / "speech.onnx")
    deaf = load_checkpoint(tmp_path / "speech.pt")
    del deaf["preprocess"]["audio"]
    save_checkpoint(tmp_path / "deaf.pt", deaf)
    with pytest.raises(ValueError, match="deaf.pt: a speech model without its audio front-end settings"):
        export_onnx(tmp_path / "deaf.pt", tmp_path / "deaf.onnx")
    assert read_onnx_metadata(tmp_path / "speech.onnx")["frontend"] == AudioFrontend(sample_rate=8000, n_mels=64).to_dict()
    rec = load_recognizer(tmp_path / "speech.onnx", backend="onnx", threads=1, expected_kind="speech")
    assert rec.backend.name == "onnx" and rec.kind == "speech" and rec.frontend.height == 64
    assert rec.frontend == AudioFrontend(sample_rate=8000, n_mels=64)
    x = np.random.default_rng(2).uniform(-1, 1, (2, 1, 64, 90)).astype(np.float32)
    with torch.inference_mode():
        assert np.abs(rec.backend.logits(x) - model(torch.from_numpy(x)).numpy()).max() <= 1e-4


@pytest.mark.filterwarnings("ignore:`torch.jit")
def test_torchscript_export_carries_metadata_and_matches(exported):
    tmp, model, _ = exported
    out = export(ExportConfig(checkpoint=str(tmp / "model.pt"), format="torchscript"))
    assert out == tmp / "model.ts"
    extra = {"crnn_ocr.json": ""}
    traced = torch.jit.load(str(out), _extra_files=extra)
    assert json.loads(extra["crnn_ocr.json"])["frames"]["stride"] == 4
    x, widths = torch.rand(3, 1, 32, 150) * 2 - 1, torch.tensor([150, 90, 31])  # called like the ONNX graph
    with torch.inference_mode():
        assert (traced(x, widths) - model(x, widths)).abs().max() <= 1e-5


def test_onnx_errors_name_the_file(tmp_path, exported):
    plain = tmp_path / "plain.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(torch.nn.Linear(3, 2), (torch.zeros(1, 3),), str(plain), dynamo=False)
    with pytest.raises(OnnxModelError, match="plain.onnx: not a CTC recognizer: its input .* has rank 2"):
        load_recognizer(plain, backend="onnx")  # neither a crnn_ocr export nor a PP-OCR recognizer (tests/test_ppocr.py)
    with pytest.raises(OnnxModelError, match="plain.onnx: no 'crnn_ocr' metadata"):
        read_onnx_metadata(plain)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(OnnxModelError, match="junk.onnx: not a loadable ONNX model"):
        load_recognizer(junk, backend="onnx")
    with pytest.raises(OnnxModelError, match="missing.onnx: ONNX model not found"):
        load_recognizer(tmp_path / "missing.onnx", backend="onnx")
    with pytest.raises(OnnxModelError, match="is a text model, cannot read speech"):
        load_recognizer(exported[0] / "model.onnx", backend="onnx", expected_kind="speech")


def test_images_to_batch_equals_the_torch_pipeline():
    rng = np.random.default_rng(1)
    gray = [rng.integers(0, 256, (32, w), dtype=np.uint8) for w in (16, 5, 40)]
    rgb = [rng.integers(0, 256, (32, w, 3), dtype=np.uint8) for w in (7, 30)]
    for images in (gray, rgb):
        ref = pad_batch([image_to_tensor(im) for im in images]).numpy()
        assert np.array_equal(images_to_batch(images), ref)
    assert images_to_batch(gray, width=50).shape == (3, 1, 32, 50)
    with pytest.raises(ValueError, match="smaller than the widest"):
        images_to_batch(gray, width=20)


def test_read_files_keeps_order_across_windows_and_threads(exported):
    tmp, _, images = exported
    rec = load_recognizer(tmp / "model.onnx", backend="onnx", threads=1)
    paths = [str(p) for p in images] * 3
    expected = [r.text for r in rec.read_batch(paths, batch_size=4)]
    # batches form by width inside each window of files (padding changes the BiLSTM's input)
    windowed = [r.text for i in range(0, len(paths), 5) for r in rec.read_batch(paths[i : i + 5], batch_size=4)]
    for workers, window, texts in [(1, None, expected), (3, None, expected), (1, 5, windowed), (3, 5, windowed)]:
        rows = list(rec.read_files(paths, batch_size=4, workers=workers, window=window))
        assert [r[0] for r in rows] == paths
        assert [r[2].text for r in rows] == texts
        assert [r[1].shape for r in rows] == [rec.prepare(p).shape for p in paths]
    bad = tmp / "bad.png"
    bad.write_text("not an image")
    with pytest.raises(ValueError, match="bad.png: not a decodable image"):
        list(rec.read_files(paths[:4] + [str(bad)], batch_size=2, workers=2, window=2))


def test_torch_precision_and_layout_options(exported):
    tmp, _, images = exported
    base = load_recognizer(tmp / "model.pt", backend="torch", device="cpu", channels_last=False)
    fast = load_recognizer(tmp / "model.pt", backend="torch", device="cpu")
    assert fast.backend.channels_last and fast.backend.precision == "fp32"
    prepared = [base.prepare(p) for p in images]
    assert np.abs(base.log_probs(prepared)[0] - fast.log_probs(prepared)[0]).max() <= 1e-4
    assert [r.text for r in base.read_batch(images)] == [r.text for r in fast.read_batch(images)]
    bf16 = load_recognizer(tmp / "model.pt", backend="torch", device="cpu", precision="bf16")
    lp, lengths = bf16.log_probs(prepared)
    assert lp.dtype == np.float32 and lp.shape == base.log_probs(prepared)[0].shape
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16"):
        load_recognizer(tmp / "model.pt", backend="torch", device="cpu", precision="fp8")


def test_onnx_deployment_imports_no_torch(exported):
    """infer.py on a .onnx file runs without torch, torchvision or the training-only packages."""
    tmp, _, images = exported
    code = (
        "import runpy, sys\n"
        f"sys.argv = ['infer.py', '--image', {str(images[1])!r}, {str(images[2])!r}, '--checkpoint', {str(tmp / 'model.onnx')!r}, '--json', '--threads', '1']\n"
        "try:\n"
        f"    runpy.run_path({str(ROOT / 'tools' / 'infer.py')!r}, run_name='__main__')\n"
        "except SystemExit as e:\n"
        "    assert not e.code, e.code\n"
        "heavy = {'torch', 'torchvision', 'albumentations', 'matplotlib', 'lmdb', 'tqdm'}\n"
        "print('LOADED', sorted({m.split('.')[0] for m in sys.modules} & heavy))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[-1] == "LOADED []"
    rows = [json.loads(line) for line in lines[:-1]]
    expected = load_recognizer(tmp / "model.onnx", backend="onnx", threads=1).read_batch(images[1:3])
    assert [row["text"] for row in rows] == [e.text for e in expected]


def test_export_and_infer_clis(exported, tmp_path):
    tmp, _, images = exported
    run = lambda tool, *a: subprocess.run([sys.executable, str(ROOT / "tools" / tool), *map(str, a)],  # noqa: E731
                                          capture_output=True, text=True, env=ENV, timeout=300)
    r = run("export.py", "--checkpoint", tmp / "model.pt", "--out", tmp_path / "m.onnx")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"wrote {tmp_path / 'm.onnx'} (")
    r = run("infer.py", "--image", *images, "--checkpoint", tmp_path / "m.onnx", "--progress", "on", "--workers", 2, "--threads", 1)
    assert r.returncode == 0, r.stderr
    texts = [line.split("\t")[1] for line in r.stdout.splitlines()]
    assert texts == [res.text for res in load_recognizer(tmp / "model.onnx", backend="onnx", threads=1).read_batch(images)]
    assert f"infer.py: read {len(images)} images in " in r.stderr
    r = run("infer.py", "--image", images[0], "--checkpoint", tmp_path / "m.onnx", "--precision", "bf16")
    assert r.returncode == 2 and "precision and channels_last apply to the torch backend" in r.stderr
    r = run("export.py", "--checkpoint", tmp_path / "nope.pt")
    assert r.returncode == 2 and "nope.pt: checkpoint not found" in r.stderr
    for args, message in ((["--int8", "--format", "pt"], "--int8 applies to --format onnx"),
                          (["--calibration", images[0]], "--calibration needs --int8"),
                          (["--int8", "--calibration", images[0], "--calibration-count", 0], "--calibration-count must be at least 1, got 0")):
        r = run("export.py", "--checkpoint", tmp / "model.pt", *args)
        assert r.returncode == 2 and r.stderr.strip().splitlines()[-1] == f"export.py: error: {message}", r.stderr


def test_recheck_is_set_kept_and_removed_by_export(exported, tmp_path):
    """tools/export.py --recheck stores the reading's second look with the model; an export of that
    file keeps it, --no-recheck drops it, and a model that does not read images refuses it."""
    from crnn_ocr.pretrained import MODELS
    from crnn_ocr.views import Recheck, View

    tmp, _, images = exported
    run = lambda *a: subprocess.run([sys.executable, str(ROOT / "tools" / "export.py"), *map(str, a)],  # noqa: E731
                                    capture_output=True, text=True, env=ENV, timeout=300)
    r = run("--checkpoint", tmp / "model.pt", "--format", "pt", "--recheck", 0.9, 1.2, "--recheck-below", 0.6, "--out", tmp_path / "rc.pt")
    assert r.returncode == 0, r.stderr
    want = {"views": [{"width": 0.9, "border": 0.0, "side": 0.0, "trim": 0.0}, {"width": 1.2, "border": 0.0, "side": 0.0, "trim": 0.0}],
            "below": 0.6}
    policy = Recheck((View(width=0.9), View(width=1.2)), 0.6)
    assert load_checkpoint(tmp_path / "rc.pt")["frontend"] == {"kind": "image", "height": 32, "channels": 1, "max_width": 400,
                                                               "width_scale": 1.0, "recheck": want}
    assert "recheck" not in ImageFrontend().to_dict()  # files without one are written as before
    assert load_recognizer(tmp_path / "rc.pt", backend="torch", device="cpu").recheck == policy
    assert load_recognizer(tmp / "model.pt", backend="torch", device="cpu").recheck is None
    assert run("--checkpoint", tmp_path / "rc.pt", "--out", tmp_path / "rc.onnx").returncode == 0
    assert read_onnx_metadata(tmp_path / "rc.onnx")["frontend"]["recheck"] == want
    onnx_rec = load_recognizer(tmp_path / "rc.onnx", backend="onnx", threads=1)
    assert onnx_rec.recheck == policy
    torch_rec = load_recognizer(tmp_path / "rc.pt", backend="torch", device="cpu")
    assert [x.text for x in onnx_rec.read_batch(images)] == [x.text for x in torch_rec.read_batch(images)]
    assert run("--checkpoint", tmp_path / "rc.pt", "--no-recheck", "--out", tmp_path / "plain.onnx").returncode == 0
    assert "recheck" not in read_onnx_metadata(tmp_path / "plain.onnx")["frontend"]
    r = run("--checkpoint", tmp / "model.pt", "--recheck", 1.2, "--recheck-below", 0)
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].endswith(
        "error: --recheck: widths must be positive and --recheck-below in (0, 1], got 1.2 and 0")
    r = run("--checkpoint", MODELS["spoken_digits"].path, "--format", "pt", "--recheck", 1.2, "--out", tmp_path / "s.pt")
    assert r.returncode == 2 and r.stderr.strip() == (
        f"export.py: error: {MODELS['spoken_digits'].path}: a recheck applies to image models; this one's front-end is 'audio'")
    assert not (tmp_path / "s.pt").exists()
