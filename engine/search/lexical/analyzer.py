"""Indonesian text handling for lexical search, applied the same way to chunks and questions.

Case and punctuation folding, Sastrawi's stopword list (plus question words), and Sastrawi's
stemmer (`pembelajaran` → `ajar`). Stemming is the slow part, so recently seen words are
remembered, in a cache of bounded size: questions are outside input, and a cache of every word
ever asked would grow without limit.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache, lru_cache

_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)
# A curriculum's vocabulary is a few tens of thousands of words; ~100 bytes each.
STEM_CACHE_SIZE = 65_536
_EXTRA_STOPWORDS = {"apa", "apakah", "bagaimana", "mengapa", "kenapa", "siapa", "kapan", "dimana"}


@cache
def _stopwords() -> frozenset[str]:
    from Sastrawi.StopWordRemover.StopWordRemoverFactory import StopWordRemoverFactory

    return frozenset(StopWordRemoverFactory().get_stop_words()) | _EXTRA_STOPWORDS


@cache
def _stemmer():
    from Sastrawi.Stemmer.StemmerFactory import StemmerFactory

    # the factory wraps the stemmer in a cache of every word ever seen; ours is the bounded one
    return StemmerFactory().create_stemmer().delegatedStemmer


@lru_cache(maxsize=STEM_CACHE_SIZE)
def stem(word: str) -> str:
    if word.isdigit() or len(word) <= 3:
        return word
    return _stemmer().stem(word) or word


def analyze(text: str) -> list[str]:
    """Terms of `text`: folded, tokenised, stopwords dropped, stemmed."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    stopwords = _stopwords()
    return [stem(token) for token in _TOKEN.findall(folded) if token not in stopwords]
