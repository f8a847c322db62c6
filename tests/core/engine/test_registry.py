"""The dataset registry's versions: what the web server's caches of a dataset's arrays are keyed on."""

import numpy as np
import pytest

from cnn_core.engine import registry
from cnn_core.engine.errors import UserError


def test_a_version_changes_with_every_registration_and_never_comes_back():
    def entry(size: int) -> registry.DatasetInfo:
        arrays = (np.zeros((size, 28, 28), np.uint8), np.arange(size) % 2, np.zeros((2, 28, 28), np.uint8),
                  np.array([0, 1]))
        return registry.DatasetInfo(name="own-versions", title="t", class_names=("a", "b"), train_size=size,
                                    test_size=2, arrays=lambda: arrays)

    try:
        registry.register(entry(4))
        first = registry.version("own-versions")
        assert registry.version("own-versions") == first  # asking changes nothing
        registry.register(entry(6))
        second = registry.version("own-versions")
        registry.unregister("own-versions")
        registry.register(entry(4))
        assert len({first, second, registry.version("own-versions")}) == 3
        assert registry.version("mnist") == registry.version("mnist")
    finally:
        registry.unregister("own-versions")
    with pytest.raises(UserError, match="Unknown dataset 'own-versions'"):
        registry.version("own-versions")
