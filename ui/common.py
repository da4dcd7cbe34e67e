"""Shared panel helpers: the engine (one per server process), the login gate, page set-up."""

from __future__ import annotations

import time

import streamlit as st

from engine.app import Engine, build_engine
from engine.auth import stored_hash, verify_password
from engine.settings import Settings


@st.cache_resource
def get_engine() -> Engine:
    """One engine per panel process: clients, the model and databases stay warm."""
    return build_engine(Settings())


def settings() -> Settings:
    return get_engine().settings


def login_gate() -> bool:
    """True when an admin is logged in; otherwise draw the login (or set-up) form."""
    stored = stored_hash(settings())
    timeout_s = settings().admin_session_timeout_min * 60
    now = time.time()
    state = st.session_state
    if state.get("authenticated") and now - state.get("last_seen", 0) < timeout_s:
        state["last_seen"] = now
        return True
    st.title("OpenClass Nexus")
    if state.get("authenticated"):
        st.info("Your session timed out. Please log in again.")
        state["authenticated"] = False
    if stored is None:
        st.warning(
            "No admin password is set yet. On the server, run `nexus admin set-password` "
            "(or set NEXUS_ADMIN_PASSWORD_HASH), then reload this page."
        )
        return False
    with st.form("login"):
        password = st.text_input("Admin password", type="password")
        submitted = st.form_submit_button("Log in")
    if submitted:
        if verify_password(password, stored):
            state["authenticated"], state["last_seen"] = True, now
            st.rerun()
        st.error("Wrong password.")
    return False


def logout_button() -> None:
    if st.sidebar.button("Log out"):
        st.session_state["authenticated"] = False
        st.rerun()


def header(title: str, caption: str = "") -> None:
    st.title(title)
    if caption:
        st.caption(caption)
