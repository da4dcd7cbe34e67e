"""The signed package catalogue `vkp/index.json` and where packages are published.

Packages and the catalogue always go into the publish store, a `FolderStore` on
`<data>/vkp/publish/` (keys `vkp/<file>`), which `nexus vkp serve` shares on the LAN (or which is
copied to a USB stick). With S3, the same files go under the same keys into the bucket through
the S3 outbox, and CloudFront is invalidated. The newest VKP_KEEP_VERSIONS
versions of each package are kept. Each publish signs the catalogue anew with a higher
version (see `catalogue.py`); packages are copied before the catalogue that names them.

The publish folder is not trusted, even here: it may have come back from a restored backup,
or be a shared folder someone else can write. Whatever the key signs next is built from
what this installation's own key already signed, nothing else:

- the previous `index.json` is reused only if it verifies with this installation's public
  key; otherwise it is ignored (with a warning) and the package entries are rebuilt from the
  `.vkp` files in the folder whose signatures verify with that key;
- its version is reused only if it is at most `MAX_AHEAD_S` (a day) ahead of the clock. A
  version far in the future (2**53 - 1, say) would otherwise be signed, recorded by every
  school, and leave no higher version to publish: the schools' updates would freeze.

After a change of signing key the old catalogue no longer verifies, so the first publish with
the new key lists only packages that key signed: build each package again to list it.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta

from engine.blobs import BadKey, BlobError, BlobNotFound, FolderStore
from engine.names import BadName
from engine.settings import Settings
from engine.util import sha256_file
from engine.vkp.build import Built
from engine.vkp.catalogue import CatalogueError, sign_catalogue, verify_catalogue
from engine.vkp.manifest import PackageError, package_file, package_key, version_key
from engine.vkp.transfer import MAX_CATALOGUE_BYTES, package_object_key

log = logging.getLogger(__name__)

MAX_AHEAD_S = 24 * 3600  # a previous version further ahead of the clock is not continued
INDEX = "vkp/index.json"


class CataloguePublisher:
    def __init__(
        self,
        settings: Settings,
        aws_publisher=None,
        sign=None,
        public_key=None,
        store: FolderStore | None = None,
    ):
        """`sign(bytes) -> bytes` and `public_key` default to the key in the settings (loaded
        when needed); `sign` may be an Ed25519 private key's `sign`, whose key is then used.
        `aws_publisher` (engine.publish.exports.Publisher) sends the files on to its remote store
        when that is configured; `store` is the publish folder (`Engine.stores.publish`)."""
        self.settings = settings
        self.aws = aws_publisher
        self.local = store or FolderStore(settings.vkp_dir / "publish")
        self.folder = self.local.root / "vkp"
        self._sign = sign
        owner = getattr(sign, "__self__", None)
        if public_key is None and hasattr(owner, "public_key"):
            public_key = owner.public_key()
        if sign is not None and public_key is None:
            raise ValueError("give the public key that goes with `sign`")
        self._public_key = public_key

    def _key(self):
        if self._public_key is None:
            from engine.vkp.keys import private_key

            self._public_key = private_key(self.settings).public_key()
        return self._public_key

    def payload(self) -> dict:
        """`{"version", "packages"}` of the published catalogue, as far as this installation's
        key signed it (see the module docstring); raises FileNotFoundError without a key."""
        key = self._key()
        path = self.local.url(INDEX)
        try:
            catalogue = verify_catalogue(
                self.local.get_bytes(INDEX, max_bytes=MAX_CATALOGUE_BYTES), [key]
            )
        except BlobNotFound:
            pass
        except (BlobError, CatalogueError) as exc:
            log.warning(
                "%s is not a catalogue this installation signed (%s): ignored; the next one"
                " lists the packages in %s that carry this key's signature",
                path,
                exc,
                self.folder,
            )
        else:
            version = catalogue.version
            if version > time.time() + MAX_AHEAD_S:
                log.warning(
                    "%s has version %d, far ahead of the clock: not continued", path, version
                )
                version = 0
            return {"version": version, "packages": catalogue.packages}
        return {"version": 0, "packages": self._signed_packages_in_folder(key)}

    def index(self) -> dict:
        """`{"packages": {...}}` as published (for listings); empty without a signing key."""
        try:
            return {"packages": self.payload()["packages"]}
        except (FileNotFoundError, ValueError) as exc:
            log.warning("the published catalogue cannot be checked: %s", exc)
            return {"packages": {}}

    def publish(self, built: Built, subject: str, grade: str) -> dict:
        """Add a build to the catalogue, prune old versions, and publish files and index."""
        from engine.vkp.keys import private_key

        if self._sign is None:
            key = private_key(self.settings)
            self._sign, self._public_key = key.sign, key.public_key()
        name = package_key(grade, subject)
        previous = self.payload()  # before this build's files join the folder
        source = self.settings.vkp_dir / "built"
        entry = {"file": built.file, "size": built.size, "sha256": sha256_file(source / built.file)}
        self.local.put_file(package_object_key(built.file), source / built.file, entry["sha256"])
        packages = previous["packages"]
        package = packages.setdefault(
            name, {"subject": subject, "grade": grade, "versions": [], "deltas": []}
        )
        package["versions"] = [v for v in package["versions"] if v["version"] != built.version]
        package["versions"].append({"version": built.version} | entry)
        if built.delta_file:
            self.local.put_file(package_object_key(built.delta_file), source / built.delta_file)
            package["deltas"] = [d for d in package["deltas"] if d["to"] != built.version]
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
        now = datetime.now(UTC)
        version = max(previous["version"] + 1, int(now.timestamp()))
        days = self.settings.vkp_catalogue_expires_days
        expires = (now + timedelta(days=days)).isoformat(timespec="seconds") if days else None
        signed = sign_catalogue(
            packages, version, now.isoformat(timespec="seconds"), self._sign, expires
        )
        self.local.put_bytes(INDEX, signed)  # atomically replaced: a reader never sees half
        result = {"index": self.local.url(INDEX), "version": version, "s3": None}
        if self.aws is not None and self.aws.remote.configured:
            for file in [built.file, built.delta_file, "index.json"]:  # catalogue last
                if file:
                    key = package_object_key(file)
                    self.aws.outbox.stage_file(key, self.local.path(key))
            result["s3"] = self.aws.deliver().to_dict()
        return result

    def _signed_packages_in_folder(self, key) -> dict:
        """Catalogue entries for the folder's packages that verify with `key` and whose file
        names match their signed manifests; anything else is left out with a warning."""
        from engine.vkp.package import read_package

        packages: dict[str, dict] = {}
        keys = self.local.list_keys("vkp/")
        for file_key in (k for k in keys if k.endswith(".vkp") and k.count("/") == 1):
            try:
                path = self.local.path(file_key)  # a regular file inside the folder (listed)
                if path.is_symlink() or not path.is_file():
                    raise PackageError("not a plain file")
                m = read_package(path, [key], load=False).manifest
                delta = m["kind"] == "delta"
                expected = package_file(
                    m["grade"], m["subject"], m["version"], m["base_version"] if delta else None
                )
                if path.name != expected:
                    raise PackageError(f"its signed manifest makes it {expected}")
                entry = {"file": path.name, "size": path.stat().st_size}
                entry["sha256"] = sha256_file(path)
            except (PackageError, BadName, BadKey, OSError) as exc:
                log.warning("%s left out of the catalogue: %s", file_key, exc)
                continue
            package = packages.setdefault(
                package_key(m["grade"], m["subject"]),
                {"subject": m["subject"], "grade": m["grade"], "versions": [], "deltas": []},
            )
            if delta:
                package["deltas"].append({"from": m["base_version"], "to": m["version"]} | entry)
            else:
                package["versions"].append({"version": m["version"]} | entry)
        for name, package in list(packages.items()):
            if not package["versions"]:  # deltas alone cannot be installed
                del packages[name]
                continue
            package["versions"].sort(key=lambda v: version_key(v["version"]))
            package["deltas"].sort(key=lambda d: (version_key(d["to"]), version_key(d["from"])))
            package["full"] = package["versions"][-1]
            package["latest"] = package["full"]["version"]
        return packages

    def _prune(self, package: dict) -> None:
        keep = self.settings.vkp_keep_versions
        dropped = package["versions"][:-keep]
        package["versions"] = package["versions"][-keep:]
        kept = {v["version"] for v in package["versions"]}
        old_deltas = [d for d in package["deltas"] if d["to"] not in kept or d["from"] not in kept]
        package["deltas"] = [d for d in package["deltas"] if d not in old_deltas]

        for entry in dropped + old_deltas:
            self.local.delete(package_object_key(entry["file"]))
