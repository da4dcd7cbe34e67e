"""Numbers, money and dates the way each panel language writes them (no Babel needed).

Indonesian: 1.234,5 and 29 Nov 2026 14.05. English: 1,234.5 and 29 Nov 2026 14:05.
Times are shown in the server's local time zone unless `tz` says otherwise.
"""

from __future__ import annotations

from datetime import date, datetime, tzinfo

_MONTHS = {
    "id": ("Jan", "Feb", "Mar", "Apr", "Mei", "Jun", "Jul", "Agu", "Sep", "Okt", "Nov", "Des"),
    "en": ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
}
_SWAP_SEPARATORS = str.maketrans(",.", ".,")


def _language(lang: str | None) -> str:
    if lang:
        return lang
    from ui.i18n import current_language

    return current_language()


def num(value: float | int | None, decimals: int = 0, *, lang: str | None = None) -> str:
    """`1234.5` → `1.234,5` (id) or `1,234.5` (en); None → an empty string."""
    if value is None:
        return ""
    text = f"{value:,.{decimals}f}"
    return text.translate(_SWAP_SEPARATORS) if _language(lang) == "id" else text


def money(usd: float, decimals: int = 4, *, lang: str | None = None) -> str:
    """US dollars: `$1.234,5000` (id) or `$1,234.5000` (en)."""
    return "$" + num(usd, decimals, lang=lang)


def _as_datetime(value: str | datetime) -> datetime:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def when(value: str | datetime | None, *, lang: str | None = None, tz: tzinfo | None = None) -> str:
    """An ISO timestamp as `29 Nov 2026 14.05` (id) or `29 Nov 2026 14:05` (en), local time.

    Naive values are taken as they are; None or an unreadable value gives an empty string.
    """
    if not value:
        return ""
    try:
        moment = _as_datetime(value)
    except ValueError:
        return str(value)
    if moment.tzinfo is not None:
        moment = moment.astimezone(tz)
    separator = "." if _language(lang) == "id" else ":"
    return f"{day(moment, lang=lang)} {moment.hour:02d}{separator}{moment.minute:02d}"


def day(value: str | date | datetime, *, lang: str | None = None) -> str:
    """A date as `29 Nov 2026` (Indonesian and English month abbreviations)."""
    if isinstance(value, str):
        value = date.fromisoformat(value[:10])
    month = _MONTHS.get(_language(lang), _MONTHS["en"])[value.month - 1]
    return f"{value.day} {month} {value.year}"
