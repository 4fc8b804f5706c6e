"""Message and page texts: Jinja2 templates per locale, shipped and overridable file by file.

A template is named ``<locale>/<channel or pages>/<name>`` (``ur/sms/code.txt``,
``ar/email/link.html``, ``en/email/code.txt``, ``en/pages/confirm.html``); ``_layout/``
holds what the pages and the HTML emails share. A folder given as
``VERIFYD_TEMPLATE_DIR`` is searched first, so one file there replaces the shipped file
of the same name, and a new locale folder there (``fr/sms/code.txt``) adds a locale. A
locale lacking a file falls back to English for that file alone.

Files ending in ``.html`` are autoescaped; the others are plain text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import (
    BaseLoader,
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    StrictUndefined,
    Template,
    TemplateError,
    select_autoescape,
)

from verifyd import locales
from verifyd.settings import ConfigurationError

#: The templates inside the package.
SHIPPED = Path(__file__).with_name("templates")

_LINK = "https://verify.example.com/v1/email/verify?token=t"
_EXPIRES = datetime(2030, 1, 1, tzinfo=UTC)
_DOMAIN = "verify.example.com"
_EMAIL = {"link": _LINK, "minutes": 1440, "hours": 24, "expires_at": _EXPIRES, "domain": _DOMAIN}
_CODE = {"code": "0123", "minutes": 10, "hours": 1, "expires_at": _EXPIRES, "domain": _DOMAIN}

#: What each template receives (beside ``lang``, ``dir`` and ``app_name``, which all get),
#: with a sample value: the documentation's table and the start-up check of overrides.
VARIABLES: dict[str, dict[str, Any]] = {
    "sms/code.txt": _CODE,
    "email/link.subject.txt": _EMAIL,
    "email/link.txt": _EMAIL,
    "email/link.html": {**_EMAIL, "subject": "Confirm your email address"},
    "email/code.subject.txt": _CODE,
    "email/code.txt": _CODE,
    "email/code.html": {**_CODE, "subject": "Your verification code"},
    "pages/confirm.html": {"action": "https://verify.example.com/v1/email/verify", "token": "t"},
    "pages/success.html": {},
    "pages/failure.html": {
        "code": "code_expired",
        "detail": "the link has expired; ask for a new one",
        "verification_status": None,
        "http_status": 410,
    },
}
_COMMON = {"app_name": "verifyd", "lang": "en", "dir": "ltr"}


@dataclass(frozen=True)
class Rendered:
    """A rendered text and the locale whose template produced it."""

    locale: str
    text: str


class Texts:
    """The templates of one configuration, compiled once and kept.

    Built once per channel (and once per template folder for the pages): no template
    is read from disk after its first use (``auto_reload`` is off), and the lookup of
    a locale's template is a dictionary read.

    Args:
        template_dir: ``VERIFYD_TEMPLATE_DIR``: a folder of overriding templates.

    Raises:
        ConfigurationError: the folder is missing, or one of its templates does not
            compile or uses a variable its file is not given.
    """

    def __init__(self, template_dir: Path | None = None) -> None:
        loaders: list[BaseLoader] = [FileSystemLoader(SHIPPED)]
        if template_dir is not None:
            if not template_dir.is_dir():
                raise ConfigurationError(
                    f"VERIFYD_TEMPLATE_DIR {str(template_dir)!r} is not a directory"
                )
            loaders.insert(0, FileSystemLoader(template_dir))
        self.env = Environment(
            loader=ChoiceLoader(loaders),
            autoescape=select_autoescape(enabled_extensions=("html",), default=False),
            auto_reload=False,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        # Jinja's default globals (range, dict, namespace, …) reach the templates as
        # variables instead: while an environment has globals, every ``{% from … import
        # %}`` walks them to see whether the importer adds any, which tripled the cost
        # of a render (measured: 29 µs against 11 µs for a text that imports a macro).
        self._builtins = dict(self.env.globals)
        self.env.globals.clear()
        #: file name (``sms/code.txt``) -> lower-case locale -> the locale's folder
        self._folders: dict[str, dict[str, str]] = {}
        for path in self.env.list_templates():
            folder, sep, name = path.partition("/")
            if sep and locales.canonical(folder) is not None:
                self._folders.setdefault(name, {})[folder.lower()] = folder
        #: every locale that has at least one template
        self.locales = frozenset(loc for by in self._folders.values() for loc in by)
        self._compiled: dict[tuple[str, str], Template] = {}
        self._dirs: dict[str, str] = {}
        if template_dir is not None:
            self._check(template_dir)

    def render(self, tag: str | None, name: str, **values: Any) -> Rendered:
        """Render a template in the locale that best serves a tag.

        Args:
            tag: A BCP 47 tag (``ur-PK``), ``None`` for English.
            name: The file name under the locale (``sms/code.txt``).
            **values: The template's variables (see :data:`VARIABLES`).
        """
        locale, template = self.template(tag, name)
        direction = self._dirs.get(locale)
        if direction is None:
            direction = self._dirs[locale] = locales.direction(locale)
        text = template.render(self._builtins, lang=locale, dir=direction, **values)
        return Rendered(locale, text)

    def template(self, tag: str | None, name: str) -> tuple[str, Template]:
        """The locale that serves ``tag`` for this file, and its compiled template."""
        folders = self._folders.get(name, {})
        locale = (locales.match(tag, folders) if tag else None) or locales.DEFAULT
        key = (locale, name)
        template = self._compiled.get(key)
        if template is None:
            folder = folders.get(locale, locales.DEFAULT)
            template = self._compiled[key] = self.env.get_template(f"{folder}/{name}")
        return locale, template

    def _check(self, template_dir: Path) -> None:
        """Compile and render every template once, refusing undefined variables.

        Only for a configuration with overrides: the shipped templates are checked by
        the test suite. A template that fails here would otherwise fail a signup.
        """
        strict = self.env.overlay(undefined=StrictUndefined)
        for path in self.env.list_templates():
            name = path.partition("/")[2]
            try:
                template = strict.get_template(path)  # every file compiles, partials too
                if name in VARIABLES and path.partition("/")[0].lower() in self.locales:
                    template.render(self._builtins, **_COMMON, **VARIABLES[name])
            except TemplateError as exc:
                raise ConfigurationError(
                    f"template {path} (VERIFYD_TEMPLATE_DIR {str(template_dir)!r}): {exc}"
                ) from None


@lru_cache(maxsize=8)
def shared(template_dir: Path | None) -> Texts:
    """The pages' templates for a template folder, built on first use and kept.

    The pages are rendered by routers that hold only the settings; a configuration's
    templates never change while it runs (``auto_reload`` is off), so one instance per
    folder serves every app of the process.
    """
    return Texts(template_dir)
