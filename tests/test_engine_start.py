"""What a run starts from (crnn_ocr.engine.start): every rule of resume, init-from and the inherited
settings, checked on tiny checkpoints in tmp_path without training."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from crnn_ocr.alphabet import Alphabet
from crnn_ocr.checkpoint import CheckpointError, save_checkpoint
from crnn_ocr.engine.config import TrainConfig, check_config, total_steps
from crnn_ocr.engine.start import FRESH, INIT, RESUME, RunSpec, resolve_start, resume_path, start_weights
from crnn_ocr.frontend import ImageFrontend
from crnn_ocr.model import ModelConfig, build_model
from crnn_ocr.speech.audio import AudioFrontend

ALNUM = Alphabet.preset("alphanumeric")
CASED = Alphabet.preset("alphanumeric_cased")
DIGITS = Alphabet.preset("digits")
SPEECH = AudioFrontend(sample_rate=8000, n_mels=32)


def _audio(spec: RunSpec) -> AudioFrontend | None:
    """The run's speech front-end, apart from the max width every run takes from its config."""
    return replace(spec.frontend, max_width=None) if isinstance(spec.frontend, AudioFrontend) else None


def _cfg(tmp_path: Path, **kw) -> TrainConfig:
    return TrainConfig(data=["unused"], max_steps=1, out_dir=str(tmp_path / "out"), **kw)


def _checkpoint(path: Path, *, kind: str | None = "text", alphabet: Alphabet = CASED, arch: str = "crnn", channels: int = 3,
                height: int = 48, hidden_size: int = 24, width_scale: float = 1.5, audio: AudioFrontend | None = None,
                weights: dict | None = None) -> Path:
    """A checkpoint as train() writes it, with every setting unlike TrainConfig's defaults."""
    if audio is not None:
        channels, height, width_scale = 1, audio.n_mels, 1.0
    state = {
        "model_config": ModelConfig(num_classes=alphabet.num_classes, arch=arch, in_channels=channels, height=height,
                                    hidden_size=hidden_size).to_dict(),
        "alphabet": alphabet.to_dict(),
        "frontend": (replace(audio, max_width=300) if audio else
                     ImageFrontend(height=height, channels=channels, max_width=300, width_scale=width_scale)).to_dict(),
        "model": weights or {},
        "step": 7, "epoch": 2, "batches_in_epoch": 3, "best_metric": 0.25,
    }
    if kind is not None:
        state["kind"] = kind
    save_checkpoint(path, state)
    return path


# ------------------------------------------------------------------------------- fresh runs
def test_a_fresh_run_takes_the_defaults():
    spec = resolve_start(TrainConfig(data=["unused"], max_steps=1, out_dir="/nonexistent/run"))
    assert (spec.source, spec.checkpoint, spec.state, spec.resuming) == (FRESH, None, None, False)
    assert spec.alphabet == ALNUM
    assert spec.model_config == ModelConfig(num_classes=37, arch="crnn_compact", in_channels=1, height=32)  # the arch's LSTM size
    assert spec.frontend == ImageFrontend(height=32, channels=1, max_width=400, width_scale=1.0)
    assert _audio(spec) is None
    assert (spec.step, spec.epoch, spec.batches_in_epoch, spec.best_metric) == (0, 0, 0, None)


def test_a_fresh_run_takes_everything_from_the_config(tmp_path):
    spec = resolve_start(_cfg(tmp_path, alphabet="digits", arch="crnn", channels=3, height=48, hidden_size=64,
                              width_scale=1.5, max_width=500))
    assert spec.alphabet == DIGITS
    assert spec.model_config == ModelConfig(num_classes=11, arch="crnn", in_channels=3, height=48, hidden_size=64)
    assert spec.frontend == ImageFrontend(height=48, channels=3, max_width=500, width_scale=1.5)


def test_an_alphabet_file_is_read(tmp_path):
    (tmp_path / "abc.txt").write_text("a\nb\nc\n")
    assert resolve_start(_cfg(tmp_path, alphabet=str(tmp_path / "abc.txt"))).alphabet == Alphabet("abc")


# ------------------------------------------------------------------------------- resume
def test_resume_auto_without_last_pt_starts_as_if_not_given(tmp_path):
    cfg = _cfg(tmp_path, resume="auto")
    assert resume_path(cfg) is None
    assert resolve_start(cfg).source == FRESH
    init = _checkpoint(tmp_path / "init.pt")
    spec = resolve_start(_cfg(tmp_path, resume="auto", init_from=str(init)))
    assert (spec.source, spec.checkpoint) == (INIT, init)


def test_resume_auto_continues_out_last_pt_whatever_the_config_says(tmp_path):
    last = _checkpoint(tmp_path / "out" / "last.pt")
    cfg = _cfg(tmp_path, resume="auto", alphabet="no-such-alphabet", arch="crnn_compact", channels=1, height=32,
               hidden_size=16, width_scale=1.0, max_width=123, init_from=str(tmp_path / "never-read.pt"))
    assert resume_path(cfg) == last
    spec = resolve_start(cfg)
    assert (spec.source, spec.checkpoint, spec.resuming) == (RESUME, last, True)
    assert spec.alphabet == CASED  # --alphabet is not even resolved
    assert spec.model_config == ModelConfig(num_classes=CASED.num_classes, arch="crnn", in_channels=3, height=48, hidden_size=24)
    assert spec.frontend == ImageFrontend(height=48, channels=3, max_width=123, width_scale=1.5)  # max_width: the config's
    assert (spec.step, spec.epoch, spec.batches_in_epoch, spec.best_metric) == (7, 2, 3, 0.25)
    assert spec.state["step"] == 7  # optimizer, scheduler, scaler and RNG come from here


def test_resume_with_a_path_continues_that_checkpoint(tmp_path):
    _checkpoint(tmp_path / "out" / "last.pt", alphabet=DIGITS)
    other = _checkpoint(tmp_path / "elsewhere.pt")
    cfg = _cfg(tmp_path, resume=str(other))
    assert resume_path(cfg) == other
    spec = resolve_start(cfg)
    assert (spec.source, spec.checkpoint, spec.alphabet) == (RESUME, other, CASED)


def test_resume_with_a_missing_path_is_an_error(tmp_path):
    with pytest.raises(CheckpointError, match=r"missing\.pt: checkpoint not found"):
        resolve_start(_cfg(tmp_path, resume=str(tmp_path / "missing.pt")))


def test_resume_keeps_the_checkpoints_width_scale(tmp_path):
    last = _checkpoint(tmp_path / "out" / "last.pt", width_scale=1.0)
    spec = resolve_start(_cfg(tmp_path, resume=str(last), width_scale=2.0))
    assert spec.frontend.width_scale == 1.0


# ------------------------------------------------------------------------------- init-from
def test_init_from_keeps_the_architecture_and_the_alphabet_unless_one_is_given(tmp_path):
    init = _checkpoint(tmp_path / "init.pt")
    spec = resolve_start(_cfg(tmp_path, init_from=str(init), arch="crnn_compact", channels=1, hidden_size=16))
    assert (spec.source, spec.checkpoint, spec.resuming) == (INIT, init, False)
    assert spec.alphabet == CASED
    assert spec.model_config == ModelConfig(num_classes=CASED.num_classes, arch="crnn", in_channels=3, height=48, hidden_size=24)
    assert (spec.step, spec.epoch, spec.batches_in_epoch, spec.best_metric) == (0, 0, 0, None)  # a new run
    assert spec.state["alphabet"] == CASED.to_dict()  # the weights to adapt

    given = resolve_start(_cfg(tmp_path, init_from=str(init), alphabet="digits", height=64))
    assert given.alphabet == DIGITS
    assert given.model_config == ModelConfig(num_classes=11, arch="crnn", in_channels=3, height=64, hidden_size=24)
    assert given.frontend == ImageFrontend(height=64, channels=3, max_width=400, width_scale=1.5)


def test_a_new_ds2_speech_model_gets_three_recurrent_layers_and_an_init_keeps_its_own(tmp_path):
    spec = resolve_start(_cfg(tmp_path, kind="speech", arch="ds2", sample_rate=8000, n_mels=32, alphabet="digits"))
    assert spec.model_config == ModelConfig(num_classes=11, arch="ds2", height=32, lstm_layers=3)
    init = _checkpoint(tmp_path / "init.pt", kind="speech", arch="crnn_compact", alphabet=DIGITS, audio=SPEECH)
    again = resolve_start(_cfg(tmp_path, kind="speech", init_from=str(init), arch="ds2"))
    assert (again.model_config.arch, again.model_config.lstm_layers) == ("crnn_compact", 2)


def test_init_from_a_missing_or_unsafe_checkpoint_is_an_error(tmp_path):
    with pytest.raises(CheckpointError, match=r"nope\.pt: checkpoint not found"):
        resolve_start(_cfg(tmp_path, init_from=str(tmp_path / "nope.pt")))
    torch.save({"format": "crnn_ocr/1", "model": {}}, tmp_path / "partial.pt")
    with pytest.raises(CheckpointError, match=r"partial\.pt: not a crnn_ocr checkpoint \(missing model_config, alphabet\)"):
        resolve_start(_cfg(tmp_path, init_from=str(tmp_path / "partial.pt")))


def test_an_unknown_alphabet_is_an_error(tmp_path):
    with pytest.raises(ValueError, match=r"alphabet 'klingon' is neither a preset \(digits, alphanumeric, .*\) nor a file"):
        resolve_start(_cfg(tmp_path, alphabet="klingon"))


@pytest.mark.parametrize(
    "checkpoint_kind, run_kind, config_scale, expected",
    [
        ("text", "text", None, 1.5),  # fine-tuning keeps the input geometry
        ("text", "text", 1.0, 1.0),  # unless the config says otherwise
        ("text", "text", 2.0, 2.0),
        ("text", "score", None, 1.0),  # text -> score: not inherited
        ("score", "text", None, 1.0),
        ("score", "score", None, 1.5),
        (None, "text", None, 1.5),  # a checkpoint from before ``kind`` was saved is a text one
        (None, "score", None, 1.0),
    ],
)
def test_init_from_inherits_the_width_scale_of_a_same_kind_checkpoint(tmp_path, checkpoint_kind, run_kind, config_scale, expected):
    init = _checkpoint(tmp_path / "init.pt", kind=checkpoint_kind, width_scale=1.5)
    spec = resolve_start(_cfg(tmp_path, init_from=str(init), kind=run_kind, width_scale=config_scale))
    assert spec.frontend.width_scale == expected


# ------------------------------------------------------------------------------- speech
def test_a_fresh_speech_run_builds_its_front_end_from_the_config(tmp_path):
    spec = resolve_start(_cfg(tmp_path, kind="speech", sample_rate=8000, channels=3, height=48, width_scale=1.5))
    assert _audio(spec) == AudioFrontend(sample_rate=8000, n_mels=64)
    assert (spec.model_config.height, spec.model_config.in_channels) == (64, 1)  # mel bins, one channel
    assert spec.frontend == AudioFrontend(sample_rate=8000, n_mels=64, max_width=400)
    assert _audio(resolve_start(_cfg(tmp_path, kind="speech", n_mels=40))) == AudioFrontend(sample_rate=16000, n_mels=40)


def test_impossible_speech_settings_are_an_error(tmp_path):
    with pytest.raises(ValueError, match=r"sample_rate must be in \d+\.\.\d+ Hz, got 5"):
        resolve_start(_cfg(tmp_path, kind="speech", sample_rate=5))


@pytest.mark.parametrize("n_mels", [None, 32])
def test_init_from_speech_keeps_the_checkpoints_front_end_unless_n_mels_changes(tmp_path, n_mels):
    init = _checkpoint(tmp_path / "init.pt", kind="speech", alphabet=DIGITS, audio=SPEECH)
    spec = resolve_start(_cfg(tmp_path, kind="speech", init_from=str(init), sample_rate=16000, n_mels=n_mels))
    assert _audio(spec) == SPEECH  # its sample rate too
    assert spec.model_config.height == 32


def test_init_from_speech_with_other_n_mels_builds_a_new_front_end(tmp_path):
    init = _checkpoint(tmp_path / "init.pt", kind="speech", alphabet=DIGITS, audio=SPEECH)
    spec = resolve_start(_cfg(tmp_path, kind="speech", init_from=str(init), sample_rate=16000, n_mels=40))
    assert _audio(spec) == AudioFrontend(sample_rate=16000, n_mels=40)
    assert spec.model_config.height == 40


def test_resumed_speech_keeps_its_front_end_whatever_n_mels_says(tmp_path):
    last = _checkpoint(tmp_path / "out" / "last.pt", kind="speech", alphabet=DIGITS, audio=SPEECH)
    spec = resolve_start(_cfg(tmp_path, kind="speech", resume="auto", n_mels=40, sample_rate=16000))
    assert (spec.source, spec.checkpoint, _audio(spec), spec.model_config.height) == (RESUME, last, SPEECH, 32)


def test_speech_from_an_image_checkpoint_builds_a_new_front_end(tmp_path):
    init = _checkpoint(tmp_path / "init.pt", channels=1, height=32)
    spec = resolve_start(_cfg(tmp_path, kind="speech", init_from=str(init), sample_rate=8000))
    assert _audio(spec) == AudioFrontend(sample_rate=8000, n_mels=64)
    assert spec.model_config.height == 64 and not hasattr(spec.frontend, "width_scale")  # frames are never stretched


def test_images_never_get_a_speech_front_end(tmp_path):
    init = _checkpoint(tmp_path / "init.pt", kind="speech", audio=SPEECH)
    spec = resolve_start(_cfg(tmp_path, init_from=str(init)))
    assert _audio(spec) is None and isinstance(spec.frontend, ImageFrontend)


# ------------------------------------------------------------------------------- the config
def test_a_config_without_data_or_length_is_an_error(tmp_path):
    with pytest.raises(ValueError, match=r"^--data: give at least one LMDB$"):
        check_config(TrainConfig(data=[], max_steps=1))
    with pytest.raises(ValueError, match=r"^give --max-steps or --epochs$"):
        check_config(TrainConfig(data=["x"]))
    check_config(TrainConfig(data=["x"], epochs=1))


@pytest.mark.parametrize("max_steps, epochs, expected", [(50, None, 50), (None, 3, 30), (50, 3, 30), (20, 3, 20)])
def test_the_run_lasts_max_steps_or_epochs_whichever_ends_first(max_steps, epochs, expected):
    assert total_steps(TrainConfig(data=["x"], max_steps=max_steps, epochs=epochs), steps_per_epoch=10) == expected


# ------------------------------------------------------------------------------- weights
def _tiny(alphabet: Alphabet, height: int = 32) -> torch.nn.Module:
    return build_model(ModelConfig(num_classes=alphabet.num_classes, arch="crnn_compact", height=height, hidden_size=8))


def test_start_weights_fresh_resume_and_init(tmp_path):
    torch.manual_seed(0)
    trained = _tiny(ALNUM).state_dict()
    ckpt = tmp_path / "out" / "last.pt"
    state = {"kind": "text", "model_config": ModelConfig(num_classes=37, arch="crnn_compact", hidden_size=8).to_dict(),
             "alphabet": ALNUM.to_dict(), "preprocess": {"height": 32, "channels": 1, "max_width": 400}, "model": trained,  # the old form
             "step": 1, "epoch": 0, "batches_in_epoch": 1, "best_metric": None}
    save_checkpoint(ckpt, state)

    fresh_spec = resolve_start(_cfg(tmp_path, hidden_size=8))
    model = _tiny(ALNUM)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert start_weights(model, fresh_spec) is None
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())

    resumed = _tiny(ALNUM)
    assert start_weights(resumed, resolve_start(_cfg(tmp_path, resume="auto"))) is None
    assert all(torch.equal(trained[k], v) for k, v in resumed.state_dict().items())

    spec = resolve_start(_cfg(tmp_path, init_from=str(ckpt), alphabet="digits", height=64))
    model = _tiny(DIGITS, height=64)
    line = start_weights(model, spec, "my.pt")
    total = len(model.state_dict())
    assert line == f"init from my.pt: {total - 2} of {total} tensors kept; output layer 37 -> 11 classes; fresh: project.weight, project.bias"
    weights = model.state_dict()
    assert torch.equal(weights["rnn.1.linear.weight"][DIGITS.id_of("7")], trained["rnn.1.linear.weight"][ALNUM.id_of("7")])
    assert torch.equal(weights["rnn.1.linear.bias"][0], trained["rnn.1.linear.bias"][0])  # the blank
    same = resolve_start(_cfg(tmp_path, init_from=str(ckpt)))  # same alphabet and height: everything kept
    assert start_weights(_tiny(ALNUM), same) == f"init from {ckpt}: {len(trained)} of {len(trained)} tensors kept"
