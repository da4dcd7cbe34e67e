"""Shared panel helpers: the login gate, the session, page set-up and shared widgets."""

from __future__ import annotations

import functools
import json
import math
import time
from collections.abc import Callable

import streamlit as st

from engine.auth import login_throttle, stored_hash, throttle_client, upgrade_hash
from ui.i18n import t
from ui.resources import settings


def _timeout_s() -> float:
    return settings().admin_session_timeout_min * 60


def session_alive() -> bool:
    """True while an admin is logged in and the session has not timed out (touches nothing)."""
    state = st.session_state
    return bool(state.get("authenticated")) and time.time() - state.get("last_seen", 0) < (
        _timeout_s()
    )


def client_id() -> str:
    """Who is trying to log in: the throttle bucket of this browser session's client.

    Streamlit runs on uvicorn, which replaces the peer address with X-Forwarded-For when the
    connection comes from an address in FORWARDED_ALLOW_IPS (loopback by default), so the
    address alone can be picked by the client. `nexus ui`/`up` start the panel with
    FORWARDED_ALLOW_IPS set to UI_TRUSTED_PROXIES only; and here, whenever no proxy is trusted,
    every client that sends a forwarding header shares one bucket, however the panel was
    started. See `engine.auth.throttle.throttle_client` for the rules.
    """
    try:
        address = st.context.ip_address
        headers = {key.lower(): value for key, value in st.context.headers.items()}
    except Exception:  # no script-run context (bare mode): one bucket for everyone
        address, headers = None, {}
    return throttle_client(address, headers, settings().ui_trusted_proxies)


def login_gate() -> bool:
    """True when an admin is logged in; otherwise draw the login (or set-up) form."""
    stored = stored_hash(settings())
    state = st.session_state
    if session_alive():
        state["last_seen"] = time.time()
        return True
    st.title(t("app.name"))
    if state.get("authenticated"):
        st.info(t("login.timed_out"))
        state["authenticated"] = False
    if stored is None:
        st.warning(t("login.no_password"))
        return False
    with st.form("login"):
        password = st.text_input(t("login.password"), type="password")
        submitted = st.form_submit_button(t("login.submit"))
    if submitted:
        result = login_throttle(settings()).login(client_id(), password, stored)
        if result.ok:
            upgrade_hash(settings(), password, stored)
            state["authenticated"], state["last_seen"] = True, time.time()
            st.rerun()
        if result.malformed:
            st.error(t("login.malformed", why=result.malformed))
        elif result.wait_s > 0:
            st.error(t("login.too_many", seconds=math.ceil(result.wait_s)))
        else:
            st.error(t("login.wrong"))
    return False


def session_fragment(run_every: str | float) -> Callable[[Callable[[], None]], Callable[[], None]]:
    """`st.fragment(run_every=...)` that shows nothing once the session is over.

    A self-refreshing fragment reruns without the page (and so without the login gate); this
    checks the session on every run, draws nothing after logout or timeout, and asks for a
    full rerun so the login form appears. Its runs do not count as activity: an open page
    does not keep a session alive.
    """

    def decorate(body: Callable[[], None]) -> Callable[[], None]:
        @st.fragment(run_every=run_every)
        @functools.wraps(body)
        def guarded() -> None:
            state = st.session_state
            if not session_alive():
                # once: redraw the whole app, which now shows the login form
                if state.get("authenticated") is not None and not state.get("_sent_to_login"):
                    state["_sent_to_login"] = True
                    st.rerun(scope="app")
                return
            state["_sent_to_login"] = False
            body()

        return guarded

    return decorate


def logout_button() -> None:
    if st.sidebar.button(t("login.logout")):
        st.session_state["authenticated"] = False
        st.rerun()


# tone -> (Streamlit colour, Streamlit's own Material icon: no colour-emoji font needed)
_TONES = {
    "ok": ("green", ":material/check_circle:"),
    "warn": ("orange", ":material/warning:"),
    "bad": ("red", ":material/error:"),
    "off": ("gray", ":material/radio_button_unchecked:"),
}


def status_metric(column, label: str, tone: str, value: str, detail: str) -> None:
    """A status as a metric: a short coloured value with an icon that fits a narrow column,
    and the full sentence in the help tooltip."""
    colour, icon = _TONES[tone]
    column.metric(label, f":{colour}[{icon} {value}]", help=detail)


def uploader_in_language(button: str) -> None:
    """Streamlit's file uploader writes "Upload" and "200MB per file • PDF" in English, with
    no parameter to change them: hide the size line (the limit is in the label) and draw
    `button` in place of the button's text."""
    st.html(
        "<style>"
        '[data-testid="stFileUploaderDropzoneInstructions"] {display: none;}'
        '[data-testid="stFileUploaderDropzone"] button > * {display: none;}'
        '[data-testid="stFileUploaderDropzone"] button::after'
        f" {{content: {json.dumps(button)};}}"
        "</style>"
    )


def header(title: str, caption: str = "") -> None:
    st.title(title)
    if caption:
        st.caption(caption)
