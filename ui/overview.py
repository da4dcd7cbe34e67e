"""Overview: the engine's state, each AWS service, storage."""

from __future__ import annotations

import streamlit as st

from engine.aws.control import status as aws_status
from engine.state import folder_mb, read_state
from ui.common import get_engine, header, settings


@st.cache_data(ttl=60, show_spinner="Checking AWS services…")
def _aws(_cache_key: str) -> dict:
    return aws_status(settings(), get_engine())


def render() -> None:
    header("Overview", "Is the engine watching, which model is it using, and can it reach AWS?")
    state = read_state(settings())
    left, middle, right = st.columns(3)
    if state["running"]:
        left.success(f"Engine running: watching {state['watching']}")
        middle.metric("Files waiting to settle", state.get("queue_length", 0))
        right.metric("Watch mode", state.get("mode", "?"))
        model = f"{state.get('embedding_strategy')} · {state.get('model')}"
        if state.get("device"):
            model += f" · {state['device']}"
        st.write(f"**Embeddings:** {model}")
        if state.get("fallen_back"):
            st.warning(f"Fell back to local embeddings: {state.get('fallback_reason')}")
    else:
        left.error("Engine not running")
        st.info("Start it on the server with `nexus up` (engine, Chroma and this panel).")
    st.metric("Storage used (data folder)", f"{folder_mb(settings().data_dir):.1f} MB")

    st.subheader("AWS services")
    if st.button("Check again"):
        _aws.clear()
    services = _aws(str(settings().data_dir))
    rows = []
    for name, info in services.items():
        if name == "embedding":
            continue
        if not info["configured"]:
            verdict = "⚪ not configured"
        elif info["reachable"]:
            verdict = f"🟢 reachable ({info['latency_ms']:.0f} ms)"
        else:
            verdict = "🔴 unreachable"
        rows.append({"service": name, "status": verdict, "detail": info.get("error", "")})
    st.dataframe(rows, hide_index=True, width="stretch")
    pending = services.get("s3", {}).get("outbox_pending", 0)
    if pending:
        st.warning(f"{pending} object(s) wait in the outbox for S3 (`nexus aws flush`).")


if __name__ == "__main__":  # run as a page by st.navigation
    render()
