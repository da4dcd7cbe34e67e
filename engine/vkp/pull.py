"""`nexus vkp pull`: read the signed catalogue, take a delta when one fits, else the full package.

Order of trust: the catalogue's signature and version are checked first
(`catalogue.open_catalogue`, `SeenCatalogues`); each file is then fetched within the size the
catalogue declares and checked against its SHA-256 (`transfer.Source.fetch`); finally the
package's own signature is checked and its grade, subject, version and kind must be the ones
the catalogue entry promised (`PackageInstaller.install(expected=...)`). A catalogue whose
latest version is older than the installed one is not followed unless `allow_downgrade`.

A download stopped for being too slow keeps its `.part` so the next pull resumes it
(`transfer.py`); partial files of packages the catalogue no longer lists are deleted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from engine.settings import Settings
from engine.vkp.catalogue import Catalogue, SeenCatalogues, open_catalogue
from engine.vkp.install import PackageInstaller
from engine.vkp.manifest import version_key
from engine.vkp.package import PackageError
from engine.vkp.transfer import Source, TransferError

log = logging.getLogger(__name__)


def read_catalogue(settings: Settings, source: Source, trusted_keys: list) -> Catalogue:
    """The source's catalogue, verified and not older than the newest one seen here.

    Raises:
        TransferError: unreachable, or (`CatalogueError`) unsigned, tampered or replayed.
    """
    catalogue = open_catalogue(source.read_index(), trusted_keys)
    SeenCatalogues(settings.vkp_dir / "catalogue_seen.json").accept(catalogue)
    return catalogue


def pull(
    settings: Settings,
    installer: PackageInstaller,
    source: Source,
    only: set[str] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    allow_downgrade: bool = False,
) -> list[dict]:
    """Bring every package in the catalogue (or those named in `only`, `<grade>__<subject>`)
    to its latest version."""
    catalogue = read_catalogue(settings, source, installer.trusted_keys)
    installed = installer.installed()
    results = []
    downloads = settings.vkp_dir / "downloads"
    _drop_stale_parts(downloads, catalogue)
    for name, package in sorted(catalogue.packages.items()):
        if only and name not in only:
            continue
        current = installed.get(name)
        have, latest = (current.version if current else None), package["latest"]
        if have == latest:
            results.append({"package": name, "version": have, "action": "up to date"})
            continue
        if have and version_key(latest) < version_key(have) and not allow_downgrade:
            results.append(
                {
                    "package": name,
                    "version": have,
                    "action": "kept",
                    "error": f"the catalogue's latest v{latest} is older than the installed"
                    f" v{have}; pull --allow-downgrade to install it",
                }
            )
            continue
        results += _update(
            package, name, have, installer, source, downloads, progress, allow_downgrade
        )
    return results


def _drop_stale_parts(downloads: Path, catalogue: Catalogue) -> None:
    """Delete partial downloads (kept when a download was too slow) of files that the
    catalogue no longer lists: they would never be resumed."""
    listed = {
        f"{entry['file']}.part"
        for package in catalogue.packages.values()
        for entry in [package["full"], *package["versions"], *package["deltas"]]
    }
    for part in downloads.glob("*.part") if downloads.is_dir() else []:
        if part.name not in listed:
            part.unlink(missing_ok=True)


def _update(package, name, have, installer, source, downloads, progress, allow_downgrade):
    """Try the delta (if one fits), then the full package; one result per try."""
    latest = package["latest"]
    promised = {"grade": package["grade"], "subject": package["subject"], "version": latest}
    delta = next(
        (d for d in package["deltas"] if have and d["from"] == have and d["to"] == latest), None
    )
    plans = [("delta", delta, {"kind": "delta", "base_version": have})] if delta else []
    plans.append(("full", package["full"], {"kind": "full"}))
    results = []
    for via, entry, kind in plans:
        report = (
            (lambda done, total, file=entry["file"]: progress(file, done, total))
            if progress
            else None
        )
        path = None
        try:
            path = source.fetch(entry, downloads, report)
            record = installer.install(path, promised | kind, allow_downgrade)
        except (TransferError, PackageError) as exc:
            log.warning("%s via %s failed: %s", name, via, exc)
            results.append({"package": name, "action": "failed", "via": via, "error": str(exc)})
            continue
        finally:
            if path is not None:
                path.unlink(missing_ok=True)
        results.append(
            {
                "package": name,
                "action": "installed",
                "via": via,
                "from": have,
                "version": record.version,
                "bytes": entry["size"],
            }
        )
        break
    return results
