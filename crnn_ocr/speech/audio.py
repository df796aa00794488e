"""The speech wing's front-end: audio files -> log-mel spectrograms, the "images" of speech models.

``AudioFrontend`` is the ``audio`` kind of ``crnn_ocr.frontend.Frontend`` (registered on import;
the core finds it through ``frontend.WING_KINDS``). A spectrogram is an image whose height is the
mel bins and whose width is time, so the CRNN family, the dataset, the trainer, the reader and the
CTC decoder take speech unchanged (DeepSpeech2's recipe: a convolutional front-end, bidirectional
recurrent layers, CTC):

    WAV/FLAC/OGG bytes or path or array --load_audio--> float32 mono (n,) at frontend.sample_rate
        [--SpeechAugment.augment_wave--> speed, volume, additive noise (training only)]
        --log_mel--> float32 (n_mels, frames), per-utterance normalized
        [--SpeechAugment.augment_spec--> SpecAugment time and frequency masks (training only)]

Audio is read with soundfile (libsndfile), mixed to mono by averaging the channels and resampled
with ``scipy.signal.resample_poly`` (polyphase, Kaiser-windowed anti-aliasing filter). The
spectrogram is ``torch.stft`` (Hann window, centred frames) -> power -> a Slaney-style mel
filterbank (librosa's default: ``htk=False, norm="slaney"``) -> natural log with an 80 dB floor
-> per mel bin, zero mean and unit variance over the utterance. Frame ``k`` is centred at
``k * hop`` samples, so ``num_frames(n) = 1 + n // hop``.

torchaudio is not needed: the filterbank is built here in numpy (tests check it against
librosa's values).
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from fractions import Fraction
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from crnn_ocr.extras import require
from crnn_ocr.frontend import Media, register_frontend
from crnn_ocr.preprocessing import DEFAULT_MIN_WIDTH

if TYPE_CHECKING:
    import torch

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff")
"""Files taken as audio (``AUDIO_MEDIA``): by ``tools/infer.py --audio`` and ``create_lmdb``'s folder scans."""

MIN_SAMPLE_RATE = 1000
MAX_SAMPLE_RATE = 768_000
_MAX_RATIO_DENOMINATOR = 1000  # resampling ratios are rounded to p/q with q <= this (< 0.1% off)
_TOP_DB = 80.0  # log-mel floor below each utterance's peak
NORMALIZATIONS = ("bin", "clip")  # AudioFrontend.normalize


def is_audio_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` has an audio extension (``AUDIO_EXTENSIONS``)."""
    return os.fspath(path).lower().endswith(AUDIO_EXTENSIONS)


def _check_audio(data: bytes, full: bool) -> bool:
    """Whether encoded audio is usable: fully decoded (``full``) or its header read."""
    if not data:
        return False
    if not full:
        return audio_info(data) is not None
    try:
        read_audio(data)
    except ValueError:
        return False
    return True


AUDIO_MEDIA = Media(
    "audio", AUDIO_EXTENSIONS, _check_audio,
    corrupt=("unreadable audio", "unreadable audio"),
    too_wide=("audio longer than the max width", "audio longer than the max width"),
    undecodable=("unreadable audio file", "unreadable audio files"),
    why_undecodable="unreadable audio",
    requires=("soundfile", "scipy"),
)


# ------------------------------------------------------------------------------------ config
@register_frontend
@dataclass(frozen=True)
class AudioFrontend:
    """How audio becomes a log-mel spectrogram: the speech models' front-end (``crnn_ocr.frontend``).

    ``normalize``: how each utterance's log-mels are standardized. ``"bin"`` (speech, the default)
    brings every mel bin to zero mean and unit variance over the utterance, which removes the
    recording channel and also the spectral envelope; ``"clip"`` uses one mean and standard
    deviation for the whole spectrogram, which removes only the level and keeps the envelope
    (the timbre that tells a snare from a hi-hat).

    A spectrogram is a one-channel image ``n_mels`` rows high and one column per frame
    (``num_frames``); audio with more frames than ``max_width`` is not trained on (never squeezed),
    and is read in windows. ``n_fft`` None: the smallest power of two holding the window (512 at
    16 kHz, 256 at 8 kHz). ``fmax`` None: the Nyquist frequency ``sample_rate / 2``.
    """

    kind: ClassVar[str] = "audio"
    media: ClassVar[Media] = AUDIO_MEDIA

    sample_rate: int = 16000
    n_mels: int = 64
    win_ms: float = 25.0
    hop_ms: float = 10.0
    n_fft: int | None = None
    fmin: float = 20.0
    fmax: float | None = None
    max_width: int | None = None  # frames
    normalize: str = "bin"  # per utterance: "bin" each mel bin to zero mean, unit variance; "clip" the whole spectrogram at once

    def __post_init__(self) -> None:
        if not MIN_SAMPLE_RATE <= self.sample_rate <= MAX_SAMPLE_RATE:
            raise ValueError(f"sample_rate must be in {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz, got {self.sample_rate}")
        if self.n_mels < 1:
            raise ValueError(f"n_mels must be positive, got {self.n_mels}")
        if self.hop_length < 1 or self.win_length < 2:
            raise ValueError(f"window {self.win_ms} ms and hop {self.hop_ms} ms are too short at {self.sample_rate} Hz")
        if self.n_fft is not None and self.n_fft < self.win_length:
            raise ValueError(f"n_fft {self.n_fft} is shorter than the window ({self.win_length} samples)")
        if self.normalize not in NORMALIZATIONS:
            raise ValueError(f"normalize must be one of {', '.join(NORMALIZATIONS)}, got {self.normalize!r}")
        if not 0 <= self.fmin < self.top_frequency <= self.sample_rate / 2:
            raise ValueError(f"need 0 <= fmin < fmax <= {self.sample_rate / 2:g} Hz, got fmin {self.fmin}, fmax {self.fmax}")

    @property
    def win_length(self) -> int:
        """Window length in samples."""
        return int(round(self.sample_rate * self.win_ms / 1000))

    @property
    def hop_length(self) -> int:
        """Hop between frames in samples."""
        return int(round(self.sample_rate * self.hop_ms / 1000))

    @property
    def fft_size(self) -> int:
        """The FFT length actually used."""
        return self.n_fft if self.n_fft is not None else 1 << (self.win_length - 1).bit_length()

    @property
    def top_frequency(self) -> float:
        """The upper edge of the filterbank in Hz."""
        return float(self.fmax) if self.fmax is not None else self.sample_rate / 2

    @property
    def min_input_rate(self) -> int:
        """Lowest sample rate accepted: its Nyquist frequency must reach half the filterbank's top
        (8000 Hz for the 16 kHz default), else most of the bands the model listens to are empty."""
        return max(MIN_SAMPLE_RATE, int(math.ceil(self.top_frequency)))

    def num_frames(self, num_samples: int) -> int:
        """Spectrogram frames of ``num_samples`` samples at ``sample_rate`` (centred frames)."""
        return 1 + int(num_samples) // self.hop_length

    def frames_to_seconds(self, frames: float) -> float:
        """Start time in seconds of spectrogram frame ``frames`` (may be fractional)."""
        return float(frames) * self.hop_length / self.sample_rate

    # ---------------------------------------------------------------- the Frontend protocol
    @property
    def height(self) -> int:
        """Model input rows: the mel bins."""
        return self.n_mels

    @property
    def channels(self) -> int:
        return 1

    def prepare(self, source: Any, *, sample_rate: int | None = None, use_torch: bool = True) -> np.ndarray:
        """A path, encoded bytes or a waveform array (with its ``sample_rate``) -> float32
        (n_mels, frames) normalized log-mel spectrogram, at least ``DEFAULT_MIN_WIDTH`` frames.
        ``ValueError`` naming the file for audio that is not readable, empty, or at a sample rate
        below ``min_input_rate``. ``use_torch=False``: the numpy log-mel (``log_mel_numpy``)."""
        return audio_features(source, self, sample_rate=sample_rate, min_width=DEFAULT_MIN_WIDTH, use_torch=use_torch)

    def to_batch(self, inputs: Sequence[np.ndarray]) -> np.ndarray:
        """[(n_mels, frames_i)] -> float32 (N, 1, n_mels, max frames), right-padded by repeating the last frame."""
        widths = [int(f.shape[1]) for f in inputs]
        batch = np.empty((len(inputs), 1, self.n_mels, max(widths)), dtype=np.float32)  # (N, 1, H, W)
        for i, (f, w) in enumerate(zip(inputs, widths)):
            batch[i, 0, :, :w] = f
            batch[i, 0, :, w:] = f[:, w - 1 : w]
        return batch

    def input_width(self, data: bytes | memoryview) -> int | None:
        """Spectrogram frames (at least ``DEFAULT_MIN_WIDTH``) from the header's sample count and rate."""
        frames = audio_num_frames(data, self)
        return None if frames is None else max(frames, DEFAULT_MIN_WIDTH)

    def training_input(self, data: bytes | memoryview, augment: SpeechAugment | None = None) -> torch.Tensor:
        """Encoded audio -> float32 (1, n_mels, frames) tensor, ``SpeechAugment``-ed when given."""
        import torch

        spec = audio_features(data, self, augment=augment, min_width=DEFAULT_MIN_WIDTH)  # (n_mels, frames)
        return torch.from_numpy(spec).unsqueeze(0)  # (1, n_mels, frames)

    def augmentation(self, spec: Any) -> SpeechAugment | None:
        return build_speech_augmentation(spec)

    def decoder_options(self, alphabet: Any, **options: Any) -> dict[str, Any]:
        """An utterance is a sequence of words: with a lexicon, ``lexicon_mode="auto"`` decodes
        through the trie (``speech_decoder_options``)."""
        return speech_decoder_options(alphabet, **options)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **asdict(self)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> AudioFrontend:
        """Inverse of ``to_dict``; unknown keys (and ``kind``) are ignored."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def speech_decoder_options(
    alphabet: Any,
    *,
    beam_width: int = 1,
    lexicon: Sequence[str] | str | os.PathLike | None = None,
    lexicon_mode: str = "auto",
    min_lexicon_beam: int = 8,
    **options: Any,
) -> dict[str, Any]:
    """``CTCDecoder`` options for utterances of several words.

    With a lexicon, ``lexicon_mode="auto"`` means any sequence of lexicon words (e.g. "seven two"
    from the ten digit words) with a beam of at least ``min_lexicon_beam``: ``"trie"`` for
    character alphabets that have a space, ``"words"`` for token alphabets (words as tokens);
    the text decoder's auto mode would pick one single word.
    """
    if lexicon is not None and lexicon_mode == "auto":
        if alphabet.is_tokenized:
            lexicon_mode = "words"
        elif " " in alphabet:
            lexicon_mode = "trie"
    if lexicon is not None and lexicon_mode in ("trie", "words"):
        beam_width = max(beam_width, min_lexicon_beam)
    return {"beam_width": beam_width, "lexicon": lexicon, "lexicon_mode": lexicon_mode, **options}


# ------------------------------------------------------------------------------------ reading
def _name(source: Any, name: str | None) -> str:
    if name is not None:
        return name
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    return "<array>" if isinstance(source, np.ndarray) else "<bytes>"


def check_sample_rate(sample_rate: int, frontend: AudioFrontend | None = None, *, name: str = "<audio>") -> None:
    """``ValueError`` naming ``name`` for a rate the front-end cannot handle."""
    if not isinstance(sample_rate, (int, np.integer)) or not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise ValueError(f"{name}: unsupported sample rate {sample_rate!r} Hz (expected {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE})")
    if frontend is not None and sample_rate < frontend.min_input_rate:
        raise ValueError(
            f"{name}: sample rate {sample_rate} Hz is too low for this model (it needs at least "
            f"{frontend.min_input_rate} Hz; it listens up to {frontend.top_frequency:g} Hz)"
        )


def resample(wave: np.ndarray, orig_rate: int, target_rate: int) -> np.ndarray:
    """Resample float (n,) audio with a polyphase filter: (n,) -> (ceil(n * p / q),) with
    ``p / q`` = ``target_rate / orig_rate`` (rounded to a denominator <= 1000 for odd rates)."""
    if orig_rate == target_rate:
        return wave.astype(np.float32, copy=False)
    resample_poly = require("scipy.signal", "resampling audio").resample_poly

    ratio = Fraction(int(target_rate), int(orig_rate)).limit_denominator(_MAX_RATIO_DENOMINATOR)
    return resample_poly(wave.astype(np.float64), ratio.numerator, ratio.denominator).astype(np.float32)


def resampled_length(num_samples: int, orig_rate: int, target_rate: int) -> int:
    """Length ``resample`` returns for ``num_samples`` samples (without resampling)."""
    if orig_rate == target_rate:
        return int(num_samples)
    ratio = Fraction(int(target_rate), int(orig_rate)).limit_denominator(_MAX_RATIO_DENOMINATOR)
    return -(-int(num_samples) * ratio.numerator // ratio.denominator)


def _to_mono_float(data: np.ndarray, name: str) -> np.ndarray:
    """(n,) or (n, channels) int/float samples -> float32 (n,) in [-1, 1] (channels averaged)."""
    data = np.asarray(data)
    if data.ndim == 2:
        data = data.mean(axis=1) if np.issubdtype(data.dtype, np.floating) else data.astype(np.float64).mean(axis=1)
    elif data.ndim != 1:
        raise ValueError(f"{name}: expected audio of shape (samples,) or (samples, channels), got {data.shape}")
    if np.issubdtype(data.dtype, np.integer):
        info = np.iinfo(data.dtype)
        data = data.astype(np.float64) / max(abs(info.min), info.max)
    elif not np.issubdtype(data.dtype, np.floating):
        raise ValueError(f"{name}: audio samples must be numbers, got dtype {data.dtype}")
    out = np.asarray(data, dtype=np.float32)
    if not np.all(np.isfinite(out)):
        raise ValueError(f"{name}: audio holds NaN or infinite samples")
    return out


def read_audio(source: str | os.PathLike | bytes | memoryview, *, name: str | None = None) -> tuple[np.ndarray, int]:
    """Decode a file or encoded bytes: (float32 (n, channels) samples, sample rate).

    ``ValueError`` naming the file when it is missing, not audio, or holds no samples.
    """
    sf = require("soundfile", "reading audio")

    what = _name(source, name)
    if isinstance(source, (str, os.PathLike)):
        if os.path.isdir(source):
            raise ValueError(f"{what}: is a directory, expected an audio file")
        if not os.path.exists(source):
            raise ValueError(f"{what}: audio file not found")
        target: Any = os.fspath(source)
    else:
        if len(source) == 0:
            raise ValueError(f"{what}: empty file (0 bytes)")
        target = io.BytesIO(bytes(source))
    try:
        data, rate = sf.read(target, dtype="float32", always_2d=True)
    except Exception as e:  # libsndfile's errors (and soundfile's TypeError on garbage) all mean "not audio"
        msg = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        if msg.startswith("Error opening"):  # "Error opening '<path>': <reason>": the path is said once already
            msg = msg.rsplit(": ", 1)[-1].rstrip(".")
        if isinstance(source, (str, os.PathLike)) and os.path.getsize(source) == 0:
            raise ValueError(f"{what}: empty file (0 bytes)") from None
        raise ValueError(f"{what}: not a readable audio file ({msg})") from None
    if data.shape[0] == 0:
        raise ValueError(f"{what}: empty audio (0 samples)")
    return data, int(rate)


def load_audio(
    source: str | os.PathLike | bytes | memoryview | np.ndarray,
    sample_rate: int | None = None,
    *,
    target_rate: int = 16000,
    frontend: AudioFrontend | None = None,
    name: str | None = None,
) -> np.ndarray:
    """Audio -> float32 mono (n,) at ``target_rate`` (or ``frontend.sample_rate``).

    ``source``: a path, encoded bytes (WAV, FLAC, OGG, ...), or an array of samples
    ((n,) or (n, channels), float in [-1, 1] or integer PCM) whose ``sample_rate`` must then be
    given. ``ValueError`` naming the file (``name`` overrides) for a file that is not audio, is
    empty, or whose sample rate the front-end cannot handle (``check_sample_rate``).
    """
    what = _name(source, name)
    if frontend is not None:
        target_rate = frontend.sample_rate
    if isinstance(source, np.ndarray):
        if sample_rate is None:
            raise ValueError(f"{what}: give the sample rate of an audio array")
        wave = _to_mono_float(source, what)
        rate = sample_rate
    else:
        if sample_rate is not None:
            raise ValueError(f"{what}: sample_rate applies to arrays only; a file carries its own rate")
        data, rate = read_audio(source, name=what)
        wave = _to_mono_float(data, what)
    if wave.size == 0:
        raise ValueError(f"{what}: empty audio (0 samples)")
    check_sample_rate(rate, frontend, name=what)
    return resample(wave, rate, target_rate)


def audio_info(data: bytes | memoryview) -> tuple[int, int] | None:
    """(samples, sample rate) from encoded audio's header without decoding it; None if unreadable or empty."""
    sf = require("soundfile", "reading audio")

    try:
        info = sf.info(io.BytesIO(bytes(data)))
    except Exception:  # garbage raises several types; all mean "not audio"
        return None
    frames = int(info.frames)
    if frames <= 0 or info.samplerate <= 0 or frames >= 2**62:  # libsndfile reports "unknown" as a huge count
        return None
    return frames, int(info.samplerate)


def audio_num_frames(data: bytes | memoryview, frontend: AudioFrontend) -> int | None:
    """Spectrogram frames encoded audio will give, from its header only; None if unreadable,
    empty or at a rate the front-end rejects."""
    info = audio_info(data)
    if info is None:
        return None
    samples, rate = info
    try:
        check_sample_rate(rate, frontend)
    except ValueError:
        return None
    return frontend.num_frames(resampled_length(samples, rate, frontend.sample_rate))


def encode_wav(wave: np.ndarray, sample_rate: int) -> bytes:
    """float (n,) in [-1, 1] -> 16-bit PCM WAV bytes (what the generators store in LMDBs)."""
    sf = require("soundfile", "reading audio")

    buf = io.BytesIO()
    sf.write(buf, np.clip(np.asarray(wave, dtype=np.float32), -1.0, 1.0), int(sample_rate), format="WAV", subtype="PCM_16")
    return buf.getvalue()


# ------------------------------------------------------------------------------------ features
def hz_to_mel(f: np.ndarray | float) -> np.ndarray:
    """Slaney's mel scale (librosa's default): linear to 1 kHz (3 mels per 200 Hz), log above."""
    f = np.asarray(f, dtype=np.float64)
    mel = f / (200.0 / 3)
    log_step = math.log(6.4) / 27.0
    return np.where(f >= 1000.0, 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / log_step, mel)


def mel_to_hz(m: np.ndarray | float) -> np.ndarray:
    """Inverse of ``hz_to_mel``."""
    m = np.asarray(m, dtype=np.float64)
    log_step = math.log(6.4) / 27.0
    return np.where(m >= 15.0, 1000.0 * np.exp(log_step * (m - 15.0)), m * (200.0 / 3))


def vtlp_frequencies(freqs: np.ndarray, alpha: float, nyquist: float, boundary: float = 0.85) -> np.ndarray:
    """Vocal tract length perturbation (Jaitly & Hinton 2013): frequencies scaled by ``alpha`` up to
    ``boundary * nyquist * min(alpha, 1) / alpha``, then linearly to ``nyquist`` (which stays fixed)."""
    knee = boundary * nyquist * min(alpha, 1.0) / alpha
    high = nyquist - (nyquist - boundary * nyquist * min(alpha, 1.0)) / (nyquist - knee) * (nyquist - freqs)
    return np.where(freqs <= knee, freqs * alpha, high)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None,
                   warp: float = 1.0) -> np.ndarray:
    """Triangular mel filters, Slaney-normalized (each has area ~1 in Hz): (n_mels, n_fft // 2 + 1) float32.
    ``warp`` != 1: the filters read the spectrum through ``vtlp_frequencies`` (a voice with a
    ``warp`` times longer/shorter vocal tract; training-time augmentation).

    Filter ``m`` rises from mel point ``m`` to ``m + 1`` and falls to ``m + 2`` of ``n_mels + 2``
    points equally spaced in mel between ``fmin`` and ``fmax``; the weights are those of
    ``librosa.filters.mel(htk=False, norm="slaney")``. ``ValueError`` if a filter catches no FFT
    bin (too many mels for ``n_fft``).
    """
    fmax = sample_rate / 2 if fmax is None else fmax
    fft_freqs = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)  # (F,)
    if warp != 1.0:
        fft_freqs = vtlp_frequencies(fft_freqs, warp, sample_rate / 2)
    mel_points = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))  # (M + 2,)
    widths = np.diff(mel_points)  # (M + 1,)
    ramps = mel_points[:, None] - fft_freqs[None, :]  # (M + 2, F)
    lower = -ramps[:-2] / widths[:-1, None]  # (M, F) rising edge
    upper = ramps[2:] / widths[1:, None]  # (M, F) falling edge
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_points[2:] - mel_points[:-2]))[:, None]  # Slaney: constant energy per filter
    empty = np.flatnonzero(weights.max(axis=1) <= 0)
    if empty.size and warp == 1.0:
        raise ValueError(
            f"{n_mels} mel bands over {fmin:g}..{fmax:g} Hz are too many for n_fft {n_fft} at {sample_rate} Hz "
            f"(band {int(empty[0])} catches no FFT bin): use fewer mels or a larger n_fft"
        )
    return weights.astype(np.float32)


_FILTERBANKS: dict[tuple, torch.Tensor] = {}
_WINDOWS: dict[int, torch.Tensor] = {}


def _filterbank_tensor(fe: AudioFrontend, warp: float = 1.0) -> torch.Tensor:
    import torch

    if warp != 1.0:  # a fresh warp per utterance: not cached
        return torch.from_numpy(mel_filterbank(fe.sample_rate, fe.fft_size, fe.n_mels, fe.fmin, fe.top_frequency, warp))
    key = (fe.sample_rate, fe.fft_size, fe.n_mels, fe.fmin, fe.top_frequency)
    fb = _FILTERBANKS.get(key)
    if fb is None:
        fb = _FILTERBANKS[key] = torch.from_numpy(mel_filterbank(fe.sample_rate, fe.fft_size, fe.n_mels, fe.fmin, fe.top_frequency))
    return fb


def log_mel(wave: np.ndarray | torch.Tensor, frontend: AudioFrontend, *, normalize: bool = True, warp: float = 1.0) -> torch.Tensor:
    """float (n,) audio at ``frontend.sample_rate`` -> float32 (n_mels, 1 + n // hop) log-mel spectrogram.
    ``warp``: VTLP factor of the filterbank (``mel_filterbank``; training-time augmentation).

    Natural log of mel power with a floor 80 dB below the utterance's peak; ``normalize``: as
    ``frontend.normalize`` says, each mel bin shifted and scaled to zero mean and unit variance
    over the utterance (bins of constant energy become 0), or the whole spectrogram at once.
    """
    import torch

    x = torch.as_tensor(wave, dtype=torch.float32).reshape(-1)  # (n,)
    if x.numel() == 0:
        raise ValueError("log_mel needs at least one sample")
    win = frontend.win_length
    window = _WINDOWS.get(win)
    if window is None:
        window = _WINDOWS[win] = torch.hann_window(win, periodic=True)
    spec = torch.stft(
        x, frontend.fft_size, hop_length=frontend.hop_length, win_length=win, window=window,
        center=True, pad_mode="constant", return_complex=True,
    )  # (F, frames)
    power = spec.real.square() + spec.imag.square()  # (F, frames)
    mel = _filterbank_tensor(frontend, warp) @ power  # (n_mels, F) @ (F, frames) -> (n_mels, frames)
    logs = torch.log(mel.clamp_min(1e-10))
    logs = torch.maximum(logs, logs.max() - _TOP_DB * math.log(10) / 10)
    if normalize:
        per_bin = frontend.normalize == "bin"
        mean = logs.mean(dim=1, keepdim=True) if per_bin else logs.mean()
        std = logs.std(dim=1, unbiased=False, keepdim=True) if per_bin else logs.std(unbiased=False)
        logs = (logs - mean) / std.clamp_min(1e-3)
    return logs.contiguous()


def log_mel_numpy(wave: np.ndarray, frontend: AudioFrontend, *, normalize: bool = True) -> np.ndarray:
    """``log_mel`` in numpy alone (for the torch-free onnxruntime deployment): the same centred,
    zero-padded STFT with a periodic Hann window, filterbank, 80 dB floor and normalization;
    float32 (n_mels, 1 + n // hop), equal to ``log_mel`` within float32 rounding."""
    x = np.asarray(wave, dtype=np.float64).reshape(-1)  # (n,)
    if x.size == 0:
        raise ValueError("log_mel needs at least one sample")
    n_fft, hop, win = frontend.fft_size, frontend.hop_length, frontend.win_length
    window = np.zeros(n_fft)
    left = (n_fft - win) // 2  # torch.stft centres a shorter window inside n_fft
    window[left : left + win] = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)
    x = np.pad(x, (n_fft // 2, n_fft // 2))  # center=True, pad_mode="constant"
    frames = 1 + (x.size - n_fft) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(frames)[:, None]  # (frames, n_fft)
    spec = np.fft.rfft(x[idx] * window, axis=1)  # (frames, F)
    power = spec.real**2 + spec.imag**2
    fb = mel_filterbank(frontend.sample_rate, n_fft, frontend.n_mels, frontend.fmin, frontend.top_frequency)
    logs = np.log(np.maximum(fb.astype(np.float64) @ power.T, 1e-10))  # (n_mels, frames)
    logs = np.maximum(logs, logs.max() - _TOP_DB * math.log(10) / 10)
    if normalize:
        axis = 1 if frontend.normalize == "bin" else None
        logs = (logs - logs.mean(axis=axis, keepdims=True)) / np.maximum(logs.std(axis=axis, keepdims=True), 1e-3)
    return logs.astype(np.float32)


def audio_features(
    source: str | os.PathLike | bytes | memoryview | np.ndarray,
    frontend: AudioFrontend,
    *,
    sample_rate: int | None = None,
    augment: SpeechAugment | None = None,
    min_width: int = 1,
    name: str | None = None,
    use_torch: bool = True,
) -> np.ndarray:
    """Audio -> float32 (n_mels, frames) model input, frames >= ``min_width`` (short clips are
    right-padded by repeating the last frame, as ``pad_batch`` does); augmented when given.
    ``use_torch=False``: ``log_mel_numpy`` (no augmentation), for deployments without torch."""
    wave = load_audio(source, sample_rate, frontend=frontend, name=name)  # (n,)
    if not use_torch:
        if augment is not None:
            raise ValueError("augmentation needs the torch front-end")
        out = log_mel_numpy(wave, frontend)
    else:
        warp = 1.0
        if augment is not None:
            wave = augment.augment_wave(wave, frontend.sample_rate)
            warp = augment.draw_warp()
        spec = log_mel(wave, frontend, warp=warp)  # (n_mels, frames)
        if augment is not None:
            spec = augment.augment_spec(spec)
        out = spec.numpy()
    if out.shape[1] < min_width:
        out = np.pad(out, [(0, 0), (0, min_width - out.shape[1])], mode="edge")
    return out


# ------------------------------------------------------------------------------------ augmentation
@dataclass(frozen=True)
class SpeechAugmentConfig:
    """Probabilities and ranges of ``SpeechAugment`` (the ``default`` strength)."""

    edge_trim_p: float = 0.3
    edge_trim_db: tuple[float, float] = (12.0, 30.0)  # cut the ends below this much under the loudest 10 ms (FSDD's clips: 15-30 dB)
    speed_p: float = 0.5
    speeds: tuple[float, ...] = (0.9, 0.95, 1.05, 1.1)  # Ko et al. 2015 use 0.9, 1.0, 1.1
    volume_p: float = 0.5
    volume_db: float = 6.0  # gain drawn from +-volume_db
    noise_p: float = 0.4
    snr_db: tuple[float, float] = (10.0, 35.0)
    vtlp_p: float = 0.5
    vtlp_range: float = 0.1  # warp factor drawn from 1 +- vtlp_range (Jaitly & Hinton: 0.9..1.1)
    reverb_p: float = 0.25
    rt60: tuple[float, float] = (0.1, 0.6)  # seconds: a synthetic room's reverberation time
    band_p: float = 0.15
    band_hz: tuple[float, float] = (300.0, 3400.0)  # telephone band
    freq_masks: int = 2
    freq_mask_width: int = 8  # mel bins, at most (SpecAugment's F)
    time_masks: int = 2
    time_mask_fraction: float = 0.05  # of the utterance's frames, at most (SpecAugment's p)
    time_mask_width: int = 20  # frames, at most (SpecAugment's T)


SPEECH_STRENGTHS = {"none": 0.0, "light": 0.5, "default": 1.0, "strong": 1.6}


def frame_rms(wave: np.ndarray, sample_rate: int, frame_ms: float = 10.0) -> tuple[np.ndarray, int]:
    """(RMS of each whole ``frame_ms`` frame (n,) float64, the frame length in samples); a tail
    shorter than a frame is left out."""
    frame = max(1, int(sample_rate * frame_ms / 1000))
    n = len(wave) // frame
    return np.sqrt(np.mean(np.square(wave[: n * frame].reshape(n, frame), dtype=np.float64), axis=1)), frame


def trim_silence(wave: np.ndarray, sample_rate: int, *, top_db: float = 35.0, frame_ms: float = 10.0) -> np.ndarray:
    """Cut leading and trailing frames more than ``top_db`` below the loudest frame (RMS)."""
    rms, frame = frame_rms(wave, sample_rate, frame_ms)  # (n,)
    if len(rms) < 2:
        return wave
    loud = np.flatnonzero(rms >= rms.max() * 10 ** (-top_db / 20))
    return wave[loud[0] * frame : (loud[-1] + 1) * frame]


def reverberate(wave: np.ndarray, sample_rate: int, rt60: float, rng: np.random.Generator) -> np.ndarray:
    """float32 (n,) -> (n,): convolved with a synthetic room impulse response (the direct sound,
    then Gaussian noise decaying by 60 dB over ``rt60`` seconds), at the input's RMS level."""
    length = max(2, int(rt60 * sample_rate))
    t = np.arange(length) / sample_rate
    rir = rng.standard_normal(length) * np.exp(-6.9078 * t / max(rt60, 1e-3)) * 0.3  # 6.9078 = ln(1000): -60 dB
    rir[0] = 1.0
    size = 1 << (len(wave) + length - 2).bit_length()
    wet = np.fft.irfft(np.fft.rfft(wave, size) * np.fft.rfft(rir, size), size)[: len(wave)]
    rms_in = float(np.sqrt(np.mean(np.square(wave, dtype=np.float64)))) or 1.0
    rms_out = float(np.sqrt(np.mean(np.square(wet)))) or 1.0
    return (wet * (rms_in / rms_out)).astype(np.float32)


def band_limit(wave: np.ndarray, sample_rate: int, low: float, high: float) -> np.ndarray:
    """float32 (n,) -> (n,) with the spectrum outside ``low..high`` Hz removed (a telephone line),
    through 100 Hz raised-cosine edges."""
    spec = np.fft.rfft(wave)
    freqs = np.fft.rfftfreq(len(wave), 1.0 / sample_rate)
    edge = 100.0
    gain = np.clip((freqs - (low - edge)) / edge, 0, 1) * np.clip(((high + edge) - freqs) / edge, 0, 1)
    gain = 0.5 - 0.5 * np.cos(np.pi * gain)
    return np.fft.irfft(spec * gain, len(wave)).astype(np.float32)


class SpeechAugment:
    """Training-time speech augmentation, deterministic given ``set_seed``.

    ``augment_wave``: an edge cut (leading and trailing audio below a random level under the
    loudest frame removed, as recordings trimmed of their silence too tightly lose the first and
    last sounds), speed perturbation (resampling, so pitch and tempo change together),
    reverberation in a synthetic room, telephone band-limiting, volume gain, additive white or
    brown noise at a random SNR. ``draw_warp``: vocal tract length perturbation of the mel
    filterbank (a different speaker's formants; Jaitly & Hinton 2013). ``augment_spec``: SpecAugment
    (Park et al. 2019) frequency and time masks, filled with 0, the normalized mean.
    ``strength`` scales every probability and magnitude (``none`` is the identity).
    """

    def __init__(self, strength: str = "default", config: SpeechAugmentConfig | None = None, *, seed: int | None = None) -> None:
        if strength not in SPEECH_STRENGTHS:
            raise ValueError(f"unknown augmentation strength {strength!r}; choose one of {', '.join(SPEECH_STRENGTHS)}")
        self.strength = strength
        self.k = SPEECH_STRENGTHS[strength]
        self.config = config or SpeechAugmentConfig()
        self.rng = np.random.default_rng(seed)

    def set_seed(self, seed: int | None) -> None:
        """Reseed the one random stream every transform draws from (None: fresh entropy)."""
        self.rng = np.random.default_rng(seed)

    def _p(self, base: float) -> bool:
        return self.k > 0 and self.rng.random() < min(1.0, base * self.k)

    def augment_wave(self, wave: np.ndarray, sample_rate: int) -> np.ndarray:
        """float32 (n,) -> float32 (m,) (m != n after a speed change or an edge cut)."""
        c = self.config
        if self._p(c.edge_trim_p):  # a recording cut tightly at its ends, into the first and last sounds
            wave = trim_silence(wave, sample_rate, top_db=float(self.rng.uniform(*c.edge_trim_db)))
        if self._p(c.speed_p):
            speed = float(self.rng.choice(c.speeds))
            speed = 1.0 + (speed - 1.0) * min(self.k, 1.0)  # light: half the change
            ratio = Fraction(speed).limit_denominator(100)
            # playing n samples 'speed' times faster = resampling to n / speed samples
            wave = resample(wave, ratio.numerator, ratio.denominator)
        if self._p(c.reverb_p):
            wave = reverberate(wave, sample_rate, float(self.rng.uniform(*c.rt60)) * min(self.k, 1.0), self.rng)
        if self._p(c.band_p):
            wave = band_limit(wave, sample_rate, *c.band_hz)
        if self._p(c.volume_p):
            gain_db = self.rng.uniform(-c.volume_db, c.volume_db) * min(self.k, 1.0)
            wave = wave * np.float32(10 ** (gain_db / 20))
        if self._p(c.noise_p):
            lo, hi = c.snr_db
            snr = self.rng.uniform(lo + (hi - lo) * max(0.0, 1 - self.k) / 2, hi)
            noise = self.rng.standard_normal(len(wave))
            if self.rng.random() < 0.5:  # brown noise: integrated white noise, DC removed
                noise = np.cumsum(noise)
                noise -= np.linspace(noise[0], noise[-1], len(noise))
            signal_power = float(np.mean(np.square(wave, dtype=np.float64)))
            noise_power = float(np.mean(np.square(noise))) or 1.0
            if signal_power > 0:
                wave = wave + (noise * math.sqrt(signal_power / noise_power / 10 ** (snr / 10))).astype(np.float32)
        return np.clip(wave, -1.0, 1.0).astype(np.float32, copy=False)

    def draw_warp(self) -> float:
        """The filterbank's VTLP factor for this utterance (1.0: none)."""
        c = self.config
        if not self._p(c.vtlp_p):
            return 1.0
        return 1.0 + float(self.rng.uniform(-c.vtlp_range, c.vtlp_range)) * self.k  # strong: +-16%

    def augment_spec(self, spec: torch.Tensor) -> torch.Tensor:
        """SpecAugment masks on a (n_mels, frames) spectrogram; returns a masked copy."""
        c = self.config
        if self.k <= 0:
            return spec
        spec = spec.clone()
        n_mels, frames = spec.shape
        f_width = int(round(c.freq_mask_width * self.k))
        for _ in range(c.freq_masks):
            w = int(self.rng.integers(0, min(f_width, n_mels // 4) + 1))
            if w:
                f0 = int(self.rng.integers(0, n_mels - w + 1))
                spec[f0 : f0 + w] = 0.0
        t_width = int(min(c.time_mask_width * self.k, c.time_mask_fraction * self.k * frames))
        for _ in range(c.time_masks):
            w = int(self.rng.integers(0, t_width + 1))
            if w:
                t0 = int(self.rng.integers(0, frames - w + 1))
                spec[:, t0 : t0 + w] = 0.0
        return spec

    def __repr__(self) -> str:
        return f"SpeechAugment(strength={self.strength!r})"


def build_speech_augmentation(spec: bool | str | SpeechAugment | None) -> SpeechAugment | None:
    """``LmdbDataset``'s ``augment`` argument for audio: False/None, True (``default``), a strength, or an object."""
    if spec is None or spec is False:
        return None
    if isinstance(spec, SpeechAugment):
        return spec
    if spec is True:
        return SpeechAugment("default")
    if isinstance(spec, str):
        return SpeechAugment(spec)
    if hasattr(spec, "augment_wave") and hasattr(spec, "augment_spec"):
        return spec  # duck-typed
    raise ValueError(f"augment for audio must be a bool, a strength name or a SpeechAugment, got {type(spec).__name__}")
