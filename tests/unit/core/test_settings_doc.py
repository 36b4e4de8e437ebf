"""docs/configuration.md is written from the settings models: it names every variable with its
default, and a change to a model without `make docs` fails here."""

from __future__ import annotations

from pathlib import Path

from core import settings_doc
from core.config import DEFAULTS, variables


def test_the_committed_configuration_doc_is_the_one_the_models_write() -> None:
    committed = settings_doc.DOC.read_text(encoding="utf-8")
    assert committed == settings_doc.markdown(), "docs/configuration.md is stale: run `make docs`"


def test_every_variable_has_a_description_and_a_row() -> None:
    text = settings_doc.markdown()
    for _, variable, field in variables():
        assert field.description, variable
        assert f"| `{variable}` |" in text, variable


def test_secrets_defaults_are_not_printed() -> None:
    text = settings_doc.markdown()
    for variable in ("GDPR_HMAC_KEY", "AUDIT_SEAL_KEY", "DB_PASSWORD_GDPR"):
        assert DEFAULTS[variable] not in text and f"| `{variable}` | (development default) |" in text


def test_check_fails_on_a_stale_file_and_passes_on_a_fresh_one(tmp_path: Path) -> None:
    stale = tmp_path / "configuration.md"
    stale.write_text("# Configuration\n", encoding="utf-8")
    assert settings_doc.main(["--check", "--output", str(stale)]) == 1
    assert settings_doc.main(["--output", str(stale)]) == 0
    assert settings_doc.main(["--check", "--output", str(stale)]) == 0
