"""The admin panel's router: the login gate, then navigation. Pages live in their own modules.

numpy and pandas are imported here, first, on purpose: with Streamlit's fast reruns a page can
start while the previous run's thread is still importing, and two threads importing numpy at
once can leave it half-initialised ("cannot import name 'NDArray' from partially initialized
module", seen once in Chromium when a page was left mid-load). Imported by the first run (the
login form, where nothing else runs), that cannot happen.
"""

import numpy  # noqa: F401  (see the docstring)
import pandas  # noqa: F401
import streamlit as st

from ui.common import login_gate, logout_button
from ui.i18n import t

st.set_page_config(page_title=t("app.name"), page_icon="📚", layout="wide")

if login_gate():
    logout_button()
    st.navigation(
        [
            st.Page("overview.py", title=t("nav.overview"), default=True),
            st.Page("jobs.py", title=t("nav.jobs")),
            st.Page("costs.py", title=t("nav.costs")),
            st.Page("packages.py", title=t("nav.packages")),
            st.Page("telemetry.py", title=t("nav.telemetry")),
            st.Page("upload.py", title=t("nav.upload")),
            st.Page("search.py", title=t("nav.search")),
            st.Page("evaluate.py", title=t("nav.evaluate")),
        ]
    ).run()
