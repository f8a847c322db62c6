"""A workshop class in two real browsers: the instructor creates it, a participant joins, a hand-out arrives."""

from __future__ import annotations

import pytest

from tests.app.browser.conftest import screenshot

pytestmark = pytest.mark.browser


def test_instructor_and_participant(browser, app_url):
    instructor = browser.new_context(viewport={"width": 1400, "height": 1000}, base_url=app_url).new_page()
    participant = browser.new_context(viewport={"width": 400, "height": 850}, base_url=app_url).new_page()
    for tab in (instructor, participant):
        tab.set_default_timeout(60_000)
    instructor.goto("/classroom")
    instructor.get_by_role("heading", name="Run a class").wait_for()
    instructor.get_by_label("Class name").fill("Room 4")
    instructor.get_by_role("button", name="Create the class").click()
    code = instructor.locator('[data-testid="stMetricValue"]').first
    code.wait_for()
    join_code = code.inner_text().strip()
    assert len(join_code) == 6

    participant.goto(f"/classroom?join={join_code}")
    participant.get_by_role("heading", name="Join a class").wait_for()
    participant.wait_for_timeout(1500)
    assert participant.get_by_label("Join code").input_value() == join_code, participant.url
    participant.get_by_label("Your nickname (shown to the class)").fill("Grace")
    participant.get_by_role("button", name="Join").click()
    participant.get_by_text("You are in this class as Grace.").wait_for()
    # The participant's own page never shows instructor controls.
    assert participant.get_by_role("button", name="Hand out").count() == 0

    # The class view refreshes by itself and lists the participant.
    instructor.locator('[data-testid="stDataFrame"]').first.wait_for()
    instructor.get_by_role("button", name="Hand out").click()
    # The participant's page polls for hand-outs: no reload needed.
    participant.get_by_text("From your instructor (Room 4): 99.8% with one convolution").wait_for()
    screenshot(instructor, "classroom_instructor")
    screenshot(participant, "classroom_participant")
    assert instructor.locator('[data-testid="stException"]').count() == 0
    assert participant.locator('[data-testid="stException"]').count() == 0
    instructor.context.close()
    participant.context.close()
