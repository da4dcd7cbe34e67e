"""The panel's words: one message catalogue per language, and `t()` to ask for one.

Pages hold no user-facing text. They ask `t("jobs.title")`, with `str.format` fields for what
varies: `t("jobs.shown", shown=num(3), total=num(7))`. Numbers and dates are formatted by the
caller with `num`, `when` and `day` (from `ui.i18n.formats`), so Indonesian reads 1.234,5 and
29 Nov 2026 14.05. The language is UI_LANGUAGE (`id` by default, or `en`).

Catalogues are plain dict modules (`ui/i18n/id.py`, `ui/i18n/en.py`) with the same keys (a
test checks). A key missing at run time shows the English text, or the key itself, and logs.
"""

from __future__ import annotations

import logging

from ui.i18n import en
from ui.i18n import id as indonesian
from ui.i18n.formats import day, money, num, when
from ui.resources import settings

log = logging.getLogger(__name__)

CATALOGUES: dict[str, dict[str, str]] = {"id": indonesian.MESSAGES, "en": en.MESSAGES}
LANGUAGES: tuple[str, ...] = tuple(CATALOGUES)

__all__ = [
    "CATALOGUES",
    "LANGUAGES",
    "current_language",
    "day",
    "money",
    "num",
    "reason",
    "t",
    "when",
]


def current_language() -> str:
    """UI_LANGUAGE of the panel's settings (`id` or `en`)."""
    return settings().ui_language


def t(key: str, /, *, lang: str | None = None, **fields: object) -> str:
    """The message `key` in `lang` (default: the panel's language), with `fields` filled in."""
    language = lang or current_language()
    template = CATALOGUES.get(language, en.MESSAGES).get(key)
    if template is None:
        log.warning("no %r message for %r", language, key)
        template = en.MESSAGES.get(key, key)
    return template.format(**fields) if fields else template


def reason(code: str, params: dict, sentence: str, /, *, lang: str | None = None) -> str:
    """Why a file got its status, in the panel's language: the message `reason.<code>` with
    `params`, or the engine's English `sentence` for a code the catalogue does not know."""
    language = lang or current_language()
    template = CATALOGUES.get(language, en.MESSAGES).get(f"reason.{code}") if code else None
    if template is None:
        return sentence
    shown = {k: num(v, 1, lang=language) if isinstance(v, float) else v for k, v in params.items()}
    try:
        return template.format(**shown)
    except (KeyError, ValueError, IndexError):
        return sentence
