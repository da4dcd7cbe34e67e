"""sentence-transformers models that define query/passage prompts (E5, BGE) get them."""

from __future__ import annotations

import json
import shutil

import numpy as np

from engine.embed.local import LocalEmbedder
from engine.embed.model_files import packaged_minilm_path


def test_a_model_with_prompts_embeds_questions_and_passages_with_them(minilm, tmp_path):
    folder = tmp_path / "prompted"
    shutil.copytree(packaged_minilm_path(), folder)
    config_file = folder / "config_sentence_transformers.json"
    config = json.loads(config_file.read_text())
    config["prompts"] = {"query": "query: ", "passage": "passage: "}
    config_file.write_text(json.dumps(config))
    prompted = LocalEmbedder(str(folder), device="cpu")

    question = prompted.embed_queries(["apa itu fotosintesis"]).vectors[0]
    passage = prompted.embed(["fotosintesis di daun"]).vectors[0]

    expected_question, expected_passage = minilm.embed(
        ["query: apa itu fotosintesis", "passage: fotosintesis di daun"]
    ).vectors
    assert np.allclose(question, expected_question, atol=1e-5)
    assert np.allclose(passage, expected_passage, atol=1e-5)
    # MiniLM itself defines no prompt: a question is embedded as written
    plain = minilm.embed_queries(["apa itu fotosintesis"]).vectors[0]
    assert np.allclose(plain, minilm.embed(["apa itu fotosintesis"]).vectors[0], atol=1e-6)
