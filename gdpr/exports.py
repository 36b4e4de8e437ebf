"""Access export files (Art. 15/20): where they are and how they go."""

from __future__ import annotations

from pathlib import Path

from core.config import PROJECT_ROOT


def export_file(path: str) -> Path:
    """The file an ``export_path`` names. A relative path (written by an older processor) is taken
    from the project root, where that processor ran."""
    file = Path(path)
    return file if file.is_absolute() else PROJECT_ROOT / file


def remove_export(path: str) -> bool:
    """Delete an export file (``export_file``); True if it was there."""
    try:
        export_file(path).unlink()
    except FileNotFoundError:
        return False
    return True
