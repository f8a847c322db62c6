"""The "Your own classes" page in a real browser: a .zip of class folders is read and shown (AppTest cannot upload)."""

from __future__ import annotations

from tests.app.browser.conftest import screenshot
from tests.app.browser.harness import wait_until_idle
from tests.core.engine.test_own_data import make_zip, shape_png


def add_zip(page, path) -> None:
    """Choose the zip in the uploader, wait for it to arrive, press Add these pictures."""
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(path))
    wait_until_idle(page)
    page.get_by_role("button", name="Add these pictures").click()
    wait_until_idle(page)


def test_an_uploaded_zip_fills_the_classes_and_a_bad_one_loses_nothing(page, tmp_path):
    good = tmp_path / "shapes.zip"
    good.write_bytes(make_zip(
        {f"shapes/circle/{i}.png": shape_png("circle", 60 + 20 * i, "RGB", (220, 40, 40)) for i in range(6)}
        | {f"shapes/square/{i}.png": shape_png("square", 90) for i in range(5)}
    ))
    bad = tmp_path / "bad.zip"
    bad.write_bytes(make_zip({"circle/1.png": shape_png("circle"), "circle/2.png": b"\x89PNG broken"}))

    page.goto("/own_classes")
    wait_until_idle(page)
    add_zip(page, good)
    assert page.get_by_text("circle: 6 pictures").count() == 1
    assert page.get_by_text("square: 5 pictures").count() == 1
    assert page.get_by_role("button", name="Train on these classes").count() == 1
    # The uploader is empty again: holding the zip, it offered to add the same pictures twice.
    uploader = page.locator('[data-testid="stFileUploader"]')
    assert "shapes.zip" not in uploader.inner_text()
    assert page.get_by_role("button", name="Add these pictures").count() == 0
    for width in (1400, 800, 400):
        page.set_viewport_size({"width": width, "height": 1000})
        wait_until_idle(page)
        screenshot(page, f"own_classes_{width}")
    page.set_viewport_size({"width": 1400, "height": 1000})

    add_zip(page, bad)
    assert page.get_by_text("circle/2.png is not a picture this app can read").count() == 1
    assert page.get_by_text("circle: 6 pictures").count() == 1
    assert page.locator('[data-testid="stException"]').count() == 0

    # Replacing the refused zip with a good one: the new file arrives (it used to vanish now and then).
    add_zip(page, good)
    assert page.get_by_text("circle: 12 pictures").count() == 1
    assert page.get_by_text("square: 10 pictures").count() == 1
