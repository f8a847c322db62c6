"""Only a user's mistake is shown in its own words; a bug is logged with a reference and shown as an apology."""

from __future__ import annotations

import logging
import re

import pytest

from cnn_core.engine import preprocess
from cnn_core.engine.errors import UserError
from tests.app.conftest import drawing

APOLOGY = re.compile(r"Something went wrong on our side \(reference ([0-9A-F]{8})\)")


def _broken(error: Exception):
    def steps(rgba):
        raise error

    return steps


def test_a_bugs_value_error_is_logged_and_never_shown_verbatim(open_page, fake_canvas, monkeypatch, caplog):
    fake_canvas.image = drawing("7")
    # A NumPy-style ValueError from deep inside: a bug, not something the visitor can fix.
    monkeypatch.setattr(preprocess, "canvas_steps", _broken(ValueError("operands could not be broadcast (3,) (4,)")))
    with caplog.at_level(logging.ERROR):
        at = open_page("draw")
    assert not at.exception
    shown = "\n".join(element.value for element in at.error)
    assert "broadcast" not in shown
    match = APOLOGY.search(shown)
    assert match, shown
    # The same reference ties the apology to the traceback in the log.
    logged = [record for record in caplog.records if match.group(1) in record.getMessage()]
    assert logged and logged[0].exc_info is not None
    assert "broadcast" in str(logged[0].exc_info[1])


def test_a_user_error_is_shown_as_its_sentence(open_page, fake_canvas, monkeypatch):
    fake_canvas.image = drawing("7")
    monkeypatch.setattr(preprocess, "canvas_steps", _broken(UserError("Draw a little larger.")))
    at = open_page("draw")
    assert not at.exception
    assert [element.value for element in at.error] == ["Draw a little larger."]


@pytest.mark.parametrize("error", [KeyError("model"), RuntimeError("CUDA internals")])
def test_any_other_exception_is_an_apology_too(open_page, fake_canvas, monkeypatch, error):
    fake_canvas.image = drawing("7")
    monkeypatch.setattr(preprocess, "canvas_steps", _broken(error))
    at = open_page("draw")
    assert not at.exception
    shown = "\n".join(element.value for element in at.error)
    assert APOLOGY.search(shown) and "internals" not in shown
