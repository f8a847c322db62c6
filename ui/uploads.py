"""Upload limits as they are really enforced.

A file uploader's `max_upload_size` is checked by the browser only; the server refuses any upload
over `server.maxUploadSize` (20 MB in .streamlit/config.toml) whatever the widget says. A limit
named on the page above that would be a promise the server breaks with a bare "upload failed".
"""

from __future__ import annotations

import streamlit as st


def cap_mb(wanted_mb: float) -> int:
    """`wanted_mb` (an app limit) lowered to the server's own cap, in whole megabytes (at least 1)."""
    return max(1, int(min(wanted_mb, st.get_option("server.maxUploadSize"))))


def cap_bytes(wanted_bytes: int) -> int:
    """`wanted_bytes` lowered to the server's own cap."""
    return min(int(wanted_bytes), int(st.get_option("server.maxUploadSize")) * 1024 * 1024)
