"""`nexus vkp pull`: read the catalogue, take a delta when one fits, else the full package."""

from __future__ import annotations

import logging
from collections.abc import Callable

from engine.settings import Settings
from engine.vkp.install import PackageInstaller
from engine.vkp.package import PackageError
from engine.vkp.transfer import Source, TransferError

log = logging.getLogger(__name__)


def source_for(settings: Settings, location: str) -> Source:
    """A Source for a URL, a folder, or "cloudfront" (signed URLs from the settings)."""
    if location == "cloudfront":
        from engine.app import build_cloudfront

        cloudfront = build_cloudfront(settings)
        if cloudfront is None:
            raise TransferError("VKP source 'cloudfront' needs CLOUDFRONT_DISTRIBUTION_ID and URL")
        return Source(settings.cloudfront_distribution_url, sign=cloudfront.signed_url)
    if not location:
        raise TransferError("no source: pass --source URL|FOLDER|cloudfront or set VKP_SOURCE")
    return Source(location)


def pull(
    settings: Settings,
    installer: PackageInstaller,
    source: Source,
    only: set[str] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> list[dict]:
    """Bring every package in the catalogue (or those in `only`) up to its latest version."""
    index = source.read_index()
    installed = installer.installed()
    results = []
    downloads = settings.vkp_dir / "downloads"
    for name, package in sorted(index["packages"].items()):
        if only and name not in only:
            continue
        current = installed.get(name)
        have = current.version if current else None
        if have == package["latest"]:
            results.append({"package": name, "version": have, "action": "up to date"})
            continue
        delta = next(
            (
                d
                for d in package["deltas"]
                if have and d["from"] == have and d["to"] == package["latest"]
            ),
            None,
        )
        plans = ([("delta", delta)] if delta else []) + [("full", package["full"])]
        for via, entry in plans:
            report = (
                (lambda done, total, file=entry["file"]: progress(file, done, total))
                if progress
                else None
            )
            try:
                path = source.fetch(entry, downloads, report)
                record = installer.install(path)
            except (TransferError, PackageError) as exc:
                log.warning("%s via %s failed: %s", name, via, exc)
                results.append({"package": name, "action": "failed", "via": via, "error": str(exc)})
                continue
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
