"""The own-classes zip reader and array builder: crafted zips, bad collections, the split and augmentation."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from PIL import Image, ImageDraw

from cnn_core.engine import own_data
from cnn_core.engine.errors import UserError


def shape_png(kind: str, size: int = 64, mode: str = "L", colour=255) -> bytes:
    picture = Image.new(mode, (size, size), 0 if mode == "L" else (0, 0, 0))
    pen = ImageDraw.Draw(picture)
    box = (size * 0.2, size * 0.2, size * 0.8, size * 0.8)
    if kind == "circle":
        pen.ellipse(box, outline=colour, width=max(2, size // 12))
    else:
        pen.rectangle(box, outline=colour, width=max(2, size // 12))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def make_zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_a_zip_of_class_folders_reads_colour_and_mixed_sizes_as_28x28_grey():
    files = {f"shapes/circle/{i}.png": shape_png("circle", 40 + 30 * i, "RGB", (200, 30, 30)) for i in range(3)}
    files |= {f"shapes/square/{i}.png": shape_png("square", 300) for i in range(2)}
    files["shapes/.DS_Store"] = b"junk"
    files["__MACOSX/shapes/circle/._0.png"] = b"junk"
    collection = own_data.read_zip(make_zip(files))
    assert list(collection) == ["circle", "square"]
    assert collection["circle"].shape == (3, 28, 28) and collection["square"].shape == (2, 28, 28)
    assert collection["circle"].dtype == np.uint8 and collection["circle"].max() > 200
    # A circle and a square are different pictures after preparation.
    assert np.abs(collection["circle"][0].astype(int) - collection["square"][0].astype(int)).sum() > 1000


def test_too_many_members_is_refused_before_reading_any():
    files = {f"a/{i}.png": b"not read" for i in range(30)}
    with pytest.raises(UserError, match="30 files"):
        own_data.read_zip(make_zip(files), max_members=20)


def test_too_many_pictures_is_refused():
    files = {f"a/{i}.png": b"x" for i in range(12)}
    with pytest.raises(UserError, match="12 pictures"):
        own_data.read_zip(make_zip(files), max_images=10)


def test_a_huge_member_is_refused_from_its_declared_size():
    # 50 MB of zeros compresses to ~50 KB: a small zip that would unpack to far more.
    data = make_zip({"a/bomb.png": bytes(50 * 2**20), "b/1.png": shape_png("square")})
    assert len(data) < 1 * 2**20
    with pytest.raises(UserError, match="bomb.png"):
        own_data.read_zip(data)


def test_a_member_lying_about_its_size_is_caught_while_reading():
    data = bytearray(make_zip({"a/big.png": bytes(2 * 2**20), "b/1.png": shape_png("square")}))
    # Patch the declared uncompressed size (central directory) to 10 bytes.
    central = data.rfind(b"PK\x01\x02", 0, data.rfind(b"PK\x01\x02"))
    data[central + 24:central + 28] = (10).to_bytes(4, "little")
    with pytest.raises(UserError):
        own_data.read_zip(bytes(data), max_member_bytes=2**20)


def test_path_traversal_names_are_not_classes_and_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    good = {"circle/1.png": shape_png("circle"), "square/1.png": shape_png("square")}
    for evil in ("../../evil/1.png", "/abs/x/1.png", "circle/../../1.png", "C:/x/1.png"):
        with pytest.raises(UserError, match="points outside"):
            own_data.read_zip(make_zip(good | {evil: shape_png("circle")}))
    assert list(tmp_path.iterdir()) == []


def test_a_corrupt_picture_is_named():
    files = {"circle/1.png": shape_png("circle"), "circle/2.png": b"\x89PNG\r\n\x1a\n broken", "square/1.png": shape_png("square")}
    with pytest.raises(UserError, match="circle/2.png"):
        own_data.read_zip(make_zip(files))


def test_a_picture_with_too_many_pixels_is_refused_from_its_header():
    with pytest.raises(UserError, match="megapixels"):
        own_data.read_zip(make_zip({"a/1.png": shape_png("circle", 200), "b/1.png": shape_png("square")}),
                          max_pixels=100 * 100)


def test_not_a_zip_and_no_pictures_are_refused():
    with pytest.raises(UserError, match="not a .zip"):
        own_data.read_zip(b"hello")
    with pytest.raises(UserError, match="no PNG"):
        own_data.read_zip(make_zip({"a/readme.txt": b"hi"}))


def test_pictures_outside_class_folders_are_refused():
    with pytest.raises(UserError, match="folder named after its class"):
        own_data.read_zip(make_zip({"1.png": shape_png("circle"), "b/1.png": shape_png("square")}))


def ink(count: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    images = np.zeros((count, 28, 28), np.uint8)
    images[:, 8:20, 8:20] = rng.integers(100, 255, size=(count, 12, 12))
    return images


def test_one_class_or_an_empty_class_cannot_train():
    with pytest.raises(UserError, match="at least 2 classes"):
        own_data.check_collection({"circle": ink(10)})
    with pytest.raises(UserError, match="add more to: square"):
        own_data.check_collection({"circle": ink(10), "square": np.zeros((0, 28, 28), np.uint8)})


def test_build_arrays_holds_originals_back_and_adds_augmented_copies():
    collection = {"circle": ink(10, 1), "square": ink(5, 2), "arrow": ink(20, 3)}
    names, (x_train, y_train, x_test, y_test) = own_data.build_arrays(collection, copies=3)
    assert names == ("circle", "square", "arrow")
    assert np.bincount(y_test).tolist() == [2, 1, 4]
    assert np.bincount(y_train).tolist() == [8 * 4, 4 * 4, 16 * 4]
    assert x_train.shape == (112, 28, 28) and x_train.dtype == np.uint8
    # Each original is followed by copies that differ from it (shifted/rotated), of the same class.
    originals = {image.tobytes() for images in collection.values() for image in images}
    for start in range(0, len(x_train), 4):
        assert x_train[start].tobytes() in originals
        assert len(set(y_train[start:start + 4])) == 1
        assert any(not np.array_equal(x_train[start], copy) for copy in x_train[start + 1:start + 4])
    # No test picture is trained on.
    train_originals = {x_train[i].tobytes() for i in range(0, len(x_train), 4)}
    assert not train_originals & {image.tobytes() for image in x_test}


def test_npz_round_trip_keeps_an_empty_class_and_refuses_junk():
    collection = {"circle": ink(3), "square": np.zeros((0, 28, 28), np.uint8)}
    back = own_data.from_npz(own_data.to_npz(collection))
    assert list(back) == ["circle", "square"]
    assert np.array_equal(back["circle"], collection["circle"]) and back["square"].shape == (0, 28, 28)
    with pytest.raises(UserError):
        own_data.from_npz(b"junk")


def test_merge_keeps_the_old_collection_and_caps_the_total():
    old = {"circle": ink(3)}
    merged = own_data.merge(old, {"circle": ink(2), "square": ink(1)})
    assert [len(v) for v in merged.values()] == [5, 1] and len(old["circle"]) == 3
    with pytest.raises(UserError, match="at most 4"):
        own_data.merge(old, {"circle": ink(2)}, max_images=4)
    assert len(old["circle"]) == 3


@pytest.mark.parametrize("name", ["", "  ", "../x", "a/b", "x" * 30, "_hidden"])
def test_bad_class_names_are_refused(name):
    with pytest.raises(UserError):
        own_data.check_class_name(name)


def test_good_class_names_are_kept():
    assert own_data.check_class_name("  left arrow ") == "left arrow"
    assert own_data.check_class_name("Ä") == "Ä"


def test_ten_thousand_pictures_in_one_zip_are_refused_with_the_default_caps():
    data = make_zip({f"circle/{i}.png": b"" for i in range(10_000)})
    with pytest.raises(UserError, match="10,000 files"):
        own_data.read_zip(data)
