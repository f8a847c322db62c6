"""Make every page run inside app.py's navigation, even on a fresh server's very first request.

Streamlit decides once per process whether the app uses the old `pages/` folder convention: it
assumes so while a `pages/` folder exists, until app.py has called st.navigation. So if the
first visitor after a restart opens a page URL directly (a shared link to /train), Streamlit
runs that page on its own — no page config, no sections, raw file names in the sidebar — and
keeps doing so until someone opens the home page. (AppTest starts every run that way.)

Each page calls `ensure_navigation()` first. In that situation it records that the app
navigates (what st.navigation itself records), runs app.py in place — its st.navigation picks
the same page from the URL and runs it — and stops the stray run. Running in place rather than
rerunning keeps the click that started this run.
"""

from __future__ import annotations

import logging
import runpy
import sys
from pathlib import Path

import streamlit as st

from ui import layout
from ui.components import training_status

APP = Path(__file__).resolve().parent.parent / "app.py"
logger = logging.getLogger(__name__)


class StreamlitChanged(RuntimeError):
    """A private part of Streamlit that this module relies on is gone or has changed; see its message."""


def _private(owner: object, name: str, what: str) -> None:
    """Fail loudly (at import, so at server start) when a private Streamlit attribute has gone."""
    if not hasattr(owner, name):
        import streamlit

        raise StreamlitChanged(
            f"Streamlit {streamlit.__version__} has no {getattr(owner, '__name__', owner)}.{name}, which ui/entry.py "
            f"replaces to {what}. Re-check ui/entry.py against this Streamlit version (the app was written for 1.67)."
        )


_streamlit_cleanup = None


def _keep_keras_state_between_runs() -> None:
    """Stop Streamlit from calling `keras.backend.clear_session()` after every script run.

    Streamlit does that to protect scripts that rebuild models on each run. Here models are built
    once and cached, so the clearing only costs: about 180 ms per rerun, TensorFlow's compiled
    kernels thrown away (the next prediction takes ~50 ms instead of ~1 ms), and global Keras
    state reset under training threads. Matplotlib figures are still closed as before.
    """
    from streamlit.runtime.scriptrunner import script_runner

    _private(script_runner, "_clean_problem_modules", "keep Keras' state between script runs")
    global _streamlit_cleanup
    if _streamlit_cleanup is None:
        # Kept so a test can show what the replacement prevents.
        _streamlit_cleanup = script_runner._clean_problem_modules

    def close_pyplot_figures() -> None:
        pyplot = sys.modules.get("matplotlib.pyplot")
        if pyplot is not None:
            pyplot.close("all")

    script_runner._clean_problem_modules = close_pyplot_figures


_keep_keras_state_between_runs()

# How long a thread may hold the interpreter while another waits for it (CPython's default: 5 ms).
# The event loop that sends every session's answers gives the interpreter up at each socket write
# and then waits for it: behind a page run computing, each of a Train page's 140 messages waited up
# to 5 ms. At 1 ms, strokes during a workshop's drain came back in p95 351 ms instead of 526 ms (one
# comparison, bench.redis_workers --drawing, with uvloop); 0.2-0.5 ms cost more CPU than they saved.
SWITCH_INTERVAL_S = 0.001
sys.setswitchinterval(SWITCH_INTERVAL_S)


def refuse_bad_settings() -> None:
    """Serve nothing while the server's settings cannot be read: say which variable, never a traceback.

    `make run` checks them before Streamlit starts (`python -m cnn_core.service.settings`); this
    covers a server started another way.
    """
    from ui import loaders

    try:
        loaders.settings()
    except ValueError as error:
        logger.error("Unusable settings: %s", error)
        st.error(f"This server is misconfigured: {error} Whoever runs it must fix that and restart it.",
                 icon=":material/settings_alert:")
        st.stop()


def ensure_navigation() -> None:
    from streamlit.runtime.pages_manager import PagesManager

    _private(PagesManager, "uses_pages_directory", "run every page inside app.py's navigation")
    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        runpy.run_path(str(APP), run_name="__main__")
        st.stop()


def start_page(*, live_view: bool = False) -> None:
    """What every page does first: run inside the navigation, keep `?ws=` in the address, catch up with
    the workspace, and show (and keep alive) a running job.

    `live_view`: the page itself shows the session's running job live (Train), so the sidebar's
    indicator, a second fragment refreshing the same run every 2 s, is left out.
    """
    from ui import loaders, workspace

    ensure_navigation()
    loaders.collect_garbage_now_and_then()
    workspace.follow_address()
    layout.apply()
    training_status.show(sidebar=not live_view)
