"""ui/entry.py's two patches of private Streamlit parts: they fail loudly when Streamlit changes, and do their job."""

from __future__ import annotations

import sys

import keras
import pytest
import streamlit as st
from streamlit.runtime.pages_manager import PagesManager
from streamlit.runtime.scriptrunner import script_runner
from streamlit.testing.v1 import AppTest

from tests.conftest import REPO_ROOT
from ui import entry


def test_a_missing_private_attribute_stops_the_app_with_a_clear_message():
    class Changed:
        pass

    with pytest.raises(entry.StreamlitChanged, match=r"has no Changed\.uses_pages_directory.*Re-check ui/entry\.py"):
        entry._private(Changed, "uses_pages_directory", "run every page inside app.py's navigation")


def test_the_pinned_streamlit_has_what_entry_replaces():
    assert hasattr(script_runner, "_clean_problem_modules")
    assert hasattr(PagesManager, "uses_pages_directory")


def _clear_session_calls(monkeypatch) -> list[int]:
    calls: list[int] = []
    monkeypatch.setattr(keras.backend, "clear_session", lambda *args, **kwargs: calls.append(1))
    assert "keras" in sys.modules
    return calls


def test_a_script_run_keeps_keras_state(monkeypatch):
    calls = _clear_session_calls(monkeypatch)
    AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=60).run()
    assert calls == []


def test_without_the_patch_streamlit_clears_keras_after_every_run(monkeypatch):
    # The behaviour the patch exists for: if Streamlit stops clearing Keras, this fails and the patch can go.
    calls = _clear_session_calls(monkeypatch)
    monkeypatch.setattr(script_runner, "_clean_problem_modules", entry._streamlit_cleanup)
    AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=60).run()
    assert calls


def _count_navigations(monkeypatch) -> list[int]:
    navigations: list[int] = []
    original = st.navigation

    def navigation(*args, **kwargs):
        navigations.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(st, "navigation", navigation)
    return navigations


def _open_datasets_by_url() -> AppTest:
    # AppTest starts every run like a fresh server's first request: while a pages/ folder exists,
    # Streamlit assumes the old one-file-per-page layout and runs a page URL's file on its own.
    at = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=60).run()
    return at.switch_page("pages/datasets.py")


def test_a_page_opened_by_its_url_runs_inside_the_navigation(monkeypatch):
    at = _open_datasets_by_url()
    navigations = _count_navigations(monkeypatch)
    at.run()
    assert not at.exception
    # The page ran app.py in place, whose navigation ran the page; the stray direct run drew nothing.
    assert navigations == [1]
    assert PagesManager.uses_pages_directory is False
    assert [title.value for title in at.title] == ["Datasets"]


def test_without_entry_a_page_opened_by_its_url_skips_the_navigation(monkeypatch):
    # The behaviour ensure_navigation exists for: if Streamlit stops doing this, it can go.
    at = _open_datasets_by_url()
    navigations = _count_navigations(monkeypatch)
    monkeypatch.setattr(entry, "ensure_navigation", lambda: None)
    at.run()
    assert navigations == []


def test_the_web_process_hands_the_interpreter_over_every_millisecond():
    import sys

    import ui.entry  # noqa: F401 - importing it is what sets the interval

    assert sys.getswitchinterval() == 0.001
