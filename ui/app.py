"""The admin panel's router: the login gate, then navigation. Pages live in their own modules."""

import streamlit as st

from ui.common import login_gate, logout_button

st.set_page_config(page_title="OpenClass Nexus", page_icon="📚", layout="wide")

if login_gate():
    logout_button()
    st.navigation(
        [
            st.Page("overview.py", title="Overview", default=True),
            st.Page("jobs.py", title="Jobs"),
            st.Page("costs.py", title="Costs"),
            st.Page("packages.py", title="Packages"),
            st.Page("telemetry.py", title="Telemetry"),
            st.Page("upload.py", title="Upload"),
            st.Page("search.py", title="Search"),
        ]
    ).run()
