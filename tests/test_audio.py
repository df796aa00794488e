"""Speech: the log-mel front-end, audio LMDBs, augmentation, the speech recognizer, the speech
CLIs and generators. Every fixture is synthesized in tmp_path (tones and noise written with
soundfile); tests needing espeak-ng skip when it is absent."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from conftest import ROOT, load_script
from crnn_ocr.recognizer import load_recognizer
from crnn_ocr.speech.audio import (
    AudioFrontend,
    SpeechAugment,
    audio_features,
    audio_info,
    audio_num_frames,
    hz_to_mel,
    load_audio,
    log_mel,
    log_mel_numpy,
    mel_filterbank,
    mel_to_hz,
    resample,
    resampled_length,
)

torch.set_num_threads(1)
ENV = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "OMP_NUM_THREADS": "1"}
FE8K = AudioFrontend(sample_rate=8000, n_mels=32)  # small: tests train crnn_compact at height 32
CHARS = list("abcdefghijklmnopqrstuvwxyz'") + [" "]


def tone(freq: float, seconds: float, rate: int, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def wav_bytes(wave: np.ndarray, rate: int, fmt: str = "WAV") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, wave, rate, format=fmt, **({"subtype": "PCM_16"} if fmt == "WAV" else {}))
    return buf.getvalue()


def word_wave(word: str, rate: int = 8000) -> np.ndarray:
    """A made-up 'word': one tone per letter (distinct pitch per letter), 80 ms each, short gaps."""
    parts = []
    for ch in word:
        parts += [tone(300 + 90 * (ord(ch) - 97), 0.08, rate), np.zeros(int(0.02 * rate), np.float32)]
    return np.concatenate([np.zeros(int(0.05 * rate), np.float32), *parts])


def run_tool(script: Path, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(script), *map(str, args)], capture_output=True, text=True, env=ENV, timeout=300)


def one_line_error(r: subprocess.CompletedProcess, *needles: str) -> str:
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


# ------------------------------------------------------------------------------------ filterbank
# librosa 0.11.0 librosa.filters.mel(sr, n_fft, n_mels, fmin=20.0) (htk=False, norm="slaney"):
# row -> (first non-zero bin, last non-zero bin, argmax bin, max weight, row sum)
LIBROSA_MEL = {
    (16000, 512, 64): {
        0: (1, 3, 2, 0.019999679177999496, 0.03397412970662117),
        5: (9, 10, 9, 0.014474843628704548, 0.028680097311735153),
        20: (31, 33, 32, 0.01597953774034977, 0.0304097980260849),
        40: (78, 85, 82, 0.007803439628332853, 0.03183648735284805),
        63: (233, 255, 244, 0.0027284943498671055, 0.0319967120885849),
    },
    (8000, 256, 64): {
        0: (1, 2, 2, 0.02269286848604679, 0.031491462141275406),
        63: (119, 127, 123, 0.006456516683101654, 0.03171252831816673),
    },
}


@pytest.mark.parametrize("key", sorted(LIBROSA_MEL))
def test_filterbank_matches_librosa(key):
    sr, n_fft, n_mels = key
    fb = mel_filterbank(sr, n_fft, n_mels, fmin=20.0)
    assert fb.shape == (n_mels, n_fft // 2 + 1) and fb.dtype == np.float32
    for row, (first, last, peak, peak_value, total) in LIBROSA_MEL[key].items():
        nz = np.flatnonzero(fb[row])
        assert (nz[0], nz[-1], int(fb[row].argmax())) == (first, last, peak)
        assert fb[row].max() == pytest.approx(peak_value, rel=1e-5)
        assert fb[row].sum() == pytest.approx(total, rel=1e-5)


def test_mel_scale_is_slaney():
    np.testing.assert_allclose(hz_to_mel([0, 500, 1000, 2000, 4000]), [0, 7.5, 15, 25.0818801573, 35.1637603146], rtol=1e-9)
    np.testing.assert_allclose(mel_to_hz([5, 15, 25, 40]), [333.3333333333, 1000, 1988.7728181328, 5577.8000117494], rtol=1e-9)
    f = np.linspace(0, 8000, 101)
    np.testing.assert_allclose(mel_to_hz(hz_to_mel(f)), f, atol=1e-6)


def test_filterbank_brute_force_triangles():
    """Each weight equals the Slaney triangle evaluated point by point."""
    sr, n_fft, n_mels, fmin, fmax = 16000, 400, 40, 0.0, 8000.0
    fb = mel_filterbank(sr, n_fft, n_mels, fmin, fmax)
    pts = [float(mel_to_hz(hz_to_mel(fmin) + k * (hz_to_mel(fmax) - hz_to_mel(fmin)) / (n_mels + 1))) for k in range(n_mels + 2)]
    for m in (0, 7, 25, 39):
        lo, c, hi = pts[m], pts[m + 1], pts[m + 2]
        for b in range(n_fft // 2 + 1):
            f = b * sr / n_fft
            tri = max(0.0, min((f - lo) / (c - lo), (hi - f) / (hi - c)))
            assert fb[m, b] == pytest.approx(tri * 2 / (hi - lo), rel=1e-5, abs=1e-9)


def test_too_many_mels_for_the_fft_is_an_error():
    with pytest.raises(ValueError, match="too many for n_fft 64"):
        mel_filterbank(8000, 64, 80)


def test_frontend_defaults_and_round_trip():
    fe = AudioFrontend()
    assert (fe.sample_rate, fe.n_mels, fe.win_length, fe.hop_length, fe.fft_size, fe.min_input_rate) == (16000, 64, 400, 160, 512, 8000)
    assert (FE8K.win_length, FE8K.hop_length, FE8K.fft_size, FE8K.min_input_rate) == (200, 80, 256, 4000)
    assert AudioFrontend.from_dict({**FE8K.to_dict(), "future_key": 1}) == FE8K
    assert fe.frames_to_seconds(150) == 1.5
    with pytest.raises(ValueError, match="fmin < fmax"):
        AudioFrontend(sample_rate=8000, fmax=6000)


# ------------------------------------------------------------------------------------ signal
@pytest.mark.parametrize("src,dst", [(44100, 16000), (22050, 8000), (8000, 16000), (11025, 16000)])
def test_resampling_keeps_a_tones_frequency(src, dst):
    x = tone(1000.0, 1.0, src)
    y = resample(x, src, dst)
    assert len(y) == resampled_length(len(x), src, dst) == int(np.ceil(len(x) * dst / src))
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    peak_hz = np.argmax(spectrum) * dst / len(y)
    assert abs(peak_hz - 1000.0) <= dst / len(y)
    assert np.max(np.abs(y[len(y) // 4 : -len(y) // 4])) == pytest.approx(0.5, abs=0.02)  # amplitude kept


@pytest.mark.parametrize("n", [1, 79, 80, 81, 1000, 8000])
def test_frame_count_formula(n):
    spec = log_mel(np.random.default_rng(n).standard_normal(n).astype(np.float32) * 0.1, FE8K)
    assert spec.shape == (32, FE8K.num_frames(n)) == (32, 1 + n // 80)


def test_log_mel_tone_lands_in_its_band_and_is_normalized():
    x = tone(1000.0, 1.0, 8000) + np.random.default_rng(0).standard_normal(8000).astype(np.float32) * 1e-3
    raw = log_mel(x, FE8K, normalize=False)
    centres = mel_to_hz(np.linspace(hz_to_mel(FE8K.fmin), hz_to_mel(4000), 34))[1:-1]
    assert int(raw.mean(dim=1).argmax()) == int(np.argmin(np.abs(centres - 1000.0)))
    norm = log_mel(x, FE8K)
    torch.testing.assert_close(norm.mean(dim=1), torch.zeros(32), atol=1e-4, rtol=0)
    torch.testing.assert_close(norm.std(dim=1, unbiased=False), torch.ones(32), atol=1e-3, rtol=0)


# ------------------------------------------------------------------------------------ reading
def test_load_audio_formats_channels_and_arrays(tmp_path):
    x = tone(440.0, 0.5, 22050)
    for fmt, ext in (("WAV", "wav"), ("FLAC", "flac"), ("OGG", "ogg")):
        (tmp_path / f"a.{ext}").write_bytes(wav_bytes(x, 22050, fmt))
        y = load_audio(tmp_path / f"a.{ext}", frontend=FE8K)
        assert y.dtype == np.float32 and y.shape == (resampled_length(len(x), 22050, 8000),)
        assert audio_info((tmp_path / f"a.{ext}").read_bytes()) == (len(x), 22050)
    stereo = np.stack([x, -x], axis=1)  # opposite channels cancel when mixed to mono
    assert np.max(np.abs(load_audio(wav_bytes(stereo, 22050), target_rate=22050))) < 1e-4
    pcm = (x * 32767).astype(np.int16)
    np.testing.assert_allclose(load_audio(pcm, 22050, target_rate=22050), x, atol=1e-4)
    np.testing.assert_allclose(load_audio(x, 22050, target_rate=22050), x)
    data = wav_bytes(x, 22050)
    assert audio_num_frames(data, FE8K) == FE8K.num_frames(resampled_length(len(x), 22050, 8000))
    assert audio_features(data, FE8K).shape == (32, audio_num_frames(data, FE8K))
    assert audio_features(data[:44 + 20], FE8K, min_width=16).shape == (32, 16)  # 10 samples: padded


def test_load_audio_errors_name_the_file(tmp_path):
    (tmp_path / "notes.wav").write_text("this is not a sound " * 10)
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "silent.wav").write_bytes(wav_bytes(np.zeros(0, np.float32), 8000))
    (tmp_path / "low.wav").write_bytes(wav_bytes(tone(300, 0.2, 2000), 2000))
    cases = {
        "notes.wav": "not a readable audio file", "empty.wav": "empty file", "silent.wav": "empty audio (0 samples)",
        "low.wav": "sample rate 2000 Hz is too low", "missing.wav": "audio file not found",
    }
    for name, message in cases.items():
        with pytest.raises(ValueError) as e:
            load_audio(tmp_path / name, frontend=FE8K)
        assert str(e.value).startswith(str(tmp_path / name) + ": ") and message in str(e.value)
        assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="give the sample rate"):
        load_audio(np.zeros(10, np.float32))
    with pytest.raises(ValueError, match="NaN"):
        load_audio(np.array([0.0, np.nan], np.float32), 8000)
    assert audio_info(b"garbage" * 20) is None
    assert audio_info((tmp_path / "silent.wav").read_bytes()) is None


# ------------------------------------------------------------------------------------ augmentation
def test_spec_augment_is_deterministic_per_seed_and_masks_with_zero():
    spec = torch.randn(64, 200) + 5.0  # no natural zeros
    original = spec.clone()
    aug = SpeechAugment("strong")
    outs = []
    for seed in (3, 3, 4):
        aug.set_seed(seed)
        outs.append(aug.augment_spec(spec))
    assert torch.equal(outs[0], outs[1]) and not torch.equal(outs[0], outs[2])
    masked = outs[0] == 0
    assert masked.any() and torch.equal(outs[0][~masked], spec[~masked])
    assert torch.equal(spec, original)  # the input is not modified
    rows, cols = masked.all(dim=1), masked.all(dim=0)
    assert torch.equal(masked, rows[:, None] | cols[None, :])  # whole bands and whole frames only
    assert rows.sum() <= 2 * 13 and cols.sum() <= 2 * 16  # strong: F = 8*1.6 bins, T = min(20*1.6, 5%*1.6*200) frames
    none = SpeechAugment("none")
    assert none.augment_spec(spec) is spec
    x = tone(500, 0.5, 8000)
    assert none.augment_wave(x, 8000) is not None and np.array_equal(none.augment_wave(x, 8000), x)


def test_wave_augment_is_deterministic_and_changes_speed():
    x = tone(500, 1.0, 8000)
    aug = SpeechAugment("default")
    results = []
    for seed in range(12):
        aug.set_seed(seed)
        a = aug.augment_wave(x, 8000)
        aug.set_seed(seed)
        np.testing.assert_array_equal(a, aug.augment_wave(x, 8000))
        results.append(a)
    lengths = {len(a) for a in results}
    assert len(lengths) > 1 and lengths <= {8000, *(int(np.ceil(8000 / s)) for s in (0.9, 0.95, 1.05, 1.1))}
    assert any(len(a) == 8000 and not np.array_equal(a, x) for a in results)  # volume or noise alone
    with pytest.raises(ValueError, match="unknown augmentation strength"):
        SpeechAugment("loud")


def test_vtlp_moves_a_tone_by_the_warp_factor_below_the_knee():
    from crnn_ocr.speech.audio import mel_filterbank, vtlp_frequencies

    freqs = np.linspace(0, 4000, 129)
    for alpha in (0.9, 1.1):
        w = vtlp_frequencies(freqs, alpha, 4000.0)
        knee = 0.85 * 4000 * min(alpha, 1) / alpha
        np.testing.assert_allclose(w[freqs <= knee], freqs[freqs <= knee] * alpha)
        assert w[0] == 0 and w[-1] == pytest.approx(4000.0) and np.all(np.diff(w) > 0)  # monotone, ends fixed
    np.testing.assert_array_equal(mel_filterbank(8000, 256, 32, 20.0, warp=1.0), mel_filterbank(8000, 256, 32, 20.0))
    x = tone(1000.0, 1.0, 8000) + np.random.default_rng(0).standard_normal(8000).astype(np.float32) * 1e-3
    centres = mel_to_hz(np.linspace(hz_to_mel(FE8K.fmin), hz_to_mel(4000), 34))[1:-1]
    for alpha in (0.9, 1.1):  # a 1 kHz tone read through a warp of alpha lands where 1000 * alpha would
        band = int(log_mel(x, FE8K, normalize=False, warp=alpha).mean(dim=1).argmax())
        assert band == int(np.argmin(np.abs(centres - 1000.0 * alpha)))


def test_reverb_and_telephone_band_keep_length_and_level():
    from crnn_ocr.speech.audio import band_limit, reverberate

    x = tone(1000.0, 0.5, 8000)
    x[2000:] = 0  # a tone that stops: the room keeps it ringing
    y = reverberate(x, 8000, 0.4, np.random.default_rng(0))
    assert y.shape == x.shape and y.dtype == np.float32
    assert np.sqrt(np.mean(y.astype(np.float64) ** 2)) == pytest.approx(np.sqrt(np.mean(x.astype(np.float64) ** 2)), rel=1e-4)
    assert np.abs(y[2400:2800]).max() > 0.01  # the tail after the tone stopped
    spectrum = lambda w: np.abs(np.fft.rfft(w))  # noqa: E731
    low, mid = tone(150.0, 1.0, 8000), tone(1000.0, 1.0, 8000)
    assert spectrum(band_limit(low, 8000, 300.0, 3400.0)).max() < 1e-3 * spectrum(low).max()  # 150 Hz: gone
    np.testing.assert_allclose(band_limit(mid, 8000, 300.0, 3400.0), mid, atol=1e-5)  # 1 kHz: untouched


def test_edge_cut_removes_the_ends_below_the_drawn_level():
    from crnn_ocr.speech.audio import SpeechAugmentConfig

    quiet, loud = 0.1 * tone(500.0, 0.05, 8000), tone(500.0, 0.2, 8000)  # 400 and 1600 samples; quiet is 20 dB under loud
    silence = np.zeros(800, np.float32)
    x = np.concatenate([silence, quiet, loud, quiet, silence])
    for level, kept in ((15.0, loud), (25.0, np.concatenate([quiet, loud, quiet]))):
        only_cut = SpeechAugmentConfig(edge_trim_p=1.0, edge_trim_db=(level, level), speed_p=0, volume_p=0, noise_p=0, reverb_p=0, band_p=0)
        np.testing.assert_array_equal(SpeechAugment("default", only_cut, seed=0).augment_wave(x, 8000), kept)
    never = SpeechAugmentConfig(edge_trim_p=0.0, speed_p=0, volume_p=0, noise_p=0, reverb_p=0, band_p=0)
    np.testing.assert_array_equal(SpeechAugment("default", never, seed=0).augment_wave(x, 8000), x)


def test_bench_edges_reads_how_tightly_a_clip_is_cut():
    from conftest import ROOT, load_script

    bench = load_script("bench_edges", ROOT / "bench" / "bench_edges.py")
    quiet, loud = 0.1 * tone(500.0, 0.05, 8000), tone(500.0, 0.2, 8000)
    first, last = bench.edge_levels(np.concatenate([quiet, loud]), 8000)
    assert first == pytest.approx(-20.0, abs=1e-4) and last == pytest.approx(0.0, abs=1e-4)
    first, _ = bench.edge_levels(np.concatenate([np.zeros(80, np.float32), loud]), 8000)
    loud_rms = np.sqrt(np.mean(np.square(loud[:80], dtype=np.float64)))
    assert first == pytest.approx(20 * np.log10(1e-10 / loud_rms), abs=1e-4)  # digital silence: the 1e-10 floor


def test_speaker_augmentations_are_drawn_and_seeded():
    from crnn_ocr.speech.audio import SpeechAugmentConfig

    only_room = SpeechAugmentConfig(edge_trim_p=0, speed_p=0, volume_p=0, noise_p=0, vtlp_p=0, reverb_p=1.0, band_p=0)
    aug = SpeechAugment("default", only_room)
    x = tone(500.0, 0.5, 8000)
    aug.set_seed(3)
    a = aug.augment_wave(x, 8000)
    aug.set_seed(3)
    np.testing.assert_array_equal(a, aug.augment_wave(x, 8000))
    assert a.shape == x.shape and not np.allclose(a, x)
    warps = []
    for seed in range(40):
        aug = SpeechAugment("default", seed=seed)
        warps.append(aug.draw_warp())
    assert 1.0 in warps and all(0.9 <= w <= 1.1 for w in warps) and len(set(warps)) > 10
    assert SpeechAugment("none").draw_warp() == 1.0
    strong = [SpeechAugment("strong", seed=seed).draw_warp() for seed in range(40)]
    assert all(0.84 <= w <= 1.16 for w in strong) and (min(strong) < 0.9 or max(strong) > 1.1)  # strong widens the warp


@pytest.mark.skipif(shutil.which("flite") is None, reason="flite is not installed")
def test_tts_voices_of_every_installed_engine_speak():
    from crnn_ocr.synth.voices import Voice, available_voices, speak_many

    voices = available_voices()
    engines = {v.engine for v in voices}
    assert "flite" in engines and Voice("flite", "slt") in voices
    with pytest.raises(ValueError, match="unknown TTS engine 'sapi'"):
        available_voices(["sapi"])
    chosen = [next(v for v in voices if v.engine == e) for e in sorted(engines)]
    items = [("seven", v) for v in chosen]
    waves = speak_many(items, seed=0, sample_rate=8000)
    assert len(waves) == len(chosen)
    for w in waves:  # a word: 0.2-2 s of audible samples
        assert w.dtype == np.float32 and 1600 <= len(w) <= 16000 and np.abs(w).max() > 0.05
    again = speak_many(items, seed=0, sample_rate=8000)
    assert all(np.array_equal(a, b) for a, b in zip(waves, again))  # prosody drawn from the seed


def test_festival_english_voices_and_accent_voices_are_kept_apart(tmp_path):
    from crnn_ocr.synth.voices import accent_voices, festival_voices

    for lang, voice in [("english", "kal_diphone"), ("us", "cmu_us_slt_arctic_hts"), ("czech", "czech_krb"),
                        ("finnish", "suopuhe.common"), ("finnish", "hy_fi_mv_diphone"), ("russian", "msu_ru_nsh_clunits")]:
        (tmp_path / lang / voice).mkdir(parents=True)
    assert festival_voices(tmp_path) == ["cmu_us_slt_arctic_hts", "kal_diphone"]  # a Czech voice never reads English text
    assert accent_voices(tmp_path) == ["czech_krb", "hy_fi_mv_diphone"]  # only those with respellings
    assert len(festival_voices(tmp_path, languages=None)) == 6
    assert festival_voices(tmp_path / "missing") == [] and accent_voices(tmp_path / "missing") == []


def test_accent_voices_respell_every_word_they_are_given():
    from crnn_ocr.synth.digits import DIGIT_WORDS
    from crnn_ocr.synth.voices import ACCENT_VOICES, RESPELLINGS, respell

    assert set(ACCENT_VOICES.values()) == set(RESPELLINGS)
    for table in RESPELLINGS.values():
        assert set(table) == {*DIGIT_WORDS, "yes", "no"}
    out = respell("three six no", "czech_krb", np.random.default_rng(0))
    three, six, no = out.split()
    assert three in ("fri", "srii") and six == "siks" and no == "nou"
    assert respell("three six no", "czech_krb", np.random.default_rng(0)) == out  # drawn from the rng
    assert {respell("three", "czech_ph", np.random.default_rng(s)) for s in range(20)} == {"fri", "srii"}
    with pytest.raises(ValueError, match="accent voice 'lp_diphone' cannot say 'hello': it speaks only zero, one"):
        respell("seven hello", "lp_diphone", np.random.default_rng(0))


@pytest.mark.skipif(not __import__("crnn_ocr.synth.voices", fromlist=["accent_voices"]).accent_voices(),
                    reason="no festival accent voice is installed (festvox-czech-krb, ...)")
def test_accent_voice_speaks_a_digit_the_same_way_for_a_seed():
    from crnn_ocr.synth.voices import Voice, accent_voices, speak_many

    items = [("seven", Voice("accent", accent_voices()[0])), ("three nine", Voice("accent", accent_voices()[-1]))]
    waves = speak_many(items, seed=3, sample_rate=8000)
    assert all(w.dtype == np.float32 and 1600 <= len(w) <= 24000 and np.abs(w).max() > 0.05 for w in waves)
    assert len(waves[1]) > len(waves[0])  # two words
    assert all(np.array_equal(a, b) for a, b in zip(waves, speak_many(items, seed=3, sample_rate=8000)))


# ------------------------------------------------------------------------------------ data
@pytest.fixture
def audio_lmdb(tmp_path):
    from crnn_ocr.data import write_lmdb

    samples = [(wav_bytes(word_wave(w), 8000), w) for w in ("yes", "no", "yes no")]
    samples.append((b"RIFF garbage that is not a wave file", "no"))
    samples.append((wav_bytes(tone(300, 3.0, 8000), 8000), "yes"))  # 301 frames: too long for max_width 200
    samples.append((wav_bytes(word_wave("ab"), 8000), "ab7"))  # '7' is not in the alphabet
    write_lmdb(tmp_path / "speech", samples)
    return tmp_path / "speech"


def test_lmdb_dataset_reads_audio(audio_lmdb):
    from crnn_ocr.alphabet import Alphabet
    from crnn_ocr.data import BucketBatchSampler, LmdbDataset, collate_batch

    alphabet = Alphabet(CHARS)
    ds = LmdbDataset(audio_lmdb, alphabet, replace(FE8K, max_width=200))
    assert (len(ds), ds.stats["corrupt"], ds.stats["too_wide"], ds.stats["unknown_symbols"]) == (3, 1, 1, 1)
    assert ds.summary() == "skipped 3 of 6: 1 unknown symbols, 1 unreadable audio, 1 audio longer than the max width"
    expected = [FE8K.num_frames(len(word_wave(w))) for w in ("yes", "no", "yes no")]
    assert ds.widths.tolist() == expected
    items = [ds[i] for i in range(3)]
    assert [it["image"].shape for it in items] == [(1, 32, w) for w in expected]
    assert [it["width"] for it in items] == expected and [it["label"] for it in items] == ["yes", "no", "yes no"]
    batch = collate_batch(items)
    assert batch["images"].shape == (3, 1, 32, max(expected)) and batch["input_widths"].tolist() == expected
    assert len(list(BucketBatchSampler.for_dataset(ds, 2))) == 2


def test_lmdb_audio_augmentation_is_seeded_per_sample_and_epoch(audio_lmdb):
    from crnn_ocr.alphabet import Alphabet
    from crnn_ocr.data import LmdbDataset

    alphabet = Alphabet(CHARS)
    make = lambda: LmdbDataset(audio_lmdb, alphabet, replace(FE8K, max_width=200), augment="strong", seed=7)  # noqa: E731
    a, b = make(), make()
    plain = LmdbDataset(audio_lmdb, alphabet, replace(FE8K, max_width=200))
    assert torch.equal(a[2]["image"], b[2]["image"])
    assert any(not torch.equal(a[i]["image"], plain[i]["image"]) for i in range(3))
    first = [a[i]["image"] for i in range(3)]
    a.set_epoch(1)
    assert any(x.shape != a[i]["image"].shape or not torch.equal(x, a[i]["image"]) for i, x in enumerate(first))


def test_create_lmdb_from_audio_label_file_and_folder(tmp_path):
    from crnn_ocr.data import create_lmdb_from_folder, create_lmdb_from_label_file, iter_lmdb_samples

    clips = tmp_path / "clips"
    clips.mkdir()
    (clips / "a.wav").write_bytes(wav_bytes(word_wave("yes"), 8000))
    (clips / "b.flac").write_bytes(wav_bytes(word_wave("no"), 8000, "FLAC"))
    (clips / "c.wav").write_text("not audio at all, just text" * 4)
    (clips / "a.txt").write_text("yes\n")
    (clips / "b.txt").write_text("no\n")
    (clips / "c.txt").write_text("yes\n")
    (tmp_path / "gt.tsv").write_text("clips/a.wav\tyes\nclips/b.flac\tno no\nclips/c.wav\tyes\nclips/gone.wav\tno\n")
    stats = create_lmdb_from_label_file(tmp_path / "l1", tmp_path / "gt.tsv")
    assert stats.media == "audio"
    assert stats.summary() == (f"wrote 2 samples to {tmp_path / 'l1'} (skipped 2: 1 unreadable audio file, 1 missing file; "
                               f"first: {clips / 'c.wav'} (unreadable audio), {clips / 'gone.wav'} (missing file))")
    stored = list(iter_lmdb_samples(tmp_path / "l1"))
    assert [(i, label) for i, _, label in stored] == [(1, "yes"), (2, "no no")]
    assert bytes(stored[1][1]) == (clips / "b.flac").read_bytes()  # stored as-is
    stats = create_lmdb_from_folder(tmp_path / "l2", clips)
    assert (stats.media, stats.written, stats.undecodable) == ("audio", 2, 1)
    r = run_tool(ROOT / "tools" / "create_lmdb.py", "--out", tmp_path / "l3", "--labels", tmp_path / "gt.tsv", "--audio")
    assert r.returncode == 0 and r.stdout.startswith("wrote 2 samples"), r.stderr


# ------------------------------------------------------------------------------------ recognizer
def test_word_spans_split_at_spaces():
    from crnn_ocr.alphabet import Alphabet
    from crnn_ocr.decoding import DecodeResult
    from crnn_ocr.speech import word_spans

    alphabet = Alphabet(CHARS)
    ids = tuple(alphabet.encode("ab  c"))
    res = DecodeResult.make("ab  c", ids, -1.0, ((0, 2), (2, 3), (4, 5), (6, 7), (9, 11)))
    assert word_spans(res, alphabet) == [("ab", 0, 3), ("c", 9, 11)]
    tokens = Alphabet(["yes", "no"])
    res = DecodeResult.make("no yes", (2, 1), -1.0, ((1, 2), (5, 7)))
    assert word_spans(res, tokens) == [("no", 1, 2), ("yes", 5, 7)]


def test_speech_decoder_options_use_the_trie_for_word_sequences():
    from crnn_ocr.alphabet import Alphabet
    from crnn_ocr.speech import speech_decoder_options

    opts = speech_decoder_options(Alphabet(CHARS), lexicon=["yes", "no"])
    assert (opts["lexicon_mode"], opts["beam_width"]) == ("trie", 8)
    assert speech_decoder_options(Alphabet(CHARS))["lexicon_mode"] == "auto"
    tokens = speech_decoder_options(Alphabet(["yes", "no"]), lexicon=["yes"])  # words as tokens: chained
    assert (tokens["lexicon_mode"], tokens["beam_width"]) == ("words", 8)


@pytest.fixture(scope="module")
def speech_model(tmp_path_factory):
    """Two steps of tools/train.py --kind speech on tone 'words' (the speech tools smoke test)."""
    from crnn_ocr.data import write_lmdb

    tmp = tmp_path_factory.mktemp("speech")
    words = ["yes", "no", "yes no", "no no", "yes yes", "no yes", "yes", "no"]
    write_lmdb(tmp / "lmdb", [(wav_bytes(word_wave(w), 8000), w) for w in words])
    (tmp / "chars.txt").write_text("\n".join(CHARS) + "\n")
    r = run_tool(ROOT / "tools" / "train.py", "--kind", "speech", "--data", tmp / "lmdb", "--val", tmp / "lmdb",
                 "--alphabet", tmp / "chars.txt", "--sample-rate", 8000, "--n-mels", 32, "--max-width", 300,
                 "--hidden-size", 16, "--max-steps", 2, "--batch-size", 4, "--workers", 0, "--out", tmp / "run",
                 "--no-progress", "--val-every", 2)
    assert r.returncode == 0, r.stderr
    assert "done: 2 steps" in r.stdout and "skipped 0 of 8" in r.stdout
    clip = tmp / "clip.wav"
    clip.write_bytes(wav_bytes(word_wave("yes no"), 8000))
    return tmp


def test_speech_checkpoint_and_python_api(speech_model):
    from crnn_ocr.checkpoint import load_checkpoint
    from crnn_ocr.recognizer import load_recognizer
    from crnn_ocr.speech import transcribe

    state = load_checkpoint(speech_model / "run" / "last.pt")
    assert state["kind"] == "speech" and state["model_config"]["height"] == 32
    assert state["frontend"] == {**FE8K.to_dict(), "max_width": 300}
    rec = load_recognizer(speech_model / "run" / "last.pt", device="cpu")
    assert rec.frontend == replace(FE8K, max_width=300) and rec.kind == "speech"
    clip = speech_model / "clip.wav"
    by_path = rec.read(clip)
    wave, rate = sf.read(clip, dtype="float32")
    by_array = rec.read(wave, sample_rate=rate)
    by_bytes = rec.read(clip.read_bytes())
    assert by_path.text == by_array.text == by_bytes.text
    assert by_path.score == pytest.approx(by_array.score, abs=1e-4)
    assert [r.text for r in rec.read_batch([clip, clip])] == [by_path.text] * 2
    t = transcribe(rec, clip)
    assert t.text == by_path.text and t.duration == pytest.approx(len(wave) / rate, abs=0.011)
    assert all(0 <= w.start <= w.end <= t.duration for w in t.words)
    assert " ".join(w.word for w in t.words) == " ".join(t.text.split())
    with pytest.raises(ValueError, match="give the sample rate"):
        rec.read(wave)


def test_infer_audio_prints_transcript_confidence_and_word_times(speech_model, tmp_path):
    ck = speech_model / "run" / "last.pt"
    clip = speech_model / "clip.wav"
    folder = tmp_path / "clips"
    folder.mkdir()
    shutil.copy(clip, folder / "a.wav")
    (folder / "b.flac").write_bytes(wav_bytes(word_wave("no"), 8000, "FLAC"))
    (folder / "readme.txt").write_text("not audio, not listed")
    r = run_tool(ROOT / "tools" / "infer.py", "--audio", clip, folder, "--checkpoint", ck, "--threads", 1, "--workers", 1)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert [line.split("\t")[0] for line in lines] == [str(clip), str(folder / "a.wav"), str(folder / "b.flac")]
    pattern = re.compile(r"^[^\t]+\t[a-z' ]*\t[01]\.\d{4}\t(\S+@\d+\.\d\d-\d+\.\d\d( \S+@\d+\.\d\d-\d+\.\d\d)*)?$")
    assert all(pattern.match(line) for line in lines), lines
    lex = tmp_path / "lexicon.txt"
    lex.write_text("yes\nno\n")
    r = run_tool(ROOT / "tools" / "infer.py", "--audio", clip, "--checkpoint", ck, "--json", "--lexicon", lex, "--threads", 1)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert set(out) == {"path", "text", "confidence", "score", "duration", "words"}
    assert out["text"] and set(out["text"].split()) <= {"yes", "no"}  # the trie lexicon: only lexicon words
    assert [w["word"] for w in out["words"]] == out["text"].split()
    assert all(0 <= w["start"] <= w["end"] <= out["duration"] for w in out["words"])


def test_infer_audio_reads_every_good_file_of_a_folder_with_bad_ones(speech_model, tmp_path):
    clips = tmp_path / "clips"
    clips.mkdir()
    (clips / "a.wav").write_bytes(wav_bytes(word_wave("yes"), 8000))
    (clips / "b.wav").write_text("not audio " * 10)
    (clips / "c.wav").write_bytes(wav_bytes(word_wave("no"), 8000))
    r = run_tool(ROOT / "tools" / "infer.py", "--audio", clips, "--checkpoint", speech_model / "run" / "last.pt")
    assert r.returncode == 1
    assert [line.split("\t")[0] for line in r.stdout.splitlines()] == [str(clips / "a.wav"), str(clips / "c.wav")]
    assert r.stderr.splitlines() == [f"infer.py: skipped {clips / 'b.wav'}: not a readable audio file (Format not recognised)",
                                     "infer.py: 1 of 3 files could not be read"]


def test_infer_audio_errors_are_one_line(speech_model, tmp_path):
    ck = speech_model / "run" / "last.pt"
    infer = ROOT / "tools" / "infer.py"
    (tmp_path / "notes.wav").write_text("definitely not audio " * 5)
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "low.wav").write_bytes(wav_bytes(tone(300, 0.3, 2000), 2000))
    for name, why in [("notes.wav", "not a readable audio file"), ("empty.wav", "empty file"), ("low.wav", "sample rate 2000 Hz")]:
        r = run_tool(infer, "--audio", tmp_path / name, "--checkpoint", ck)  # a bad file, not a bad command: exit 1
        assert (r.returncode, r.stdout) == (1, ""), r.stderr
        assert r.stderr.startswith(f"infer.py: skipped {tmp_path / name}: ") and why in r.stderr and r.stderr.count("\n") == 1
    one_line_error(run_tool(infer, "--audio", tmp_path / "gone.wav", "--checkpoint", ck), "gone.wav", "not found")
    one_line_error(run_tool(infer, "--audio", tmp_path / "empty.wav", "--image", "x.png", "--checkpoint", ck), "--image or --audio")
    one_line_error(run_tool(infer, "--image", tmp_path / "notes.wav", "--checkpoint", ck), "speech model")


@pytest.mark.parametrize("rate,n_mels,n", [(8000, 32, 1), (8000, 32, 137), (8000, 64, 9001), (16000, 80, 16000), (22050, 40, 5000)])
def test_numpy_log_mel_equals_the_torch_one(rate, n_mels, n):
    fe = AudioFrontend(sample_rate=rate, n_mels=n_mels)
    wave = np.random.default_rng(n).standard_normal(n).astype(np.float32) * 0.1
    wave[: n // 3] *= 0.01  # quiet and loud parts: the 80 dB floor matters
    a, b = log_mel(wave, fe).numpy(), log_mel_numpy(wave, fe)
    assert a.shape == b.shape == (n_mels, fe.num_frames(n)) and b.dtype == np.float32
    np.testing.assert_allclose(a, b, atol=1e-4)


def test_clip_normalization_keeps_the_spectral_envelope():
    """"bin" standardizes every mel bin (a low tone and a high tone look alike in their bins' means);
    "clip" standardizes the whole spectrogram once, so which bins are loud survives; numpy = torch."""
    noise = np.random.default_rng(0).standard_normal(4000).astype(np.float32) * 0.005  # every bin varies a little
    low, high = tone(200, 0.5, 8000) + noise, tone(2500, 0.5, 8000) + noise
    for normalize in ("bin", "clip"):
        fe = AudioFrontend(sample_rate=8000, n_mels=32, normalize=normalize)
        a, b = log_mel(low, fe).numpy(), log_mel_numpy(low, fe)
        np.testing.assert_allclose(a, b, atol=1e-4)
        if normalize == "bin":
            np.testing.assert_allclose(a.mean(axis=1), 0, atol=1e-4)  # every bin centred: the envelope is gone
        else:
            assert abs(float(a.mean())) < 1e-4 and float(a.std()) == pytest.approx(1, abs=1e-3)
            loud_low, loud_high = a.mean(axis=1).argmax(), log_mel(high, fe).numpy().mean(axis=1).argmax()
            assert loud_low < 8 < 20 < loud_high  # the tone's own bins stay the loudest
    fe = AudioFrontend(sample_rate=8000, n_mels=32, normalize="clip")
    assert AudioFrontend.from_dict(fe.to_dict()) == fe and AudioFrontend.from_dict({"n_mels": 32}).normalize == "bin"  # old checkpoints
    with pytest.raises(ValueError, match="normalize must be one of bin, clip, got 'mvn'"):
        AudioFrontend(normalize="mvn")


def test_speech_onnx_export_reads_like_the_checkpoint_without_torch(speech_model, tmp_path):
    pytest.importorskip("onnxruntime")
    ck, clip = speech_model / "run" / "last.pt", speech_model / "clip.wav"
    r = run_tool(ROOT / "tools" / "export.py", "--checkpoint", ck, "--out", tmp_path / "speech.onnx")
    assert r.returncode == 0, r.stderr
    torch_out = run_tool(ROOT / "tools" / "infer.py", "--audio", clip, "--checkpoint", ck, "--json", "--threads", 1)
    code = (
        "import runpy, sys\n"
        f"sys.argv = ['infer.py', '--audio', {str(clip)!r}, '--checkpoint', {str(tmp_path / 'speech.onnx')!r}, '--json', '--threads', '1']\n"
        "try:\n"
        f"    runpy.run_path({str(ROOT / 'tools' / 'infer.py')!r}, run_name='__main__')\n"
        "except SystemExit as e:\n"
        "    assert not e.code, e.code\n"
        "print('LOADED', sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'torchvision', 'albumentations'}))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=120)
    assert torch_out.returncode == 0 and r.returncode == 0, (torch_out.stderr, r.stderr)
    onnx_line, loaded = r.stdout.splitlines()
    assert loaded == "LOADED []"
    a, b = json.loads(torch_out.stdout), json.loads(onnx_line)
    assert (a["text"], a["words"], a["duration"]) == (b["text"], b["words"], b["duration"])
    assert abs(a["score"] - b["score"]) < 1e-3
    rec = load_recognizer(tmp_path / "speech.onnx", lexicon=["yes", "no"])
    assert rec.backend.name == "onnx" and isinstance(rec.frontend, AudioFrontend)
    assert rec.decoder.lexicon_mode == "trie" and set(rec.read(str(clip)).text.split()) <= {"yes", "no"}


# ------------------------------------------------------------------------------------ bench, generators
def test_bench_speech_scores():
    bench_speech = load_script("bench_speech", ROOT / "bench" / "bench_speech.py")
    score, vocabulary = bench_speech.score, bench_speech.vocabulary

    s = score(["seven two", "yes no", ""], ["seven three", "yes no", "no"])
    assert (s.count, s.wer, s.sentence_accuracy) == (3, 2 / 5, 1 / 3)
    assert s.cer == pytest.approx((4 + 0 + 2) / (11 + 6 + 2))  # "two" -> "three": 4 edits
    assert vocabulary(["no yes no", "yes  maybe"]) == ["maybe", "no", "yes"]

    e = bench_speech.summarize_errors(["six", "", "sx", "six", "one", "two one", "six"],
                                      ["eight", "one", "six", "eight", "one", "two", "three"], ["one", "two", "six", "eight"], top=2)
    assert (e.wrong, e.empty, e.outside, e.substituted) == (6, 1, 1, 4)
    assert e.common == [("eight", "six", 2), ("one", "", 1)]


def _digit_folder(root: Path) -> Path:
    rec = root / "recordings"
    rec.mkdir(parents=True)
    for speaker, base in (("amy", 400), ("bob", 700)):
        for d in range(10):
            for k in range(2):
                wave = np.concatenate([np.zeros(400, np.float32), tone(base + 40 * d + 5 * k, 0.15, 8000), np.zeros(300, np.float32)])
                (rec / f"{d}_{speaker}_{k}.wav").write_bytes(wav_bytes(wave, 8000))
    (rec / "3_bob_9.wav").write_text("broken")
    return root


def test_concat_digits_by_speaker(tmp_path):
    from crnn_ocr.data import iter_lmdb_samples
    from crnn_ocr.speech.audio import trim_silence
    from crnn_ocr.synth.digits import ConcatConfig, DigitConcatenator, generate, read_recordings

    folder = _digit_folder(tmp_path / "digits")
    recs = read_recordings(folder)
    assert len(recs) == 41 and {r.speaker for r in recs} == {"amy", "bob"}
    x = np.concatenate([np.zeros(800, np.float32), tone(500, 0.1, 8000), np.zeros(800, np.float32)])
    assert len(trim_silence(x, 8000)) == 800
    cfg = ConcatConfig(recordings=str(folder), out=str(tmp_path / "amy"), speakers=["amy"], count=12, max_digits=4, sample_rate=8000)
    n, skipped = generate(cfg)
    assert (n, skipped) == (12, 0)
    samples = list(iter_lmdb_samples(tmp_path / "amy"))
    words = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
    assert all(1 <= len(label.split()) <= 4 and set(label.split()) <= set(words) for _, _, label in samples)
    assert (tmp_path / "amy" / "labels.txt").read_text().splitlines() == [label for _, _, label in samples]
    maker = DigitConcatenator([r for r in recs if r.speaker == "amy"], cfg)
    a, b = maker.make(5), maker.make(5)
    assert np.array_equal(a[0], b[0]) and a[1] == b[1]
    assert [label for _, _, label in samples][5] == a[1]
    n, skipped = generate(ConcatConfig(recordings=str(folder), out=str(tmp_path / "bob"), speakers=["bob"], singles=True))
    assert (n, skipped) == (20, 1)
    r = run_tool(ROOT / "datasets" / "concat_digits.py", "--recordings", folder, "--out", tmp_path / "x", "--speakers", "carl")
    one_line_error(r, "carl", "amy, bob")


def test_synth_speech_text_is_deterministic():
    from crnn_ocr.synth.speech import DIGIT_WORDS, SynthSpeechConfig, utterance_text

    cfg = SynthSpeechConfig(out="unused", content="digits", min_words=2, max_words=3)
    texts = [utterance_text(np.random.default_rng([0, i]), cfg) for i in range(30)]
    assert texts == [utterance_text(np.random.default_rng([0, i]), cfg) for i in range(30)]
    assert all(2 <= len(t.split()) <= 3 and set(t.split()) <= set(DIGIT_WORDS) for t in texts)
    words = SynthSpeechConfig(out="unused", content="words", words=["alpha", "beta"], max_words=2)
    assert {w for i in range(30) for w in utterance_text(np.random.default_rng([1, i]), words).split()} == {"alpha", "beta"}


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_synth_speech_with_espeak(tmp_path):
    r = run_tool(ROOT / "datasets" / "synth_speech.py", "--out", tmp_path / "synth", "--count", 4, "--sample-rate", 8000,
                 "--content", "digits", "--max-words", 2)
    assert r.returncode == 0 and "wrote 4 utterances" in r.stdout, r.stderr
    from crnn_ocr.alphabet import Alphabet
    from crnn_ocr.data import LmdbDataset

    ds = LmdbDataset(tmp_path / "synth", Alphabet(CHARS), replace(FE8K, max_width=1000))
    assert len(ds) == 4 and ds.summary() == "skipped 0 of 4"
    labels = (tmp_path / "synth" / "labels.txt").read_text().splitlines()
    assert [ds[i]["label"] for i in range(4)] == labels
    assert all(30 <= w <= 1000 for w in ds.widths)  # at least 0.3 s of speech and silence


@pytest.mark.skipif(shutil.which("flite") is None, reason="flite is not installed")
def test_synth_speech_with_several_engines_is_seeded(tmp_path):
    from crnn_ocr.synth.speech import SynthSpeechConfig, make_samples

    cfg = SynthSpeechConfig(out="unused", sample_rate=8000, content="digits", max_words=2, engines=("flite",))
    first = make_samples(0, 3, cfg)
    assert first == make_samples(0, 3, cfg) and make_samples(1, 3, cfg) == first[1:]  # sample i depends on i alone
    for data, text in first:
        wave = load_audio(data, target_rate=8000)
        assert 1 <= len(text.split()) <= 2 and 0.3 * 8000 <= len(wave) <= 4 * 8000


def test_pick_voice_draws_the_engine_once_then_a_voice():
    from crnn_ocr.synth.voices import Voice, pick_voice

    voices = [Voice("espeak", f"v{i}") for i in range(112)] + [Voice("flite", f"f{i}") for i in range(5)]
    picks = [pick_voice(np.random.default_rng([0, i]), voices) for i in range(2000)]
    share = sum(v.engine == "flite" for v in picks) / len(picks)
    assert 0.45 < share < 0.55  # engines equally often, although espeak has 112 voices and flite 5
    assert {v for v in picks if v.engine == "flite"} == set(voices[112:])
