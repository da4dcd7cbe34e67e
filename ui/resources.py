"""The engine the panel runs on: one per server process, so clients, the model and databases
stay warm between reruns. Every page and the message catalogue ask here."""

from __future__ import annotations

import streamlit as st

from engine.app import Engine, build_engine
from engine.settings import Settings


@st.cache_resource
def get_engine() -> Engine:
    """One engine per panel process: clients, the model and databases stay warm."""
    return build_engine(Settings())


def settings() -> Settings:
    return get_engine().settings
