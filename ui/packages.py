"""Knowledge packages: versions built and published here; on a school server, the installed
version against the catalogue's latest, with update and rollback.

Packages are shown by their one name, `<grade>__<subject>` (`engine.vkp.manifest.package_key`).
The catalogue shown is the verified one (signature and version checked, as `pull` does).
"""

from __future__ import annotations

import streamlit as st

from engine.names import BadName
from engine.vkp.build import NothingToBuild
from engine.vkp.manifest import package_key
from engine.vkp.package import PackageError
from engine.vkp.pull import pull, read_catalogue
from engine.vkp.transfer import TransferError
from ui.common import header
from ui.i18n import num, t
from ui.resources import get_engine, settings


@st.cache_data(ttl=60, show_spinner=False)
def _remote_latest(source: str) -> dict[str, str]:
    keys = get_engine().installer.trusted_keys
    catalogue = read_catalogue(settings(), get_engine().vkp_source(source), keys)
    return {name: package["latest"] for name, package in catalogue.packages.items()}


def _history(package: str) -> list[dict]:
    from engine.vkp.build import PackageBuilder

    # read-only: no signing key is needed to list what was built
    return PackageBuilder(settings(), get_engine().store, "", None).history(package)


def _kib(size: int | None) -> str:
    """A package size in KiB, or a dash for one never built or published."""
    return num(size / 1024, 1) if size else "–"


def _built_here() -> None:
    engine = get_engine()
    catalogue = engine.package_catalogue
    published = catalogue.index()["packages"]
    subjects = sorted(
        {(c.subject, c.grade) for c in engine.store.collections() if not c.vkp_version},
        key=lambda sg: (sg[1], sg[0]),
    )
    st.subheader(t("packages.built_here"))
    if not subjects:
        st.info(t("packages.nothing_ingested"))
        return
    rows = []
    names = {}
    for subject, grade in subjects:
        try:
            name = package_key(grade, subject)
        except BadName as exc:  # ingested before names were checked: cannot be packaged
            st.warning(str(exc))
            continue
        names[name] = (subject, grade)
        history = _history(name)
        entry = published.get(name, {})
        full = entry.get("full", {})
        delta = (entry.get("deltas") or [{}])[-1]
        rows.append(
            {
                t("packages.col_package"): name,
                t("packages.col_built"): ", ".join(v["version"] for v in history) or "-",
                t("packages.col_published"): entry.get("latest", "-"),
                t("packages.col_full_kib"): _kib(full.get("size")),
                t("packages.col_delta_kib"): _kib(delta.get("size")),
            }
        )
    st.dataframe(rows, hide_index=True, width="stretch")
    if rows and all(row[t("packages.col_published")] == "-" for row in rows):
        st.info(t("packages.none_built"))
    choice = st.selectbox(t("packages.choose"), list(names))
    if st.button(t("packages.build"), disabled=not rows):
        subject, grade = names[choice]
        try:
            built = engine.builder.build(subject, grade)  # takes the ingestion lock
        except (NothingToBuild, FileNotFoundError, BadName) as exc:
            st.warning(str(exc))
            return
        catalogue.publish(built, subject, grade)
        st.success(t("packages.published", file=built.file, size=num(built.size / 1024, 1)))


def _installed_here() -> None:
    engine = get_engine()
    installed = engine.installer.installed()
    st.subheader(t("packages.installed_here"))
    source = settings().vkp_source
    latest: dict = {}
    if source:
        try:
            with st.spinner(t("packages.reading")):
                latest = _remote_latest(source)
        except TransferError as exc:
            st.warning(t("packages.unreachable", error=exc))
    else:
        st.caption(t("packages.set_source"))
    if not installed and not latest:
        st.info(t("packages.none_installed"))
        return
    names = sorted(set(installed) | set(latest))
    st.dataframe(
        [
            {
                t("packages.col_package"): n,
                t("packages.col_installed"): installed[n].version if n in installed else "-",
                t("packages.col_previous"): (installed[n].previous_version or "-")
                if n in installed
                else "-",
                t("packages.col_latest"): latest.get(n, "-"),
            }
            for n in names
        ],
        hide_index=True,
        width="stretch",
    )
    name = st.selectbox(t("packages.choose"), names, key="installed_package")
    left, right = st.columns(2)
    if left.button(t("packages.update"), disabled=not source):
        try:
            results = pull(settings(), engine.installer, get_engine().vkp_source(source), {name})
        except TransferError as exc:
            results = [{"package": name, "action": "failed", "error": str(exc)}]
        for result in results:
            error = f" ({result['error']})" if result.get("error") else ""
            message = t(
                "packages.result",
                package=result.get("package") or name,
                action=result["action"],
                version=result.get("version") or "",
                error=error,
            )
            (st.error if result["action"] == "failed" else st.success)(message)
    if right.button(t("packages.rollback"), disabled=name not in installed):
        row = installed[name]
        try:
            back = engine.installer.rollback(row.subject, row.grade)
        except PackageError as exc:
            st.error(str(exc))
        else:
            st.success(t("packages.rolled_back", package=name, version=back.version))


def render() -> None:
    header(t("nav.packages"), t("packages.caption"))
    _built_here()
    _installed_here()


if __name__ == "__main__":  # run as a page by st.navigation
    render()
