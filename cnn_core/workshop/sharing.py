"""Share an experiment as a link: the config and its locked fields packed into URL query parameters.

A workshop host builds an experiment, locks the fields learners should not change, and hands out
the link. The config travels as one ``cfg`` parameter: compact JSON, zlib-compressed, url-safe
base64 without padding (a seed preset becomes about 300 characters). Locked field names travel
as a comma list in ``lock``.

A lock is the instructor's, so a link carries ``sig``: HMAC-SHA256 over ``cfg`` and ``lock``
with the server's secret (`CNN_LINK_SECRET`, or a key generated once and kept next to the
workspaces; see `cnn_core.service.workspace.link_secret`). The app opens only links whose
signature holds: removing or editing ``lock`` (or ``cfg``) by hand makes the link refuse to load
instead of unlocking it. The instructor keeps an unlocked link of their own (signed with no lock).

Links come from strangers, so decoding treats every byte as hostile: sizes are capped before and
after decompression, and anything that is not a valid experiment raises ValueError with a
sentence a learner can act on; no other exception escapes.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import hmac
import json
import zlib
from collections.abc import Iterable, Mapping
from typing import Any

from cnn_core.engine import registry, specs
from cnn_core.engine.errors import UserError
from cnn_core.engine.specs import Dense, Experiment, ModelSpec, TrainingConfig

FORMAT_VERSION = 1
CONFIG_PARAM = "cfg"
LOCK_PARAM = "lock"
SIGNATURE_PARAM = "sig"
# Fields a link (or an exercise) can freeze; "layers" freezes the whole architecture.
LOCKABLE_FIELDS = (
    "layers",
    "dataset",
    "optimizer",
    "learning_rate",
    "lr_schedule",
    "batch_size",
    "epochs",
    "validation_split",
    "train_subset",
    "target_accuracy",
    "target_loss",
    "restore_best",
)
# What the Train page's form calls each lockable field, so lock lists speak the form's language.
LOCK_LABELS = {
    "layers": "Layers (the whole architecture)",
    "dataset": "Dataset",
    "optimizer": "Optimizer",
    "learning_rate": "Learning rate",
    "lr_schedule": "Learning-rate schedule",
    "batch_size": "Batch size",
    "epochs": "Epochs",
    "validation_split": "Validation split",
    "train_subset": "Train on a subset",
    "target_accuracy": "Stop at a target accuracy",
    "target_loss": "Stop at loss ≤",
    "restore_best": "Keep the best validation epoch",
}
# Browsers and proxies cope with URLs of a few thousand characters; a real config is far smaller.
MAX_ENCODED_CHARS = 6_000
MAX_DECODED_BYTES = 32 * 1024
MAX_NAME_CHARS = 100


def _check_locked(locked: Iterable[str]) -> frozenset[str]:
    names = frozenset(locked)
    unknown = sorted(str(name) for name in names - set(LOCKABLE_FIELDS))
    if unknown:
        raise UserError(f"Cannot lock {', '.join(unknown)}; lockable fields are {', '.join(LOCKABLE_FIELDS)}.")
    return names


def lock_labels(locked: Iterable[str]) -> list[str]:
    """The form labels of locked fields, in the form's order."""
    return [LOCK_LABELS[name] for name in LOCKABLE_FIELDS if name in set(locked)]


def _signature(cfg: str, lock: str, secret: bytes) -> str:
    message = b"cnn-link-v1\0" + cfg.encode("utf-8") + b"\0" + lock.encode("utf-8")
    digest = hmac.new(secret, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _check_signature(params: Mapping[str, Any], secret: bytes) -> None:
    cfg = _single_value(params, CONFIG_PARAM) or ""
    lock = _single_value(params, LOCK_PARAM) or ""
    signature = _single_value(params, SIGNATURE_PARAM)
    if not signature:
        raise UserError(
            "This link has no signature, so its settings and locks cannot be trusted; ask whoever shared it "
            "for the link again."
        )
    if not hmac.compare_digest(signature.encode("ascii", "replace"), _signature(cfg, lock, secret).encode("ascii")):
        raise UserError(
            "This link was changed after it was made (or was made by another server); ask whoever shared it "
            "for the link again."
        )


def to_query_params(
    experiment: Experiment, locked: Iterable[str] = (), *, secret: bytes | None = None
) -> dict[str, str]:
    """The query parameters that describe `experiment` with `locked` fields frozen, signed with `secret`.

    The app always passes its secret; without one the link carries no ``sig`` and the app refuses it.
    """
    if not isinstance(experiment, Experiment):
        raise UserError("Only an Experiment (a model spec with its training config) can be shared.")
    names = _check_locked(locked)
    payload = {"v": FORMAT_VERSION, "model": experiment.model.to_dict(), "training": experiment.training.to_dict()}
    text = json.dumps(payload, separators=(",", ":"), sort_keys=True, allow_nan=False)
    packed = zlib.compress(text.encode("utf-8"), level=9)
    params = {CONFIG_PARAM: base64.urlsafe_b64encode(packed).rstrip(b"=").decode("ascii")}
    if names:
        # Keep the order of LOCKABLE_FIELDS so the same lock set always gives the same link.
        params[LOCK_PARAM] = ",".join(name for name in LOCKABLE_FIELDS if name in names)
    if secret is not None:
        params[SIGNATURE_PARAM] = _signature(params[CONFIG_PARAM], params.get(LOCK_PARAM, ""), secret)
    return params


def _single_value(params: Mapping[str, Any], key: str) -> str | None:
    value = params.get(key)
    # Some front ends give every parameter as a list of its repeated values; the last one wins.
    if isinstance(value, list | tuple):
        value = value[-1] if value else None
    if value is None:
        return None
    if not isinstance(value, str):
        raise UserError(f"The link's '{key}' parameter is not text; copy the whole link again.")
    return value


def _decode_payload(encoded: str) -> Any:
    encoded = encoded.strip()
    if not encoded:
        raise UserError("The link's configuration is empty; copy the whole link again.")
    if len(encoded) > MAX_ENCODED_CHARS:
        raise UserError(
            f"The link's configuration is {len(encoded):,} characters, more than the {MAX_ENCODED_CHARS:,} "
            "a shared experiment can use; share a smaller model."
        )
    try:
        # validate=True: the lenient default silently skips stray characters instead of refusing them.
        packed = base64.b64decode(encoded + "=" * (-len(encoded) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise UserError("The link's configuration is garbled (not base64); copy the whole link again.") from None
    inflater = zlib.decompressobj()
    try:
        # Inflate at most one byte past the limit so a zip bomb costs nothing.
        raw = inflater.decompress(packed, MAX_DECODED_BYTES + 1)
    except zlib.error:
        raise UserError("The link's configuration is garbled (cannot decompress); copy the whole link again.") from None
    if len(raw) > MAX_DECODED_BYTES or inflater.unconsumed_tail:
        raise UserError(f"The link's configuration unpacks to more than {MAX_DECODED_BYTES // 1024} KiB; share a smaller model.")
    if not inflater.eof:
        raise UserError("The link's configuration is cut off; copy the whole link again.")
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise UserError("The link's configuration is not valid JSON; copy the whole link again.") from None


def _experiment_from_payload(payload: Any) -> Experiment:
    if not isinstance(payload, dict):
        raise UserError("The link's configuration is not an experiment; copy the whole link again.")
    version = payload.get("v")
    if version != FORMAT_VERSION:
        raise UserError(
            f"The link uses configuration format {version!r}, but this app reads format {FORMAT_VERSION}; "
            "ask for a link made with this version of the app."
        )
    model, training = payload.get("model"), payload.get("training", {})
    if not isinstance(model, dict) or not isinstance(model.get("layers"), list):
        raise UserError("The link's configuration has no model with a list of layers.")
    if not isinstance(training, dict):
        raise UserError("The link's training settings are not a set of named values.")
    if not isinstance(training.get("restore_best", False), bool):
        raise UserError("The link's restore_best setting must be true or false.")
    name = model.get("name", "custom")
    if not isinstance(name, str) or len(name) > MAX_NAME_CHARS:
        raise UserError(f"The model name in the link must be text of at most {MAX_NAME_CHARS} characters.")
    shape = model.get("input_shape", [28, 28, 1])
    if not isinstance(shape, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in shape):
        raise UserError("The link's input shape must be a list of whole numbers such as [28, 28, 1].")
    classes = model.get("num_classes", 10)
    if isinstance(classes, bool) or not isinstance(classes, int):
        raise UserError("The link's number of classes must be a whole number.")
    try:
        experiment = Experiment(ModelSpec.from_dict(model), TrainingConfig.from_dict(training))
    except (TypeError, AttributeError, OverflowError) as exc:
        raise UserError(f"The link's configuration does not describe a valid experiment ({exc}).") from None
    return experiment


def _carries_data(dataset: str, own_datasets: Iterable[str]) -> bool:
    """Whether this server can train on the link's dataset for this visitor: a bundled one, or their own."""
    if dataset in registry.names() and registry.get(dataset).bundled:
        return True
    return dataset in set(own_datasets) and dataset in registry.names()


class DataNotShared(UserError):
    """A link made on someone's own classes, opened where those pictures are not: it brings the layers and
    settings (`experiment`, `locked`) but no dataset to train them on, so the visitor picks one (`for_dataset`)."""

    def __init__(self, experiment: Experiment, locked: frozenset[str]):
        classes = experiment.model.num_classes
        super().__init__(
            f"This link was made on someone's own {classes} classes, and a link carries the layers and settings "
            "but never the pictures: pick a dataset below to train the same architecture on it."
        )
        self.experiment = experiment
        self.locked = locked


def for_dataset(experiment: Experiment, dataset: str) -> Experiment:
    """The same layers and settings on another registered dataset, the output layer sized to its classes."""
    info = registry.get(dataset)
    model = experiment.model
    layers = model.layers
    last = layers[-1] if layers else None
    if isinstance(last, Dense) and last.units == model.num_classes:
        layers = (*layers[:-1], dataclasses.replace(last, units=info.num_classes))
    model = dataclasses.replace(model, layers=tuple(layers), num_classes=info.num_classes)
    subset = experiment.training.train_subset
    if subset is not None and not 100 <= subset <= info.train_size:
        subset = None
    training = dataclasses.replace(experiment.training, dataset=dataset, train_subset=subset)
    return Experiment(model, training)


def _locked_from_text(text: str | None) -> frozenset[str]:
    if text is None:
        return frozenset()
    names = [part.strip() for part in text.split(",") if part.strip()]
    if len(names) > len(LOCKABLE_FIELDS):
        raise UserError("The link locks more fields than exist; copy the whole link again.")
    return _check_locked(names)


def from_query_params(
    params: Mapping[str, Any], *, secret: bytes | None = None, own_datasets: Iterable[str] = ()
) -> tuple[Experiment, frozenset[str]]:
    """The experiment and locked field names a link describes; ValueError for anything else.

    A link made on a learner's own classes opens as it is only for a visitor whose `own_datasets`
    holds that dataset; for anyone else it raises `DataNotShared`, which carries the layers and
    settings so the page can offer them on another dataset.

    Accepts any mapping of parameter names to strings (Streamlit's ``st.query_params`` or a
    dict); parameters other than ``cfg``, ``lock`` and ``sig`` are ignored. With `secret` (as the
    app always calls it) the signature is checked first, so a link edited by hand is refused before
    anything in it is decoded; None checks only what the link says, for tests of the decoder.
    """
    if not isinstance(params, Mapping):
        raise UserError("Expected the link's query parameters as a mapping of names to text.")
    if secret is not None:
        _check_signature(params, secret)
    encoded = _single_value(params, CONFIG_PARAM)
    if encoded is None:
        raise UserError(f"The link has no '{CONFIG_PARAM}' parameter, so there is no experiment to load.")
    locked = _locked_from_text(_single_value(params, LOCK_PARAM))
    experiment = _experiment_from_payload(_decode_payload(encoded))
    if not _carries_data(experiment.training.dataset, own_datasets):
        # The architecture and settings are checked on their own; the dataset is the visitor's to choose.
        specs.infer_shapes(experiment.model, max_params=specs.Limits().max_params)
        bundled = next(name for name in registry.names() if registry.get(name).bundled)
        specs.validate_training(dataclasses.replace(experiment.training, dataset=bundled, train_subset=None))
        raise DataNotShared(experiment, locked)
    # The same checks the editor runs, so a link never brings in a spec that cannot be built.
    specs.check_experiment(experiment)
    return experiment, locked


def link_params(params: Mapping[str, Any]) -> dict[str, str]:
    """Only the parameters that make up a shared link (what to remember of it), as plain text."""
    found = {}
    for key in (CONFIG_PARAM, LOCK_PARAM, SIGNATURE_PARAM):
        value = _single_value(params, key)
        if value is not None:
            found[key] = value
    return found


def has_shared_experiment(params: Mapping[str, Any]) -> bool:
    """Whether the query parameters carry a shared experiment at all (valid or not)."""
    return isinstance(params, Mapping) and params.get(CONFIG_PARAM) is not None
