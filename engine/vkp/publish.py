"""The signed package catalogue `vkp/index.json` and where packages are published.

Without AWS, packages go into `<data>/vkp/publish/vkp/`, which `nexus vkp serve` shares on the
LAN (or which is copied to a USB stick). With S3, the same files and index go to `vkp/` in the
bucket through the S3 outbox, and CloudFront is invalidated. The newest VKP_KEEP_VERSIONS
versions of each package are kept. Each publish signs the catalogue anew with a higher
version (see `catalogue.py`); packages are copied before the catalogue that names them.
"""

from __future__ import annotations

import logging
import shutil
import time
from datetime import UTC, datetime

from engine.settings import Settings
from engine.util import sha256_file
from engine.vkp.build import Built
from engine.vkp.catalogue import FORMAT, sign_catalogue, unverified_payload
from engine.vkp.manifest import package_key
from engine.vkp.transfer import plain_file_name

log = logging.getLogger(__name__)


class CataloguePublisher:
    def __init__(self, settings: Settings, aws_publisher=None, sign=None):
        self.settings = settings
        self.aws = aws_publisher  # engine.aws.publish.Publisher when S3 is configured
        self.folder = settings.vkp_dir / "publish" / "vkp"
        self._sign = sign  # default: the signing key from the settings, loaded when publishing

    def payload(self) -> dict:
        """The published catalogue's content (this server's own file, read without a key)."""
        path = self.folder / "index.json"
        payload = unverified_payload(path.read_bytes()) if path.exists() else None
        if payload is None:
            if path.exists():
                log.warning("%s is not a format-%d catalogue; starting a new one", path, FORMAT)
            return {"version": 0, "packages": {}}
        return payload

    def index(self) -> dict:
        """`{"packages": {...}}` as published (for listings)."""
        return {"packages": self.payload()["packages"]}

    def publish(self, built: Built, subject: str, grade: str) -> dict:
        """Add a build to the catalogue, prune old versions, and publish files and index."""
        from engine.aws.publish import package_object_key
        from engine.vkp.keys import signer

        sign = self._sign or signer(self.settings)
        name = package_key(grade, subject)
        self.folder.mkdir(parents=True, exist_ok=True)
        source = self.settings.vkp_dir / "built"
        entry = {"file": built.file, "size": built.size, "sha256": sha256_file(source / built.file)}
        shutil.copy2(source / built.file, self.folder / plain_file_name(built.file))
        previous = self.payload()
        packages = previous["packages"]
        package = packages.setdefault(
            name, {"subject": subject, "grade": grade, "versions": [], "deltas": []}
        )
        package["versions"].append({"version": built.version} | entry)
        if built.delta_file:
            shutil.copy2(source / built.delta_file, self.folder / plain_file_name(built.delta_file))
            package["deltas"].append(
                {
                    "from": built.base_version,
                    "to": built.version,
                    "file": built.delta_file,
                    "size": built.delta_size,
                    "sha256": sha256_file(source / built.delta_file),
                }
            )
        package["latest"] = built.version
        package["full"] = package["versions"][-1]
        self._prune(package)
        version = max(previous["version"] + 1, int(time.time()))
        published_at = datetime.now(UTC).isoformat(timespec="seconds")
        tmp = self.folder / "index.json.tmp"
        tmp.write_bytes(sign_catalogue(packages, version, published_at, sign))
        tmp.replace(self.folder / "index.json")
        result = {"index": str(self.folder / "index.json"), "version": version, "s3": None}
        if self.aws is not None and self.aws.s3 is not None:
            for file in [built.file, built.delta_file, "index.json"]:  # catalogue last
                if file:
                    self.aws.outbox.stage_file(package_object_key(file), self.folder / file)
            result["s3"] = self.aws.deliver().to_dict()
        return result

    def _prune(self, package: dict) -> None:
        keep = self.settings.vkp_keep_versions
        dropped = package["versions"][:-keep]
        package["versions"] = package["versions"][-keep:]
        kept = {v["version"] for v in package["versions"]}
        old_deltas = [d for d in package["deltas"] if d["to"] not in kept or d["from"] not in kept]
        package["deltas"] = [d for d in package["deltas"] if d not in old_deltas]
        for entry in dropped + old_deltas:
            (self.folder / plain_file_name(entry["file"])).unlink(missing_ok=True)
