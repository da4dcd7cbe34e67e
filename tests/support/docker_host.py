"""A Docker engine, a base image and torch wheels for building the images on a test machine.

These machines reach PyPI and Debian's mirror but no container registry and not PyTorch's
index, so the image tests bring what a normal build machine would download:

- `ensure_daemon()` uses a running Docker engine, or starts `dockerd` as root with no bridge
  and no iptables (every build and container then uses the host's network, so all traffic
  stays on loopback). It stops the daemon again at the end if it started it.
- `base_image()` is `python:3.11-slim-bookworm` where that image is present, or else a local
  equivalent: Debian bookworm from `debootstrap` with Python 3.11, pip and venv, this machine's
  CA bundle and pip configuration. Its tag carries a digest of that recipe, so it is built once
  (about a minute) and reused by every later run.
- `staged_torch_wheels()` puts this machine's CPU torch wheel into `docker/wheels/` (git-ignored)
  for `--build-arg TORCH_SOURCE=wheels`, and removes it afterwards.

By hand, to build an image the way the tests do:
`python -m tests.support.docker_host base` prints the base image's tag.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WHEELS_DIR = REPO / "docker" / "wheels"
OFFICIAL_BASE = "python:3.11-slim-bookworm"
BASE_REPOSITORY = "nexus-test-base"
DEBOOTSTRAP = [
    "debootstrap",
    "--variant=minbase",
    "--include=python3,python3-pip,python3-venv,ca-certificates",
    "bookworm",
]
MIRROR = "http://deb.debian.org/debian"
HOST_FILES = ["/etc/ssl/certs/ca-certificates.crt", "/etc/pip.conf"]
# What the official Debian images set up for apt: no package caches left in image layers.
APT_DOCKER_CLEAN = (
    'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb '
    '/var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };\n'
    'APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb '
    '/var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };\n'
    'Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";\n'
)
RECIPE_VERSION = 1


class DockerUnavailable(Exception):
    """No Docker engine runs here and none could be started (the reason is the message)."""


def docker(
    *args: str, timeout: float = 120, check: bool = True, **kw
) -> subprocess.CompletedProcess:
    """Run the docker client; output captured as text."""
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=check, **kw
    )


def _daemon_answers() -> bool:
    try:
        return (
            docker("info", "--format", "{{.ServerVersion}}", timeout=20, check=False).returncode
            == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


class Daemon:
    """The Docker engine the tests use; `close()` stops it only if this process started it."""

    def __init__(self, proc: subprocess.Popen | None, log: Path | None):
        self.proc = proc
        self.log = log

    def close(self, timeout_s: float = 30) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


def ensure_daemon(log_dir: Path, timeout_s: float = 60) -> Daemon:
    """A Docker engine that answers, started here if need be.

    Raises:
        DockerUnavailable: no docker client, no dockerd, not root, or dockerd did not start.
    """
    if not shutil.which("docker"):
        raise DockerUnavailable("the docker client is not installed (apt-get install docker.io)")
    if _daemon_answers():
        return Daemon(None, None)
    dockerd = shutil.which("dockerd")
    if not dockerd:
        raise DockerUnavailable("dockerd is not installed (apt-get install docker.io)")
    if os.geteuid() != 0:
        raise DockerUnavailable("no Docker engine runs, and only root can start dockerd here")
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / "dockerd.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [dockerd, "--bridge=none", "--iptables=false"],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout_s
    while not _daemon_answers():
        if proc.poll() is not None or time.monotonic() > deadline:
            Daemon(proc, log).close()
            tail = log.read_text(errors="replace")[-1500:]
            raise DockerUnavailable(f"dockerd did not start within {timeout_s:g} s:\n{tail}")
        time.sleep(0.5)
    return Daemon(proc, log)


def image_exists(tag: str) -> bool:
    return docker("image", "inspect", tag, check=False, timeout=30).returncode == 0


def image_size(tag: str) -> int:
    """The image's size in bytes, as `docker images` counts it (all layers, uncompressed)."""
    return int(docker("image", "inspect", tag, "--format", "{{.Size}}").stdout)


def local_base_tag() -> str:
    """The tag of the local base image: a digest of everything that goes into it."""
    recipe = hashlib.sha256(json.dumps([RECIPE_VERSION, DEBOOTSTRAP, MIRROR]).encode())
    recipe.update(APT_DOCKER_CLEAN.encode())
    for name in HOST_FILES:
        recipe.update(Path(name).read_bytes() if Path(name).exists() else b"-")
    return f"{BASE_REPOSITORY}:bookworm-{recipe.hexdigest()[:12]}"


def base_image(workdir: Path, timeout_s: float = 900) -> str:
    """The base image for BASE_IMAGE: the official one where present, else the local one."""
    if image_exists(OFFICIAL_BASE):
        return OFFICIAL_BASE
    tag = local_base_tag()
    if not image_exists(tag):
        build_local_base(tag, workdir, timeout_s)
    return tag


def build_local_base(tag: str, workdir: Path, timeout_s: float) -> None:
    """Debian bookworm with Python 3.11 (pip, venv), imported as `tag`, like python:3.11-slim."""
    if not shutil.which("debootstrap"):
        raise DockerUnavailable("debootstrap is not installed (apt-get install debootstrap)")
    workdir.mkdir(parents=True, exist_ok=True)
    rootfs = Path(tempfile.mkdtemp(prefix="rootfs-", dir=workdir))
    try:
        subprocess.run(
            [*DEBOOTSTRAP, str(rootfs), MIRROR],
            check=True,
            capture_output=True,
            timeout=timeout_s,
        )
        (rootfs / "usr/bin/python").symlink_to("python3")
        (rootfs / "etc/apt/apt.conf.d/docker-clean").write_text(APT_DOCKER_CLEAN)
        for name in HOST_FILES:  # the machine's CA bundle trusts its way to PyPI
            if Path(name).exists():
                shutil.copyfile(name, rootfs / name.lstrip("/"))
        for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for item in (rootfs / cache).glob("*"):
                if item.is_file():
                    item.unlink()
        for item in (rootfs / "var/cache/apt").glob("*.bin"):
            item.unlink()
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        subprocess.run(
            ["docker", "import", "-c", "ENV PIP_BREAK_SYSTEM_PACKAGES=1", "-", tag],
            stdin=tar.stdout,
            check=True,
            capture_output=True,
            timeout=timeout_s,
        )
        tar.stdout.close()
        if tar.wait(timeout=60) != 0:
            raise RuntimeError("tar of the base image's root failed")
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)


def find_links() -> list[str]:
    """The folders pip looks in besides the index: PIP_FIND_LINKS and pip's configuration."""
    links = os.environ.get("PIP_FIND_LINKS", "").split()
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, timeout=60
    )
    for line in proc.stdout.splitlines():  # global.find-links='/opt/wheels'
        name, _, value = line.partition("=")
        if name.endswith(".find-links"):
            links += value.strip("'\"").split()
    return links


def torch_wheels() -> list[Path]:
    """This machine's torch CPU wheels for Python 3.11, from the folders pip looks in."""
    found = set()
    for folder in find_links():
        found |= set(Path(folder).glob("torch-*+cpu-cp311-*.whl"))
    return sorted(found)


@contextlib.contextmanager
def staged_torch_wheels() -> Iterator[bool]:
    """Torch wheels in docker/wheels/ while the block runs; yields whether there are any.

    Hard links where the file system allows (no copy of ~200 MB), removed afterwards.
    """
    staged = []
    try:
        for wheel in torch_wheels():
            target = WHEELS_DIR / wheel.name
            if not target.exists():
                try:
                    os.link(wheel, target)
                except OSError:
                    shutil.copyfile(wheel, target)
                staged.append(target)
        yield bool(list(WHEELS_DIR.glob("torch-*.whl")))
    finally:
        for target in staged:
            target.unlink(missing_ok=True)


def main(argv: list[str]) -> int:
    if argv[1:] != ["base"]:
        print("usage: python -m tests.support.docker_host base", file=sys.stderr)
        return 2
    ensure_daemon(Path(tempfile.gettempdir()) / "nexus-docker")
    print(base_image(Path(tempfile.gettempdir()) / "nexus-docker"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
