"""A minimal Streamlit client that speaks the app's websocket protocol, for load tests.

A headless browser per simulated visitor spends most of the machine's CPU on rendering, so on a
small server the load generator competes with the server it measures. This client sends exactly
what a browser tab sends (a `rerun_script` message with the page and widget states) and reads the
replies, at the cost of a few protobuf messages. Widget ids are learned from the server's replies,
so the client stays in step with the app's keys; a widget the app gave no key (a form's fields and
its submit button) is found by its label instead. The address's query string travels with every
run and follows the app's own changes to it (`st.query_params`), as the browser's address bar does.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field

# A widget id is "$$ID-<32 hex digits>-<the key the app gave the widget>".
WIDGET_ID = re.compile(rb"\$\$ID-[0-9a-f]{32}-[A-Za-z0-9_\-]+")


@dataclass
class RunResult:
    """What one script run sent back."""

    milliseconds: float
    payload: bytes
    # Each `st.dataframe` the run sent, in page order, as Arrow IPC bytes.
    tables: list[bytes] = field(default_factory=list)

    def shows(self, text: str) -> bool:
        return text.encode() in self.payload

    def table(self, index: int = 0) -> list[dict]:
        """The rows of the run's `index`-th dataframe, as the browser would show them."""
        import pyarrow as pa

        return pa.ipc.open_stream(self.tables[index]).read_all().to_pylist()

    def sentences(self) -> list[str]:
        """The readable text the run sent (labels, messages), for error reports."""
        return [match.decode(errors="replace") for match in re.findall(rb"[A-Z][^\x00-\x1f\"]{20,}", self.payload)]


class StreamlitClient:
    """One browser tab's session: connect, open a page, set widgets, rerun, and time each run."""

    def __init__(self, url: str):
        self.url = url.replace("http://", "ws://", 1).rstrip("/") + "/_stcore/stream"
        self.widget_ids: dict[str, str] = {}
        self.page_hashes: dict[str, str] = {}
        self.page = ""
        self.query_string = ""
        # Label → id of every widget shown, keyed or not ("Join", "Your nickname (shown to the class)").
        self.labels: dict[str, str] = {}
        # The fragments the page asked to rerun on a timer (`st.fragment(run_every=...)`): id → seconds.
        self.fragments: dict[str, float] = {}
        self._state: dict[str, tuple[str, object]] = {}
        self._socket = None

    async def __aenter__(self) -> StreamlitClient:
        import websockets

        self._socket = await websockets.connect(self.url, max_size=None, open_timeout=60)
        return self

    async def __aexit__(self, *exc) -> None:
        await self._socket.close()

    def widget(self, key: str) -> str:
        """The full id of the widget the app created with `key` (or, failing that, labelled `key`)."""
        if key in self.widget_ids:
            return self.widget_ids[key]
        if key in self.labels:
            return self.labels[key]
        raise ValueError(f"The app has not shown a widget with key or label {key!r}; "
                         f"known keys: {sorted(self.widget_ids)}, labels: {sorted(self.labels)}.")

    def set(self, key: str, kind: str, value) -> None:
        """Set a widget's value for every following run, as the browser keeps it (kind: a WidgetState field)."""
        self._state[self.widget(key)] = (kind, value)

    def fill(self, key: str, text: str) -> None:
        """Type into a text input (by key or label): its value goes with the next run, as on Enter or submit."""
        self.set(key, "string_value", text)

    async def click(self, key: str, *, timeout_s: float = 120) -> RunResult:
        """Press a button or a form's submit button (by key or label) and wait for the run it starts."""
        return await self.rerun(triggers=(key,), timeout_s=timeout_s)

    async def open(self, page: str, query: str | None = None, timeout_s: float = 120) -> RunResult:
        """Open a page by its URL path (and query string, e.g. "join=ABC123"), as following a link does."""
        self.page = page
        if query is not None:
            self.query_string = query
        return await self.rerun(timeout_s=timeout_s)

    async def rerun(self, *, triggers: tuple[str, ...] = (), fragment_id: str = "",
                    timeout_s: float = 120) -> RunResult:
        """Rerun the page (or one fragment) with the current widget states and button clicks in `triggers`."""
        from streamlit.proto.BackMsg_pb2 import BackMsg

        message = BackMsg()
        request = message.rerun_script
        request.page_name = self.page
        request.page_script_hash = self.page_hashes.get(self.page, "")
        request.query_string = self.query_string
        request.fragment_id = fragment_id
        request.is_auto_rerun = bool(fragment_id)
        for widget_id, (kind, value) in self._state.items():
            state = request.widget_states.widgets.add()
            state.id = widget_id
            setattr(state, kind, value)
        for key in triggers:
            state = request.widget_states.widgets.add()
            state.id = self.widget(key)
            state.trigger_value = True
        started = time.perf_counter()
        await self._socket.send(message.SerializeToString())
        return await asyncio.wait_for(self._read_run(started), timeout_s)

    async def _read_run(self, started: float) -> RunResult:
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        payload = bytearray()
        tables: list[bytes] = []
        while True:
            raw = await self._socket.recv()
            message = ForwardMsg()
            message.ParseFromString(raw)
            kind = message.WhichOneof("type")
            if kind == "new_session" and not message.metadata.run.fragment_ids:
                # A full run starts: the browser forgets the old timers and takes the ones this run sets.
                self.fragments.clear()
            elif kind == "navigation":
                for page in message.navigation.app_pages:
                    self.page_hashes[page.url_pathname] = page.page_script_hash
            elif kind == "page_info_changed":
                self.query_string = message.page_info_changed.query_string
            elif kind == "delta":
                payload += raw
                for widget_id in WIDGET_ID.findall(raw):
                    text = widget_id.decode()
                    self.widget_ids[text[len("$$ID-") + 33:]] = text
                self._learn_label(message)
                if message.delta.new_element.WhichOneof("type") == "dataframe":
                    tables.append(message.delta.new_element.dataframe.arrow_data.data)
            elif kind == "auto_rerun":
                self.fragments[message.auto_rerun.fragment_id] = message.auto_rerun.interval
            elif kind == "stop_auto_rerun":
                for fragment_id in message.stop_auto_rerun.fragment_ids:
                    self.fragments.pop(fragment_id, None)
            elif kind == "script_finished" and message.script_finished != ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                # A run that asked for a rerun (st.rerun) is not the end: the answer is the run that follows.
                return RunResult((time.perf_counter() - started) * 1000, bytes(payload), tables)

    def _learn_label(self, message) -> None:
        if message.delta.WhichOneof("type") != "new_element":
            return
        element = message.delta.new_element
        kind = element.WhichOneof("type")
        widget = getattr(element, kind) if kind else None
        widget_id = getattr(widget, "id", "")
        label = getattr(widget, "label", "")
        if isinstance(widget_id, str) and widget_id and isinstance(label, str) and label:
            self.labels[label] = widget_id
