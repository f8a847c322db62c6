"""Short labels shared by several pages, and user-supplied text made safe to show."""

from __future__ import annotations

import re
from collections.abc import Sequence

# What Markdown (and Streamlit's extensions: :red[...], :material/icon:, $math$) gives meaning to
# anywhere in a line; a list or heading marker only counts at the start, handled apart.
_MARKDOWN = re.compile(r"([\\`*_\[\]()<>#!|~:$])")
_LINE_START = re.compile(r"^(\s*)(\d*)([-+=>.)])")
# GitHub-flavoured Markdown links a bare www.… even without a scheme.
_WWW = re.compile(r"(?i)\b(www)\.")
_REPR = re.compile(r"<[A-Za-z_][\w.]* object at 0x[0-9a-fA-F]+>")
_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/])(?:/[\w.@+-]+){2,}/?")


def class_label(class_names: Sequence[str], index: int) -> str:
    """'3' for a digit, '0: T-shirt/top' for a named class."""
    name = class_names[index]
    return name if name == str(index) else f"{index}: {name}"


def plain(text: object) -> str:
    """`text` with every Markdown character escaped, for user-supplied names inside Markdown.

    A model name from a shared link like `**x** [link](http://…) ![img](http://…/y.png)` then
    shows as typed: no bold, no clickable link, no image for the browser to fetch.
    """
    escaped = _WWW.sub(r"\1\\.", _MARKDOWN.sub(r"\\\1", str(text).replace("\n", " ")))
    return _LINE_START.sub(lambda m: m.group(1) + m.group(2) + "\\" + m.group(3), escaped)


def scrubbed(message: object) -> str:
    """An error message without Python object reprs or absolute server paths (a file's name stays)."""
    text = _REPR.sub("the file", str(message))
    return _ABSOLUTE_PATH.sub(lambda match: match.group().rstrip("/").rsplit("/", 1)[-1], text)


def message(error: object) -> str:
    """An error for st.error and friends: scrubbed, with Markdown escaped."""
    return plain(scrubbed(error))
