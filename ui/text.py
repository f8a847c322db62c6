"""Short labels shared by several pages."""

from __future__ import annotations

from collections.abc import Sequence


def class_label(class_names: Sequence[str], index: int) -> str:
    """'3' for a digit, '0: T-shirt/top' for a named class."""
    name = class_names[index]
    return name if name == str(index) else f"{index}: {name}"
