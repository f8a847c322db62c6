"""In Chromium: a small run ends with the filmstrip slider; moving it moves the rule on the curves and the frame."""

from __future__ import annotations

import re

from tests.app.browser.conftest import screenshot
from tests.app.browser.harness import wait_until_idle


def test_the_filmstrip_slider_scrubs_through_a_finished_run(page):
    page.goto("/train")
    wait_until_idle(page)
    page.get_by_text("Train on a subset", exact=True).click()
    wait_until_idle(page)
    subset = page.get_by_label("Training images")
    subset.fill("1000")
    subset.press("Enter")
    wait_until_idle(page)
    page.get_by_role("button", name="Start training").click()
    page.get_by_role("button", name="Continue training").wait_for(timeout=240_000)
    wait_until_idle(page)
    slider = page.get_by_role("slider", name=re.compile("Filmstrip"))
    last = slider.get_attribute("aria-valuetext") or slider.get_attribute("aria-valuenow")
    caption = page.get_by_text(re.compile(r"first layer's 32 filters \(3×3\), at step"))
    assert caption.count() == 1
    before = caption.inner_text()
    page.get_by_text("Health of the network across the filmstrip").click()
    wait_until_idle(page)
    health = page.locator('[data-testid="stExpander"]').filter(has_text="Health of the network across the filmstrip")
    # Per hidden layer, the weight and the probe-activation heatmaps; the diagnoses at the slider's point.
    health.locator('[data-testid="stVegaLiteChart"]').nth(5).wait_for(timeout=30_000)
    assert health.get_by_text(re.compile(r"^At step [\d,]+: ")).count() >= 1
    for width in (1400, 800, 400):
        page.set_viewport_size({"width": width, "height": 1000})
        page.wait_for_timeout(800)
        screenshot(page, f"filmstrip-{width}")
    page.set_viewport_size({"width": 1400, "height": 1000})
    slider.focus()
    page.keyboard.press("Home")
    wait_until_idle(page)
    first = page.get_by_role("slider", name=re.compile("Filmstrip"))
    assert (first.get_attribute("aria-valuetext") or first.get_attribute("aria-valuenow")) != last
    after = page.get_by_text(re.compile(r"first layer's 32 filters \(3×3\), at step")).inner_text()
    assert "at step 0 " in after and after != before
    screenshot(page, "filmstrip-first-frame")
