"""Reading rendered texts: an HTML part's tags, a folder of override templates, the script."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

#: Letters only Urdu writes (ں ے ٹ ڈ ک گ ہ), and letters only Arabic writes (ة ك ي).
URDU_ONLY = re.compile("[\u06ba\u06d2\u0679\u0688\u06a9\u06af\u06c1]")
ARABIC_ONLY = re.compile("[\u0629\u0643\u064a]")


class Tags(HTMLParser):
    """Every start tag of an HTML text, in order, with its attributes."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def first(self, tag: str) -> dict[str, str | None]:
        """The attributes of the first ``tag``."""
        return next(a for t, a in self.tags if t == tag)


def write_templates(root: Path, files: dict[str, str]) -> Path:
    """A template folder holding ``files`` (path under the folder -> text); returns it."""
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def assert_language(text: str, locale: str) -> None:
    """The text is written in the locale's script: Urdu, Arabic, or (English) ASCII."""
    if locale == "ur":
        assert URDU_ONLY.search(text) and not ARABIC_ONLY.search(text), text
    elif locale == "ar":
        assert ARABIC_ONLY.search(text) and not URDU_ONLY.search(text), text
    else:
        assert text.isascii(), text
