"""A learner's own classes: check them, read them from a .zip, and turn them into training arrays.

A collection is a mapping of class name → (N, 28, 28) uint8 images, each already prepared by the
one preprocessing path (`preprocess.canvas_to_mnist` for a drawing, `preprocess.image_to_mnist`
for an uploaded picture). Nothing here knows where the images are kept; the limits are parameters
so the service can set them and tests can make them small.

Reading a zip never writes a file: members are read from the archive in memory, and every cost is
checked before it is paid (the member count and declared sizes from the zip's directory, the bytes
actually read, each image's pixel count from its header before it is decoded).

Small sets need augmentation: `build_arrays` holds some originals of each class back as the test
set, and adds shifted and rotated copies of the rest, kept next to their original, so the last
fraction that Keras' validation split takes is (all but one boundary image) pictures whose
originals the model never trained on.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Mapping

import numpy as np

from cnn_core.engine import preprocess
from cnn_core.engine.errors import UserError

MIN_CLASSES = 2
MAX_CLASSES = 10
# Below this a class cannot give both a test image and enough to train on.
MIN_PER_CLASS = 5
MAX_IMAGES = 2_000
# Augmented copies of each training picture (a few dozen drawings per class is all a learner makes).
COPIES = 3
MAX_ZIP_MEMBERS = 2_500
MAX_MEMBER_BYTES = 4 * 2**20
MAX_ZIP_BYTES = 64 * 2**20
# Decoding costs about 4 bytes a pixel; the count is read from each image's header first.
MAX_PIXELS = 16_000_000
# Everything is cropped and scaled to 20 px in the end; a photo this size keeps every detail that survives.
WORKING_SIDE = 1024
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
NAME_PATTERN = re.compile(r"[^\W_][\w .'-]{0,23}")

Collection = dict[str, np.ndarray]


def check_class_name(name: object) -> str:
    """A class name as typed, stripped; UserError unless it is 1–24 letters, digits, spaces, . ' - or _."""
    text = name.strip() if isinstance(name, str) else ""
    if NAME_PATTERN.fullmatch(text) is None:
        raise UserError("A class name is 1 to 24 letters or digits (spaces, - and _ allowed inside), "
                        "for example 'circle'.")
    return text


def as_uint8(image: np.ndarray) -> np.ndarray:
    """A prepared (28, 28) float image in [0, 1] as uint8, the way collections keep images."""
    return np.clip(np.rint(np.asarray(image, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)


def decode_picture(data: bytes, what: str, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """A PNG/JPEG/… file's bytes as a prepared (28, 28) float32 image; UserError naming `what` otherwise.

    The one picture decoder: uploads on the image pages and every picture in a class zip go through it.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as picture:  # lazy: only the header is read here
            width, height = picture.size
            if width * height > max_pixels:
                raise UserError(f"{what} is {width}×{height} pixels ({width * height / 1e6:.0f} megapixels); "
                                f"use pictures of at most {max_pixels / 1e6:.0f} megapixels.")
            # JPEG can decode straight to grey at a smaller size; PNG decodes whole and is shrunk after.
            picture.draft("L", (WORKING_SIDE, WORKING_SIDE))
            # Colour, palette and transparency all become grey ink strength.
            picture = picture.convert("RGBA") if picture.mode in ("RGBA", "LA", "PA", "P") else picture.convert("L")
            picture.thumbnail((WORKING_SIDE, WORKING_SIDE))
            pixels = np.asarray(picture)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError, SyntaxError) as error:
        if isinstance(error, UserError):
            raise
        if isinstance(error, Image.DecompressionBombError):
            raise UserError(f"{what} has too many pixels; use pictures of at most "
                            f"{max_pixels / 1e6:.0f} megapixels.") from None
        # PIL's own text names a Python object (<_io.BytesIO object at 0x…>): say it in words.
        raise UserError(f"{what} is not a picture this app can read, or it is damaged; use PNG or JPEG files.") from None
    image = preprocess.image_to_mnist(pixels)
    if image is None:
        raise UserError(f"{what} looks blank; use pictures with a clear shape on a plain background.")
    return image


def decode_image(data: bytes, what: str, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """`decode_picture` as uint8, the way collections keep images."""
    return as_uint8(decode_picture(data, what, max_pixels))


def read_zip(
    data: bytes,
    *,
    max_members: int = MAX_ZIP_MEMBERS,
    max_member_bytes: int = MAX_MEMBER_BYTES,
    max_total_bytes: int = MAX_ZIP_BYTES,
    max_images: int = MAX_IMAGES,
    max_classes: int = MAX_CLASSES,
    max_pixels: int = MAX_PIXELS,
) -> Collection:
    """A .zip of one folder per class (``circle/1.png``…) as a collection; UserError for anything unsafe or wrong.

    A single top folder around the class folders (``shapes/circle/1.png``) is allowed, as zipping a
    folder makes one. Hidden files and folders (``__MACOSX``, ``.DS_Store``) are skipped.
    """
    if len(data) > max_total_bytes:
        raise UserError(f"The zip is {len(data) / 2**20:.1f} MB; upload one of at most {max_total_bytes / 2**20:.0f} MB.")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        raise UserError("That file is not a .zip this app can read, or it is damaged; zip one folder per class.") from None
    with archive:
        if len(members) > max_members:
            raise UserError(f"The zip holds {len(members):,} files; upload at most {max_members:,} "
                            f"({max_images:,} pictures in all).")
        pictures: list[tuple[list[str], zipfile.ZipInfo]] = []
        declared = 0
        for member in members:
            path = member.filename.replace("\\", "/")
            parts = [part for part in path.split("/") if part]
            if path.startswith("/") or ".." in parts or (parts and ":" in parts[0]):
                # Nothing is ever extracted, but a name pointing outside the archive is a crafted zip.
                raise UserError("The zip holds a file whose name points outside its folders; zip the class "
                                "folders again.")
            if member.is_dir() or not parts or any(part.startswith(".") or part == "__MACOSX" for part in parts):
                continue
            if not parts[-1].lower().endswith(IMAGE_SUFFIXES):
                continue
            if member.file_size > max_member_bytes:
                raise UserError(f"{parts[-1]} is {member.file_size / 2**20:.0f} MB unpacked; each picture may be "
                                f"at most {max_member_bytes / 2**20:.0f} MB.")
            declared += member.file_size
            if declared > max_total_bytes:
                raise UserError(f"The pictures in the zip unpack to more than {max_total_bytes / 2**20:.0f} MB; "
                                "upload fewer or smaller pictures.")
            pictures.append((parts, member))
        if len(pictures) > max_images:
            raise UserError(f"The zip holds {len(pictures):,} pictures; upload at most {max_images:,}.")
        if not pictures:
            raise UserError("The zip holds no PNG or JPEG pictures; put each class's pictures in a folder named "
                            "after the class.")
        # One wrapping folder (what zipping a folder makes) is not a class.
        while all(len(parts) > 2 for parts, _ in pictures) and len({parts[0] for parts, _ in pictures}) == 1:
            pictures = [(parts[1:], member) for parts, member in pictures]
        if any(len(parts) != 2 for parts, _ in pictures):
            raise UserError("Put each picture in a folder named after its class (circle/1.png), "
                            "with no pictures outside or in deeper folders.")
        classes: dict[str, list[np.ndarray]] = {}
        for parts, member in pictures:
            name = check_class_name(parts[0])
            if name not in classes and len(classes) >= max_classes:
                raise UserError(f"The zip has more than {max_classes} class folders; use at most {max_classes}.")
            # Read at most one byte past the declared size: a member lying about its size is caught here.
            try:
                with archive.open(member) as handle:
                    content = handle.read(max_member_bytes + 1)
            except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError, RuntimeError):
                raise UserError(f"{'/'.join(parts)} in the zip is damaged or encrypted; zip the folders again.") from None
            if len(content) > max_member_bytes:
                raise UserError(f"{parts[-1]} unpacks to more than {max_member_bytes / 2**20:.0f} MB; each picture "
                                f"may be at most {max_member_bytes / 2**20:.0f} MB.")
            classes.setdefault(name, []).append(decode_image(content, "/".join(parts), max_pixels))
    return {name: np.stack(images) for name, images in classes.items()}


def merge(collection: Mapping[str, np.ndarray], added: Mapping[str, np.ndarray], max_images: int = MAX_IMAGES,
          max_classes: int = MAX_CLASSES) -> Collection:
    """`collection` with `added` appended class by class; a new dict, the old one untouched; UserError over the caps."""
    merged = {name: np.asarray(images) for name, images in collection.items()}
    for name, images in added.items():
        if name not in merged and len(merged) >= max_classes:
            raise UserError(f"You can have at most {max_classes} classes; delete one before adding {name}.")
        old = merged.get(name, np.zeros((0, 28, 28), np.uint8))
        merged[name] = np.concatenate([old, np.asarray(images, dtype=np.uint8).reshape(-1, 28, 28)])
    total = sum(len(images) for images in merged.values())
    if total > max_images:
        raise UserError(f"That would make {total:,} pictures; a set of your own classes holds at most {max_images:,}.")
    return merged


def check_collection(collection: Mapping[str, np.ndarray], min_per_class: int = MIN_PER_CLASS) -> None:
    """UserError (one sentence) unless the collection can be trained on: 2–10 classes, each with enough images."""
    if len(collection) < MIN_CLASSES:
        raise UserError(f"Define at least {MIN_CLASSES} classes with pictures; a model needs something to tell apart.")
    if len(collection) > MAX_CLASSES:
        raise UserError(f"Use at most {MAX_CLASSES} classes.")
    short = [name for name, images in collection.items() if len(images) < min_per_class]
    if short:
        raise UserError(f"Each class needs at least {min_per_class} pictures; add more to: {', '.join(short)}.")


def _augmented(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The image rotated by up to 15° and shifted by up to 2 pixels (a drawing could look like that too)."""
    from scipy import ndimage

    rotated = ndimage.rotate(image.astype(np.float32), rng.uniform(-15, 15), reshape=False, order=1, mode="constant")
    shifted = ndimage.shift(rotated, rng.integers(-2, 3, size=2), order=0, mode="constant")
    return np.clip(np.rint(shifted), 0, 255).astype(np.uint8)


def build_arrays(
    collection: Mapping[str, np.ndarray],
    *,
    test_fraction: float = 0.2,
    copies: int = COPIES,
    seed: int = 0,
    min_per_class: int = MIN_PER_CLASS,
) -> tuple[tuple[str, ...], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Class names and (x_train, y_train, x_test, y_test) uint8/int64 arrays from a collection.

    Each class gives `test_fraction` of its pictures (at least one) to the test set, unchanged;
    the rest go to training in a shuffled order, each followed by `copies` augmented versions of it.
    """
    check_collection(collection, min_per_class)
    rng = np.random.default_rng(seed)
    names = tuple(collection)
    train_groups: list[tuple[np.ndarray, int]] = []
    x_test, y_test = [], []
    for label, name in enumerate(names):
        images = np.asarray(collection[name], dtype=np.uint8).reshape(-1, 28, 28)
        order = rng.permutation(len(images))
        held = max(1, int(round(len(images) * test_fraction)))
        x_test.extend(images[order[:held]])
        y_test.extend([label] * held)
        train_groups.extend((images[index], label) for index in order[held:])
    x_train, y_train = [], []
    for index in rng.permutation(len(train_groups)):
        image, label = train_groups[index]
        x_train.append(image)
        x_train.extend(_augmented(image, rng) for _ in range(copies))
        y_train.extend([label] * (copies + 1))
    return names, (np.stack(x_train), np.asarray(y_train, np.int64), np.stack(x_test), np.asarray(y_test, np.int64))


def to_npz(collection: Mapping[str, np.ndarray]) -> bytes:
    """The collection as .npz bytes: uint8 images, int labels and the class names as JSON (no pickle)."""
    names = list(collection)
    images = [np.asarray(collection[name], np.uint8).reshape(-1, 28, 28) for name in names]
    labels = np.concatenate([np.full(len(group), index, np.int64) for index, group in enumerate(images)]) if names else \
        np.zeros(0, np.int64)
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        images=np.concatenate(images) if images else np.zeros((0, 28, 28), np.uint8),
        labels=labels,
        class_names=np.frombuffer(json.dumps(names).encode("utf-8"), np.uint8),
    )
    return buffer.getvalue()


def from_npz(data: bytes) -> Collection:
    """The collection `to_npz` wrote (a class may be empty); UserError if the bytes are not one."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            images, labels = arrays["images"], arrays["labels"]
            names = json.loads(arrays["class_names"].tobytes().decode("utf-8"))
    except (OSError, ValueError, KeyError, UnicodeDecodeError, json.JSONDecodeError):
        raise UserError("That is not a saved set of your own classes.") from None
    if (images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28) or len(images) != len(labels)
            or not isinstance(names, list) or len(names) > MAX_CLASSES or len(images) > MAX_IMAGES):
        raise UserError("That is not a saved set of your own classes.")
    return {str(name): images[labels == index] for index, name in enumerate(names)}
