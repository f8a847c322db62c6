"""Issue #13 in a real browser: layouts that fit from 1400 px to a 400 px phone, a canvas toolbar that cannot
break drawing, a clickable confusion matrix, and an app that asks nothing of the internet."""

from __future__ import annotations

import re
from urllib.parse import urlparse

import pytest

from cnn_core.service import persistence
from tests.app.browser.conftest import screenshot
from tests.app.browser.harness import draw_stroke, wait_until_idle

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not (persistence.MODELS_DIR / "default_mnist.keras").exists(),
                       reason="the default models are missing; create them with `make models`"),
]

SEVEN = [(70, 50), (210, 50), (120, 240)]
WIDTHS = {"desktop": (1400, 900), "laptop": (1024, 768), "small": (800, 900), "phone": (400, 800)}


@pytest.fixture
def sized_page(browser, app_url):
    contexts = []

    def open_at(width: int, height: int):
        context = browser.new_context(viewport={"width": width, "height": height}, base_url=app_url)
        contexts.append(context)
        tab = context.new_page()
        tab.set_default_timeout(60_000)
        return tab

    yield open_at
    for context in contexts:
        context.close()


def canvas_of(page):
    canvas = page.locator("canvas.upper-canvas")
    canvas.wait_for()
    return canvas


def visible_box(locator) -> dict:
    """The part of an element that is not cut off by an ancestor that clips (overflow hidden/auto)."""
    return locator.evaluate(
        """element => {
            let r = element.getBoundingClientRect();
            let box = {left: r.left, top: r.top, right: r.right, bottom: r.bottom};
            for (let node = element.parentElement; node; node = node.parentElement) {
                const style = getComputedStyle(node);
                if (style.overflowX !== 'visible' || style.overflowY !== 'visible') {
                    const c = node.getBoundingClientRect();
                    box = {left: Math.max(box.left, c.left), top: Math.max(box.top, c.top),
                           right: Math.min(box.right, c.right), bottom: Math.min(box.bottom, c.bottom)};
                }
                if (node.getRootNode() !== document && !node.parentElement) node = node.getRootNode().host;
            }
            return {width: box.right - box.left, height: box.bottom - box.top, left: box.left, right: box.right};
        }"""
    )


@pytest.mark.parametrize("size", list(WIDTHS))
def test_the_whole_canvas_is_visible_and_the_guess_is_right_under_it(sized_page, size):
    width, height = WIDTHS[size]
    page = sized_page(width, height)
    page.goto("/draw")
    wait_until_idle(page)
    canvas = canvas_of(page)
    # Before, at 800 px: the column was ~220 px wide and hid the right part of the 280 px canvas.
    shown = visible_box(canvas)
    assert shown["width"] >= 279 and shown["height"] >= 279, shown
    assert shown["right"] <= width
    draw_stroke(page, canvas, SEVEN)
    prediction = page.locator('[data-testid="stMetricValue"]').first
    prediction.wait_for(timeout=60_000)
    wait_until_idle(page)
    assert prediction.inner_text().strip() == "7"
    # No scrolling after a stroke, on a phone too: the canvas and the guess are on screen together.
    canvas_box, guess_box = canvas.bounding_box(), prediction.bounding_box()
    assert canvas_box["y"] >= 0 and guess_box["y"] + guess_box["height"] <= height, (canvas_box, guess_box)
    assert guess_box["y"] - (canvas_box["y"] + canvas_box["height"]) < 120
    # Buttons keep their labels ("C.." before).
    clear = page.get_by_role("button", name="Clear")
    assert clear.evaluate("b => b.scrollWidth <= b.clientWidth") and clear.inner_text().strip() == "Clear"
    assert page.get_by_text("lift the mouse").count() == 0
    screenshot(page, f"layout-draw-{width}")


def test_the_canvas_toolbar_keeps_undo_but_not_edit(sized_page):
    page = sized_page(1400, 900)
    page.goto("/draw")
    wait_until_idle(page)
    canvas = canvas_of(page)
    canvas.hover()
    page.wait_for_timeout(500)
    # Before: the toolbar's pencil switched to selecting strokes, and strokes then drew nothing.
    assert page.locator('button[aria-label="Undo"]').is_visible()
    for hidden in ("Edit", "Reset canvas & history", "Update the app with this drawing"):
        assert not page.locator(f'button[aria-label="{hidden}"]').is_visible(), hidden
    draw_stroke(page, canvas, SEVEN)
    page.locator('[data-testid="stMetricValue"]').first.wait_for(timeout=60_000)


@pytest.mark.parametrize("width", [1400, 1024, 800, 400])
def test_the_playground_kernel_shows_its_numbers(sized_page, width):
    page = sized_page(width, 900)
    page.goto("/playground")
    wait_until_idle(page)
    cells = page.locator('[class*="st-key-playground-kernel-row-"] input')
    cells.nth(8).wait_for()
    assert cells.count() == 9
    for index in range(9):
        cell = cells.nth(index)
        # Before, at 800 px: boxes ~30 px wide with no number visible.
        assert cell.evaluate("i => i.clientWidth >= 40 && i.scrollWidth <= i.clientWidth + 1"), index
        assert visible_box(cell)["width"] >= 40, index
    screenshot(page, f"layout-playground-{width}")


@pytest.mark.parametrize("width", [1400, 800, 400])
def test_the_train_page_keeps_its_buttons_whole(sized_page, width):
    page = sized_page(width, 900)
    page.goto("/train")
    wait_until_idle(page)
    edit = page.get_by_role("button", name="Edit").first
    assert edit.evaluate("b => b.scrollWidth <= b.clientWidth")
    assert visible_box(edit)["width"] >= 40
    # Before, at 800 px: "Stop at a target ac…" and "Keep the best vali…" in a third of the width.
    for label in ("Train on a subset", "Stop at a target accuracy", "Keep the best validation epoch"):
        text = page.locator('[data-testid="stCheckbox"]').filter(has_text=label).locator("p").first
        assert text.evaluate("p => p.scrollWidth <= p.clientWidth + 1"), label
    assert widest_overflow(page) == []
    assert page.locator('[data-testid="stException"]').count() == 0
    screenshot(page, f"layout-train-{width}")


def test_clicking_a_confusion_matrix_cell_opens_its_images(sized_page):
    page = sized_page(1400, 1000)
    page.goto("/evaluate")
    wait_until_idle(page)
    chart = page.locator('[data-testid="stVegaLiteChart"]').first
    chart.scroll_into_view_if_needed()
    true_box = page.get_by_role("combobox", name="True class")
    predicted_box = page.get_by_role("combobox", name="Predicted as")
    before = (true_box.input_value(), predicted_box.input_value())
    plot = chart.locator("g.mark-rect path").first.evaluate(
        "p => { const r = p.closest('g.mark-rect').getBoundingClientRect();"
        " return {x: r.x, y: r.y, width: r.width, height: r.height}; }"
    )
    # The cell of true 7 predicted as 1 (column 1 of 10, row 7 of 10), off its number, then on it.
    for inside in (0.2, 0.5):
        page.mouse.click(plot["x"] + plot["width"] * (1 + inside) / 10, plot["y"] + plot["height"] * (7 + inside) / 10)
        wait_until_idle(page)
        # Before: the matrix was a picture; only the two boxes chose a cell.
        assert (true_box.input_value(), predicted_box.input_value()) == ("7", "1"), before
        page.mouse.click(plot["x"] + plot["width"] * 0.2 / 10, plot["y"] + plot["height"] * 0.2 / 10)
        wait_until_idle(page)
        assert (true_box.input_value(), predicted_box.input_value()) == ("0", "0")
    assert page.get_by_text("correct answers").count() == 1
    screenshot(page, "evaluate-clicked")


def test_nothing_is_fetched_from_the_internet(sized_page, app_url):
    page = sized_page(1400, 900)
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    for path in ["", "draw", "train", "feature_maps", "evaluate", "runs", "playground", "datasets", "exercises"]:
        page.goto(f"/{path}")
        wait_until_idle(page)
    own = urlparse(app_url).hostname
    outside = {url for url in requests
               if not url.startswith(("data:", "blob:")) and urlparse(url).hostname not in (own, "localhost")}
    # Before: the page icon came from fonts.gstatic.com.
    assert not outside, sorted(outside)
    assert len(requests) > 20


@pytest.mark.parametrize("width", [1400, 400])
def test_the_exercise_kernel_shows_all_nine_cells(sized_page, width):
    page = sized_page(width, 900)
    page.goto("/exercises")
    wait_until_idle(page)
    page.get_by_role("combobox", name="Exercise").click()
    page.get_by_role("option", name="A kernel that sees vertical edges").click()
    wait_until_idle(page)
    cells = page.locator('[class*="st-key-exercise-vertical_edge_kernel-row-"] input')
    cells.nth(8).wait_for()
    # Before, at 1400 px: the third column of cells was cut off by its one-third-wide column.
    for index in range(9):
        cell = cells.nth(index)
        assert visible_box(cell)["width"] >= cell.bounding_box()["width"] - 1, index


def widest_overflow(page) -> list[str]:
    """Elements of the main area that reach past the right edge of the window (a page that scrolls sideways)."""
    return page.evaluate(
        """() => {
            const edge = document.documentElement.clientWidth + 1;
            return [...document.querySelectorAll('[data-testid=stMain] *')]
                .filter(e => e.getBoundingClientRect().width > 0 && e.getBoundingClientRect().right > edge)
                .map(e => (e.dataset.testid || e.tagName) + ' ' + Math.round(e.getBoundingClientRect().right))
                .slice(0, 10);
        }"""
    )


def assert_whole_button(page, name: str) -> None:
    button = page.get_by_role("button", name=name)
    # The label sits in a <p> that cuts it with an ellipsis, so the button itself never overflows.
    assert button.evaluate("b => [b, ...b.querySelectorAll('*')].every("
                           "e => e.clientWidth === 0 || e.scrollWidth <= e.clientWidth + 1)"), name
    assert button.inner_text().strip() == name


@pytest.mark.parametrize("width", [800, 400])
def test_my_handwriting_shows_the_whole_canvas_and_whole_buttons(sized_page, width):
    page = sized_page(width, 900)
    page.goto("/my_handwriting")
    wait_until_idle(page)
    canvas = canvas_of(page)
    # Before, at 800 px: the canvas sat in a half-width column that hid its right part.
    shown = visible_box(canvas)
    assert shown["width"] >= 279 and shown["height"] >= 279, shown
    draw_stroke(page, canvas, SEVEN)
    add = page.get_by_role("button", name="Add to my handwriting")
    add.wait_for()
    page.wait_for_function("() => [...document.querySelectorAll('button')].some("
                           "b => b.innerText.includes('Add to my handwriting') && !b.disabled)")
    wait_until_idle(page)
    # Before, at 800 px: "Add to m…".
    assert_whole_button(page, "Add to my handwriting")
    assert_whole_button(page, "Teach it my handwriting")
    assert widest_overflow(page) == []
    assert page.locator('[data-testid="stException"]').count() == 0
    screenshot(page, f"layout-my_handwriting-{width}")


@pytest.mark.parametrize("width", [800, 400])
def test_own_classes_shows_the_whole_canvas_and_whole_buttons(sized_page, width):
    page = sized_page(width, 900)
    page.goto("/own_classes")
    wait_until_idle(page)
    assert_whole_button(page, "Add class")
    for name in ("circle", "square"):
        page.get_by_label("New class name").fill(name)
        page.get_by_role("button", name="Add class").click()
        wait_until_idle(page)
    canvas = canvas_of(page)
    shown = visible_box(canvas)
    assert shown["width"] >= 279 and shown["height"] >= 279, shown
    assert shown["right"] <= width
    assert_whole_button(page, "Add drawing")
    assert widest_overflow(page) == []
    assert page.locator('[data-testid="stException"]').count() == 0
    screenshot(page, f"layout-own_classes-{width}")


def overlapping_pairs(boxes: list[dict]) -> list[tuple[int, int]]:
    return [(i, j) for i, a in enumerate(boxes) for j, b in enumerate(boxes) if i < j
            and a["x"] + a["width"] > b["x"] + 1 and b["x"] + b["width"] > a["x"] + 1
            and a["y"] + a["height"] > b["y"] + 1 and b["y"] + b["height"] > a["y"] + 1]


@pytest.mark.parametrize("width", [1400, 800, 400])
def test_the_playground_number_grids_never_overlap(sized_page, width):
    page = sized_page(width, 900)
    page.goto("/playground")
    wait_until_idle(page)
    charts = page.locator('[data-testid="stVegaLiteChart"] canvas, [data-testid="stVegaLiteChart"] svg')
    charts.nth(5).wait_for()
    page.wait_for_timeout(1000)
    # window, weights, products; output, after ReLU, pooled.
    boxes = [charts.nth(i).bounding_box() for i in range(charts.count())]
    assert len(boxes) == 6, boxes
    # Before, at 800 px: the 9×9 window grid ran over the weights and the output over the ReLU grid.
    assert overlapping_pairs(boxes) == [], boxes
    assert all(box["x"] + box["width"] <= width for box in boxes), boxes
    screenshot(page, f"layout-playground-grids-{width}")


@pytest.mark.parametrize("width", [800, 400])
def test_the_join_link_is_shown_whole(sized_page, width):
    page = sized_page(width, 900)
    page.goto("/classroom")
    wait_until_idle(page)
    page.get_by_role("button", name="Create the class").click()
    wait_until_idle(page)
    link = page.locator('[data-testid="stCode"] code').first
    link.wait_for()
    assert "join=" in link.inner_text()
    # Before: one line that scrolled sideways, so at 800 px the code itself was cut off.
    assert link.evaluate("c => c.closest('pre').scrollWidth <= c.closest('pre').clientWidth + 1")
    assert visible_box(link)["right"] <= width
    screenshot(page, f"layout-class-link-{width}")


@pytest.mark.parametrize("width", [1400, 800, 400])
def test_the_home_page_shows_the_active_models_figures_whole(sized_page, width):
    page = sized_page(width, 900)
    page.goto("/")
    wait_until_idle(page)
    values = page.locator('[data-testid="stMetricValue"]')
    values.nth(1).wait_for()
    # Before, at 800 px: "MNI…" and "99.5…" in quarter-width columns.
    dataset, accuracy = (values.nth(i).inner_text().strip() for i in range(2))
    assert dataset == "MNIST digits" and re.fullmatch(r"\d\d\.\d\d%", accuracy), (dataset, accuracy)
    for i in range(2):
        assert values.nth(i).evaluate("v => [v, ...v.querySelectorAll('*')].every("
                                      "e => e.clientWidth === 0 || e.scrollWidth <= e.clientWidth + 1)"), i
    # Before, at 800 px: "Compare rur", "Feature map" in one-third-wide cards.
    for label in ("Draw a digit", "Feature maps", "Train a CNN", "Evaluate", "Compare runs", "Convolution playground"):
        link = page.locator('[data-testid="stMain"] [data-testid="stPageLink"]').filter(has_text=label).first
        assert link.evaluate("l => [...l.querySelectorAll('*')].every("
                             "e => e.clientWidth === 0 || e.scrollWidth <= e.clientWidth + 1)"), label
    assert widest_overflow(page) == []
    screenshot(page, f"layout-home-{width}")


def sideways_scrollers(page) -> list[str]:
    """Elements of the main area that scroll sideways inside the page (a table cut at its right edge, say)."""
    return page.evaluate(
        """() => [...document.querySelectorAll('[data-testid=stMain] *')]
            .filter(e => ['auto', 'scroll'].includes(getComputedStyle(e).overflowX) && e.clientWidth > 2
                         && e.scrollWidth > e.clientWidth + 1)
            .map(e => (e.dataset.testid || e.tagName) + ' ' + e.scrollWidth + '>' + e.clientWidth)
            .slice(0, 10)"""
    )


@pytest.mark.parametrize("width", [800, 400])
def test_the_feature_maps_layer_table_fits_without_scrolling_sideways(sized_page, width):
    page = sized_page(width, 900)
    page.goto("/feature_maps")
    wait_until_idle(page)
    page.get_by_text("Each tile is one channel", exact=False).first.wait_for()
    # Before, at 800 px: the layer table was a data grid 478 px wide in a 317 px column, its shapes cut off.
    assert sideways_scrollers(page) == []
    assert page.evaluate("() => document.documentElement.scrollWidth <= innerWidth")
    assert widest_overflow(page) == []
    assert page.get_by_text("3 × 3 × 64", exact=True).first.is_visible()
    screenshot(page, f"layout-feature-maps-{width}")


@pytest.mark.parametrize("width", [800, 400])
def test_the_train_layer_table_and_the_evaluate_figures_are_whole(sized_page, width):
    page = sized_page(width, 900)
    page.goto("/train")
    wait_until_idle(page)
    page.get_by_text("What each layer outputs").first.wait_for()
    # Before, at 400 px: the layer table was a data grid with its params column cut off.
    assert sideways_scrollers(page) == []
    table = page.locator('[data-testid="stMain"] table').filter(has_text="18496").first
    box = table.bounding_box()
    assert box and box["x"] >= 0 and box["x"] + box["width"] <= width + 1, box
    screenshot(page, f"layout-train-{width}")
    page.goto("/evaluate")
    wait_until_idle(page)
    values = page.locator('[data-testid="stMetricValue"]')
    values.nth(2).wait_for()
    # Before, at 800 px: "45 of 1…" in a third of the main area.
    assert re.fullmatch(r"\d+ of 10,000", values.nth(1).inner_text().strip())
    for i in range(3):
        assert values.nth(i).evaluate("v => [v, ...v.querySelectorAll('*')].every("
                                      "e => e.clientWidth === 0 || e.scrollWidth <= e.clientWidth + 1)"), i
    assert sideways_scrollers(page) == [] and widest_overflow(page) == []
    screenshot(page, f"layout-evaluate-{width}")


def ink_at_right_edge(chart) -> int:
    """Dark pixels in a chart's last three columns: text or lines that its edge cuts off."""
    import io

    from PIL import Image

    picture = Image.open(io.BytesIO(chart.screenshot())).convert("L")
    width, height = picture.size
    return sum(1 for value in picture.crop((width - 3, 0, width, height)).getdata() if value < 160)


def test_the_live_views_buttons_are_whole_from_1400_to_400_px(sized_page):
    first = sized_page(1400, 900)
    first.goto("/train")
    wait_until_idle(first)
    first.get_by_text("Train on a subset").click()
    wait_until_idle(first)
    for name, value in (("Training images", "3000"), ("Epochs", "4")):
        field = first.get_by_role("spinbutton", name=name)
        field.fill(value)
        field.press("Enter")
    wait_until_idle(first)
    first.get_by_role("button", name="Start training").click()
    # Paused, so the run neither moves nor ends while the widths are checked.
    first.get_by_role("button", name="Pause").click(timeout=120_000)
    first.get_by_text(re.compile("Paused at epoch")).wait_for(timeout=60_000)
    try:
        for width in (1400, 800, 400):
            # The same workspace at each width, as a learner who opens the link on another screen.
            page = first if width == 1400 else sized_page(width, 900)
            if page is not first:
                page.goto(first.url)
            page.get_by_text(re.compile("Paused at epoch")).wait_for(timeout=60_000)
            page.wait_for_timeout(1000)  # a refresh at this width
            screenshot(page, f"layout-live-view-{width}")
            # Before, at 800 px: "Change lea…" in a quarter of the width.
            for name in ("Stop training", "Resume", "Change learning rate"):
                assert_whole_button(page, name)
                box = page.get_by_role("button", name=name).bounding_box()
                assert box["x"] >= 0 and box["x"] + box["width"] <= width, (name, box)
            number = page.get_by_role("spinbutton", name="Learning rate")
            box = number.bounding_box()
            assert box["width"] >= 100 and box["x"] + box["width"] <= width, box
            # Before, at 800 px: the legend's "training (running averag", the last tick and "pau" cut off.
            curves = page.locator('[data-testid="stMain"] [data-testid="stVegaLiteChart"]')
            curves.nth(1).wait_for(timeout=30_000)
            for number in (0, 1):
                assert ink_at_right_edge(curves.nth(number)) == 0, (width, number)
    finally:
        first.get_by_role("button", name="Stop training").click()
    first.get_by_text(re.compile("Stopped|active model")).first.wait_for(timeout=120_000)
