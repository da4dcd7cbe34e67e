"""Delta package size: one changed PDF in a 60-PDF subject (target: delta <= 10% of full).

    python bench/vkp_delta.py [--pdfs 60] [--pages 4]

Vectors are 384-dimensional (MiniLM's size) from a deterministic hashed embedder, so the
package sizes are those of a real MiniLM subject without minutes of encoding.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.corpus import make_corpus  # noqa: E402
from devtools.bedrock_stub import hashed_vector  # noqa: E402
from engine.app import build_engine  # noqa: E402
from engine.embed.base import Embedder, EmbeddingResult, ModelInfo  # noqa: E402
from engine.settings import Settings  # noqa: E402
from engine.vkp.keys import keygen  # noqa: E402


class HashedEmbedder(Embedder):
    batch_size = 64

    @property
    def model(self) -> ModelInfo:
        return ModelInfo("bench/hashed-384", "hashed-384")

    def embed_batch(self, texts):
        return EmbeddingResult([hashed_vector(t, 384) for t in texts], self.model)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pdfs", type=int, default=60)
    parser.add_argument("--pages", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(NEXUS_DATA_DIR=Path(tmp) / "data")
        inbox = make_corpus(Path(tmp) / "data" / "inbox", args.pdfs, args.pages)
        # make_corpus spreads files over 4 subjects; gather them into one
        subject = inbox / "kelas_10" / "informatika"
        for pdf in list((inbox / "kelas_10").rglob("*.pdf")):
            if pdf.parent != subject:
                pdf.rename(subject / pdf.name)
        engine = build_engine(settings, embedder=HashedEmbedder())
        keygen(settings.data_dir / "keys")
        engine.ingestor.run([inbox], inbox)
        first = engine.builder.build("informatika", "kelas_10")
        changed = sorted(subject.glob("*.pdf"))[0]
        make_corpus(Path(tmp) / "replacement", 1, args.pages)
        replacement = next((Path(tmp) / "replacement").rglob("*.pdf"))
        changed.write_bytes(replacement.read_bytes() + b"\n% edited\n")
        engine.ingestor.run([inbox], inbox)
        second = engine.builder.build("informatika", "kelas_10")
        print(f"subject: {args.pdfs} PDFs, {second.chunks} chunks; one PDF changed")
        print(f"full v{second.version}: {second.size / 1024:8.1f} KiB")
        print(f"delta v{first.version} -> v{second.version}: {second.delta_size / 1024:8.1f} KiB")
        print(f"delta / full: {second.delta_size / second.size:.1%}  (target <= 10%)")


if __name__ == "__main__":
    main()
