"""The package catalogue `vkp/index.json` and where packages are published.

Without AWS, packages go into `<data>/vkp/publish/vkp/`, which `nexus vkp serve` shares on the
LAN (or which is copied to a USB stick). With S3, the same files and index go to `vkp/` in the
bucket through the S3 outbox, and CloudFront is invalidated. The newest VKP_KEEP_VERSIONS
versions of each package are kept.
"""

from __future__ import annotations

import json
import shutil

from engine.ingest.layout import sha256_file
from engine.settings import Settings
from engine.vkp.build import Built


class CataloguePublisher:
    def __init__(self, settings: Settings, aws_publisher=None):
        self.settings = settings
        self.aws = aws_publisher  # engine.aws.publish.Publisher when S3 is configured
        self.folder = settings.vkp_dir / "publish" / "vkp"

    def index(self) -> dict:
        path = self.folder / "index.json"
        return json.loads(path.read_text()) if path.exists() else {"format": 1, "packages": {}}

    def publish(self, built: Built, subject: str, grade: str) -> dict:
        """Add a build to the catalogue, prune old versions, and publish files and index."""
        self.folder.mkdir(parents=True, exist_ok=True)
        source = self.settings.vkp_dir / "built"
        entry = {"file": built.file, "size": built.size, "sha256": sha256_file(source / built.file)}
        shutil.copy2(source / built.file, self.folder / built.file)
        index = self.index()
        package = index["packages"].setdefault(
            built.package, {"subject": subject, "grade": grade, "versions": [], "deltas": []}
        )
        package["versions"].append({"version": built.version} | entry)
        if built.delta_file:
            shutil.copy2(source / built.delta_file, self.folder / built.delta_file)
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
        tmp = self.folder / "index.json.tmp"
        tmp.write_text(json.dumps(index, indent=1, sort_keys=True))
        tmp.replace(self.folder / "index.json")
        result = {"index": str(self.folder / "index.json"), "s3": None}
        if self.aws is not None and self.aws.s3 is not None:
            for name in [built.file, built.delta_file, "index.json"]:
                if name:
                    self.aws.outbox.stage_file(f"vkp/{name}", self.folder / name)
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
            (self.folder / entry["file"]).unlink(missing_ok=True)
