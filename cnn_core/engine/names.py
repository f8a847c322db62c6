"""The one name sanitizer: a model's Keras name, a file stem for a download or a save."""

from __future__ import annotations

import re

MAX_NAME_CHARS = 80


def safe_name(name: str, fallback: str = "model") -> str:
    """`name` with every run of characters other than ASCII letters, digits, '-' and '_' made one '_'.

    Leading and trailing '_' go, the result keeps at most MAX_NAME_CHARS characters, and a name
    with nothing left becomes `fallback` (which may be "" for a caller that refuses such names).
    """
    cleaned = re.sub(r"[^A-Za-z0-9_-]+", "_", str(name).strip()).strip("_")[:MAX_NAME_CHARS]
    return cleaned or fallback
