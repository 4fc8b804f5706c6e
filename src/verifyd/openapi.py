"""``python -m verifyd.openapi``: print the API's OpenAPI document as YAML (``make openapi``)."""

from __future__ import annotations

import json
import sys
import tempfile
from typing import Any

import yaml
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from verifyd.settings import Settings

#: A fixed, throwaway key: the document does not depend on it, and nothing is signed.
_DOCUMENT_SECRET = "openapi-document-only-" + "0" * 32


class _DocumentSettings(Settings):
    """Settings from the arguments alone: the shell's ``VERIFYD_*`` cannot change the document."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def document() -> dict[str, Any]:
    """The OpenAPI document of the app on development defaults, sandbox endpoints included.

    The app is built on a SQLite file in a temporary directory (never opened: the
    lifespan does not run) with a fixed secret, so it touches nothing of the caller's.
    """
    from verifyd.app import create_app

    with tempfile.TemporaryDirectory(prefix="verifyd-openapi-") as tmp:
        settings = _DocumentSettings(
            env="development",
            database_url=f"sqlite:///{tmp}/openapi.db",
            secret_key=_DOCUMENT_SECRET,
            sandbox=True,
        )
        app = create_app(settings)
        try:
            return app.openapi()
        finally:
            app.state.runtime.db.dispose()


def render() -> str:
    """The document as YAML, byte for byte what ``openapi.yaml`` holds."""
    # A JSON round trip unshares the sub-objects FastAPI reuses, which YAML would
    # otherwise write as &anchors and *aliases that some OpenAPI tools refuse.
    doc = json.loads(json.dumps(document()))
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)


def main() -> int:
    """Write the document to standard output."""
    sys.stdout.write(render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
