import os

import pytest
import torch

from crnn_ocr.checkpoint import CheckpointError, load_checkpoint, save_checkpoint


def _state():
    return {"kind": "text", "model_config": {"num_classes": 3}, "alphabet": {"symbols": ["a", "b"]},
            "model": {"w": torch.arange(6.0).reshape(2, 3)}, "step": 7}


def test_round_trip_is_plain_data(tmp_path):
    path = tmp_path / "ck.pt"
    save_checkpoint(path, _state())
    state = load_checkpoint(path)
    assert state["step"] == 7 and state["format"] == "crnn_ocr/2"
    assert torch.equal(state["model"]["w"], torch.arange(6.0).reshape(2, 3))
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]  # no temporary file left behind


def test_failed_write_keeps_previous_checkpoint(tmp_path):
    path = tmp_path / "ck.pt"
    save_checkpoint(path, _state())
    with pytest.raises(Exception):  # noqa: B017 (the pickling error's type differs across Python versions)
        save_checkpoint(path, {**_state(), "bad": lambda: None})  # not picklable: fails mid-write
    assert load_checkpoint(path)["step"] == 7
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_code_in_pickle_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({**_state(), "format": "crnn_ocr/1", "x": _Evil()}, path)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        with pytest.raises(CheckpointError, match="refused to load"):
            load_checkpoint(path)
    finally:
        os.chdir(cwd)
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("content,match", [
    (None, "not found"),
    (b"", "not a readable checkpoint"),
    (b"garbage bytes that are no zip and no pickle", "not a readable checkpoint|refused"),
])
def test_bad_files(tmp_path, content, match):
    path = tmp_path / "x.pt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(path)


def test_directory_and_foreign_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="is a directory"):
        load_checkpoint(tmp_path)
    path = tmp_path / "other.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}}, path)
    with pytest.raises(CheckpointError, match="not a crnn_ocr checkpoint"):
        load_checkpoint(path)


def test_format_1_checkpoints_still_load_and_unknown_formats_are_refused(tmp_path):
    """Format 2 stores the front-end under ``frontend``; format 1 files (``preprocess``) still load."""
    torch.save({**_state(), "format": "crnn_ocr/1"}, tmp_path / "old.pt")
    assert load_checkpoint(tmp_path / "old.pt")["step"] == 7
    torch.save({**_state(), "format": "crnn_ocr/9"}, tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match="future.pt: unsupported checkpoint format 'crnn_ocr/9'"):
        load_checkpoint(tmp_path / "future.pt")
