"""The Streamlit admin panel (see issue: admin panel)."""
