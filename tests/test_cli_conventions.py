"""The CLI behaves as scripts and people used to Unix tools expect: the same facts under the
same JSON keys in every command, exit codes that say whether a delivery happened, failures on
stderr, no progress-bar frames or model-loading noise in logs, and files from outside the
inbox never labelled with a grade/subject guessed from unrelated folder names."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from engine.cli.main import main
from engine.cli.vkp_cmds import PULL_KEYS, pull_failures
from engine.inbox.layout import LayoutRefused, Placement, layout_for
from engine.jobs.base import FileResult, JobRecord
from tests.support import pdfs
from tests.support.cli import nexus as run_nexus

JOB_KEYS = {f.name for f in fields(JobRecord)}
FILE_KEYS = {f.name for f in fields(FileResult)}
DELIVERY_KEYS = {
    "staged",
    "staged_keys",
    "sent",
    "sent_keys",
    "unchanged",
    "unchanged_keys",
    "pending",
    "invalidation_id",
    "error",
}


def nexus(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    """The console script in a subprocess, stderr not a terminal (as in a log file); the
    tests read its exit code themselves."""
    return run_nexus(*args, timeout=timeout, check=False)


def run(capsys, *args: str) -> tuple[int, str, str]:
    """The CLI in this process: exit code, stdout, stderr."""
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


# --- where grade and subject come from outside the inbox -------------------------------------
def lesson(path: Path) -> Path:
    return pdfs.text_pdf(path, ["Fotosintesis terjadi di daun."])


def test_inside_the_inbox_the_inbox_folders_label(inbox):
    lesson(inbox / "kelas_7" / "ipa" / "a.pdf")
    for path in (inbox, inbox / "kelas_7", inbox / "kelas_7" / "ipa" / "a.pdf"):
        assert layout_for(path, inbox).root == inbox.resolve()
        assert layout_for(path, inbox).placement is None


def test_a_folder_holding_grade_folders_is_the_root(tmp_path, inbox):
    export = tmp_path / "usb" / "kurikulum"
    lesson(export / "kelas_10" / "informatika" / "bab1" / "a.pdf")
    lesson(export / "kelas_11" / "biologi" / "b.pdf")
    layout = layout_for(export, inbox)
    assert (layout.root, layout.source) == (export.resolve(), "tree")
    assert "kelas_10/informatika" in layout.note and "kelas_11/biologi" in layout.note


def test_a_subject_folder_is_labelled_by_its_names_only_if_they_are_allowed(tmp_path, inbox):
    subject = tmp_path / "usb" / "kelas_7" / "ipa"
    lesson(subject / "a.pdf")
    layout = layout_for(subject, inbox)
    assert (layout.root, layout.source) == ((tmp_path / "usb").resolve(), "folders")
    assert "'kelas_7'" in layout.note and "'ipa'" in layout.note  # said, not silent
    assert layout_for(subject / "a.pdf", inbox).root == (tmp_path / "usb").resolve()

    odd = tmp_path / "Flashdisk Budi" / "Materi IPA"
    lesson(odd / "a.pdf")
    for path in (odd, odd / "a.pdf"):
        with pytest.raises(LayoutRefused, match="--grade G --subject S"):
            layout_for(path, inbox)


def test_loose_pdfs_beside_grade_folders_are_refused(tmp_path, inbox):
    export = tmp_path / "export"
    lesson(export / "kelas_10" / "informatika" / "a.pdf")
    lesson(export / "lepas.pdf")
    with pytest.raises(LayoutRefused, match=r"PDFs directly and also grade folders \(kelas_10"):
        layout_for(export, inbox)


def test_a_grade_folder_alone_is_refused_with_the_way_out(tmp_path, inbox):
    grade = tmp_path / "usb" / "kelas_10"
    lesson(grade / "informatika" / "a.pdf")
    with pytest.raises(LayoutRefused) as refused:
        layout_for(grade, inbox)
    message = str(refused.value)
    assert "folders with PDFs (informatika)" in message
    assert f"ingest the folder above it ({grade.parent.resolve()})" in message

    badly_named = tmp_path / "usb2"
    lesson(badly_named / "Kelas 10" / "informatika" / "a.pdf")
    with pytest.raises(LayoutRefused, match="for example 'kelas_10'"):
        layout_for(badly_named, inbox)


def test_explicit_labels(tmp_path, inbox):
    folder = tmp_path / "Flashdisk Budi"
    lesson(folder / "a.pdf")
    layout = layout_for(folder, inbox, "kelas_10", "ipa")
    assert layout.placement == Placement("kelas_10", "ipa") and layout.root == folder.resolve()
    single = layout_for(folder / "a.pdf", inbox, "kelas_10", "ipa")
    assert single.root == folder.resolve()
    with pytest.raises(LayoutRefused, match="both --grade and --subject"):
        layout_for(folder, inbox, "kelas_10", None)
    with pytest.raises(LayoutRefused, match="'kelas_10'"):
        layout_for(folder, inbox, "Kelas 10", "ipa")
    lesson(inbox / "kelas_7" / "ipa" / "a.pdf")
    with pytest.raises(LayoutRefused, match="is in the inbox"):
        layout_for(inbox / "kelas_7", inbox, "kelas_10", "ipa")


def test_an_explicit_label_is_stored_and_a_new_one_moves_the_file(engine, tmp_path):
    folder = tmp_path / "Flashdisk Budi"
    lesson(folder / "a.pdf")
    outcome = engine.ingestor.run([folder], folder, placement=Placement("kelas_10", "ipa"))
    [result] = outcome.files
    assert (result.status, result.grade, result.subject) == ("ingested", "kelas_10", "ipa")
    assert engine.searcher.search("fotosintesis daun", grade="kelas_10")[0].source == "a.pdf"

    # the same file under a corrected label is stored again, not skipped as unchanged
    relabelled = engine.ingestor.run([folder], folder, placement=Placement("kelas_7", "ipa"))
    assert [(f.status, f.grade) for f in relabelled.files] == [("ingested", "kelas_7")]
    assert engine.searcher.search("fotosintesis daun", grade="kelas_10") == []
    assert engine.searcher.search("fotosintesis daun", grade="kelas_7")[0].source == "a.pdf"


# --- the CLI in this process: exit codes and stderr ------------------------------------------
def test_jobs_show_without_a_match_fails_on_stderr(capsys, engine):
    code, out, err = run(capsys, "jobs", "show", "nothere", "--json")
    assert (code, out) == (1, "")
    assert "no job matches 'nothere'" in err


def test_ingest_refuses_an_unlabelled_folder_with_exit_2(capsys, tmp_path, settings):
    odd = tmp_path / "Flashdisk Budi" / "Materi IPA"
    lesson(odd / "a.pdf")
    code, out, err = run(capsys, "ingest", str(odd), "--json")
    assert (code, out) == (2, "")
    assert "--grade G --subject S" in err
    code, out, err = run(capsys, "ingest", str(odd), "--grade", "kelas_10")
    assert (code, out) == (2, "") and "both --grade and --subject" in err


def test_telemetry_upload_that_cannot_send_exits_1(capsys, engine):
    engine.telemetry.record_query(20, False, when=datetime.now(UTC) - timedelta(hours=2))
    code, out, err = run(capsys, "telemetry", "upload", "--json")  # no telemetry table set
    result = json.loads(out)
    assert code == 1 and result == {"sent": 0, "pending": 1, "error": result["error"]}
    assert "1 hour(s) not sent: no telemetry table configured" in err


def test_telemetry_upload_with_nothing_to_send_succeeds(capsys, engine):
    code, out, _ = run(capsys, "telemetry", "upload", "--json")
    assert code == 0 and json.loads(out) == {"sent": 0, "pending": 0, "error": ""}


def test_aws_flush_exits_1_while_objects_wait_and_0_once_delivered(capsys, engine, monkeypatch):
    engine.publisher.outbox.stage_bytes("processed/ipa/kelas_7/metadata/x.json", b"{}")
    code, out, err = run(capsys, "aws", "flush", "--json")
    report = json.loads(out)
    assert code == 1 and set(report) == DELIVERY_KEYS | {"jobs_synced", "jobs_error"}
    assert (report["sent"], report["sent_keys"], report["pending"]) == (0, [], 1)
    assert "1 object(s) still waiting: S3 is not configured" in err


@pytest.mark.slow
def test_aws_flush_reports_counts_and_keys(capsys, aws, settings):
    from engine.app import build_engine
    from engine.cloud.admin import setup

    setup(settings)
    engine = build_engine(settings)
    key = "processed/ipa/kelas_7/metadata/x.json"
    engine.publisher.outbox.stage_bytes(key, b"{}")
    code, out, err = run(capsys, "aws", "flush", "--json")
    report = json.loads(out)
    assert code == 0 and err == ""
    assert (report["sent"], report["pending"], report["error"]) == (1, 0, "")
    assert report["sent_keys"] == [key] and report["jobs_error"] == ""


def test_vkp_build_json_gives_the_full_path(capsys, engine, inbox):
    lesson(inbox / "kelas_10" / "informatika" / "a.pdf")
    engine.ingestor.run([inbox], inbox)
    assert run(capsys, "vkp", "keygen")[0] == 0
    code, out, _ = run(capsys, "vkp", "build", "informatika", "kelas_10", "--json")
    built = json.loads(out)
    assert code == 0 and Path(built["path"]).is_absolute() and Path(built["path"]).is_file()
    assert Path(built["path"]).name == built["file"]
    assert built["delta_path"] is None and built["published"] is None


def test_telemetry_show_json_has_the_hour_in_progress_apart(capsys, engine):
    engine.telemetry.record_query(20, False, when=datetime.now(UTC) - timedelta(hours=2))
    engine.telemetry.record_query(40, True)
    code, out, _ = run(capsys, "telemetry", "show", "--json")
    shown = json.loads(out)
    assert code == 0 and set(shown) == {"enabled", "payloads", "current_hour", "refused_hours"}
    assert shown["payloads"] == engine.telemetry.queued() and len(shown["payloads"]) == 1
    current = shown["current_hour"]
    assert current["metrics"]["query_count"] == 1 and current["metrics"]["error_count"] == 1
    assert current["timestamp"] > shown["payloads"][0]["timestamp"]
    code, out, _ = run(capsys, "telemetry", "show")
    assert "pending: the current hour" in out


# --- the console script, as scripts and logs see it ------------------------------------------
@pytest.fixture
def bedrock_env(bedrock):
    return bedrock


@pytest.mark.slow
def test_ingest_and_jobs_show_print_the_same_keys(bedrock_env, inbox, tmp_path):
    lesson(inbox / "kelas_10" / "informatika" / "a.pdf")
    pdfs.encrypted_pdf(inbox / "kelas_10" / "informatika" / "kunci.pdf")

    proc = nexus("ingest", str(inbox), "--json")
    summary = json.loads(proc.stdout)
    assert proc.returncode == 0 and "\r" not in proc.stderr and "%|" not in proc.stderr
    assert set(summary) == JOB_KEYS | {"chunks_skipped", "files", "publish"}
    assert all(set(f) == FILE_KEYS for f in summary["files"])
    assert (summary["successful_files"], summary["failed_files"]) == (1, 1)
    assert summary["publish"] is None

    shown = json.loads(nexus("jobs", "show", summary["job_id"], "--json").stdout)
    assert set(shown) == set(summary) - {"publish"}
    assert shown["successful_files"] == summary["successful_files"]
    [listed] = json.loads(nexus("jobs", "--json").stdout)
    assert set(listed) == JOB_KEYS

    # nothing to do: the same keys, null/0/[] where nothing happened
    empty = tmp_path / "kosong"
    empty.mkdir()
    nothing = json.loads(nexus("ingest", str(empty), "--json").stdout)
    assert set(nothing) == set(summary)
    assert nothing["job_id"] is None and nothing["files"] == [] and nothing["total_chunks"] == 0

    # a folder from a USB stick, labelled explicitly
    usb = tmp_path / "Flashdisk Budi"
    lesson(usb / "b.pdf")
    labelled = nexus("ingest", str(usb), "--grade", "kelas_7", "--subject", "ipa", "--json")
    [result] = json.loads(labelled.stdout)["files"]
    assert (result["grade"], result["subject"], result["status"]) == ("kelas_7", "ipa", "ingested")
    assert "labelling every PDF" in labelled.stderr


@pytest.mark.slow
def test_the_real_model_loads_without_noise_on_stderr(inbox, tmp_path):
    """`nexus ingest > out.json 2> log`: the log holds lines, no bars, no 'Loading weights'."""
    lesson(inbox / "kelas_10" / "ipa" / "a.pdf")
    log = tmp_path / "log"
    with log.open("w") as stderr:
        proc = subprocess.run(
            [sys.executable, "-m", "engine.cli.main", "ingest", str(inbox), "--json"],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            timeout=300,
        )
    text = log.read_text()
    assert proc.returncode == 0 and json.loads(proc.stdout)["total_chunks"] == 1
    assert "Loading weights" not in text and "\r" not in text and "it/s" not in text
    assert "ingested" in text  # one plain line per file instead of a bar


def test_vkp_pull_results_always_have_the_same_keys(capsys, engine, tmp_path):
    code, out, err = run(capsys, "vkp", "pull", "--source", str(tmp_path / "no-usb"), "--json")
    [result] = json.loads(out)
    assert code == 1 and set(result) == set(PULL_KEYS)
    assert (result["package"], result["action"]) == (None, "failed") and result["error"]
    assert "nexus vkp pull: catalogue (failed)" in err


def test_a_failed_delta_made_good_by_the_full_package_is_no_failure():
    tried = [
        {"package": "kelas_10__ipa", "action": "failed", "via": "delta", "error": "bad"},
        {"package": "kelas_10__ipa", "action": "installed", "via": "full", "error": ""},
        {"package": "kelas_11__ipa", "action": "failed", "via": "full", "error": "bad"},
    ]
    assert [r["package"] for r in pull_failures(tried)] == ["kelas_11__ipa"]


def test_bars_are_drawn_only_on_a_terminal(capsys):
    from engine.cli.progress import BarProgress

    bars = BarProgress()  # stderr is captured here, as in `2> log`
    bars.file_started("a.pdf", 1, 1)
    bars.close()
    assert not bars.enabled and capsys.readouterr().err == ""
