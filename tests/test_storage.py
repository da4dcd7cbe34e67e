"""Blob stores (`engine.blobs`): the folder and the S3 store pass the same contract, and a
folder store never writes outside its root."""

from __future__ import annotations

import os

import boto3
import pytest

from engine.app import build_engine
from engine.aws.s3 import Outbox
from engine.blobs import (
    TEMP_MARK,
    BadKey,
    BlobNotFound,
    BlobTooLarge,
    FolderStore,
    NotConfigured,
    NullStore,
)
from engine.settings import Settings

BUCKET = "openclass-nexus-ai"


@pytest.fixture(params=["folder", "s3"])
def store(request, tmp_path):
    """Each store as the composition root builds it: a folder, or the bucket (moto's server
    over HTTP) under S3_PREFIX."""
    if request.param == "folder":
        return FolderStore(tmp_path / "store")
    request.getfixturevalue("aws")
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=BUCKET)
    return build_engine(Settings(S3_PREFIX="school-1")).stores.remote


def source(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_put_get_list_delete(store, tmp_path):
    assert store.put_file("vkp/a.vkp", source(tmp_path, "a", b"alpha")) is True
    assert store.put_bytes("vkp/index.json", b"{}") is True
    store.put_bytes("processed/ipa/kelas_7/metadata/summary.json", b"[]")

    assert store.get_bytes("vkp/a.vkp", max_bytes=5) == b"alpha"
    assert store.exists("vkp/a.vkp") and not store.exists("vkp/b.vkp")
    assert store.sha256("vkp/index.json") == (
        "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    )
    assert store.list_keys("vkp/") == ["vkp/a.vkp", "vkp/index.json"]
    assert store.list_keys("vkp/i") == ["vkp/index.json"]  # a string prefix, as in S3
    assert store.list_keys() == [
        "processed/ipa/kelas_7/metadata/summary.json",
        "vkp/a.vkp",
        "vkp/index.json",
    ]

    store.delete("vkp/a.vkp")
    store.delete("vkp/a.vkp")  # gone already: nothing happens
    assert store.list_keys("vkp/") == ["vkp/index.json"]
    with pytest.raises(BlobNotFound):
        store.get_bytes("vkp/a.vkp", max_bytes=10)
    assert store.sha256("vkp/a.vkp") is None

    store.delete_prefix("processed/")
    assert store.list_keys() == ["vkp/index.json"]


def test_unchanged_bytes_are_not_written_again(store, tmp_path):
    path = source(tmp_path, "a", b"same")
    assert store.put_file("a/b.txt", path) is True
    assert store.put_file("a/b.txt", path) is False
    assert store.put_bytes("a/b.txt", b"same") is False
    assert store.put_bytes("a/b.txt", b"other") is True
    assert store.get_bytes("a/b.txt", max_bytes=100) == b"other"


def test_capped_reads_refuse_what_is_larger(store):
    store.put_bytes("big.bin", b"x" * 1000)
    assert len(store.get_bytes("big.bin", max_bytes=1000)) == 1000
    with pytest.raises(BlobTooLarge):
        store.get_bytes("big.bin", max_bytes=999)


@pytest.mark.parametrize(
    "key", ["../x", "a/../../x", "/etc/passwd", "a\0b", "a//b", "", "a/./b", "a/", TEMP_MARK + "1"]
)
def test_keys_that_are_not_plain_are_refused(store, tmp_path, key):
    with pytest.raises(BadKey):
        store.put_file(key, source(tmp_path, "a", b"x"))
    with pytest.raises(BadKey):
        store.get_bytes(key, max_bytes=10)
    with pytest.raises(BadKey):
        store.delete(key)
    assert store.list_keys() == []


def test_a_store_within_a_prefix_and_a_whole_tree(store, tmp_path):
    tree = tmp_path / "tree"
    (tree / "inbox").mkdir(parents=True)
    (tree / "inbox" / "a.pdf").write_bytes(b"%PDF")
    (tree / "manifest.json").write_bytes(b"{}")
    (tree / "nexus.db").write_bytes(b"db")
    backups = store.within("backups/host")

    keys = backups.put_tree("20260101T000000Z", tree, last="manifest.json")

    assert keys[-1] == "20260101T000000Z/manifest.json" and len(keys) == 3
    assert store.list_keys("backups/") == [f"backups/host/{k}" for k in sorted(keys)]
    assert backups.url("20260101T000000Z/").rstrip("/").endswith("backups/host/20260101T000000Z")
    backups.delete_prefix("20260101T000000Z/")
    assert store.list_keys() == []


def test_s3_objects_keep_the_layout_under_s3_prefix(aws, tmp_path):
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=BUCKET)
    store = build_engine(Settings(S3_PREFIX="school-1")).stores.remote
    store.put_file("vkp/a.vkp", source(tmp_path, "a", b"alpha"))

    s3 = boto3.client("s3", region_name="us-east-1")
    head = s3.head_object(Bucket=BUCKET, Key="school-1/vkp/a.vkp")
    assert head["Metadata"]["sha256"] == store.sha256("vkp/a.vkp")
    assert store.url("vkp/a.vkp") == f"s3://{BUCKET}/school-1/vkp/a.vkp"


# --- a folder store stays inside its root ------------------------------------------------------


def test_a_folder_store_never_writes_through_a_link_out_of_its_root(tmp_path):
    root, outside = tmp_path / "store", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "vkp").symlink_to(outside, target_is_directory=True)
    (root / "index.json").symlink_to(outside / "index.json")
    store = FolderStore(root)

    for key in ("vkp/a.vkp", "index.json"):
        with pytest.raises(BadKey):
            store.put_bytes(key, b"owned")
    with pytest.raises(BadKey):
        store.delete_prefix("vkp/")
    assert list(outside.iterdir()) == []
    assert store.list_keys() == []  # links are neither listed nor followed


def test_a_folder_store_writes_atomically_and_keeps_the_mode(tmp_path):
    store = FolderStore(tmp_path / "store")
    private = source(tmp_path, "key", b"secret")
    private.chmod(0o600)

    store.put_file("keys/signing.key", private)

    written = tmp_path / "store" / "keys" / "signing.key"
    assert written.read_bytes() == b"secret" and written.stat().st_mode & 0o777 == 0o600
    assert not [p for p in (tmp_path / "store").rglob("*") if p.name.startswith(TEMP_MARK)]


def test_a_folder_tree_prepared_in_staging_arrives_by_one_rename(tmp_path):
    store = FolderStore(tmp_path / "store")
    with store.staging() as staging:
        (staging / "b" / "x").mkdir(parents=True)
        (staging / "b" / "x" / "f.txt").write_bytes(b"f")
        inode = os.stat(staging / "b" / "x" / "f.txt").st_ino
        store.put_tree("b", staging / "b")
    assert os.stat(tmp_path / "store" / "b" / "x" / "f.txt").st_ino == inode  # not copied
    assert [p.name for p in (tmp_path / "store").iterdir()] == ["b"]  # staging is gone
    with store.staging() as staging, pytest.raises(Exception, match="exists"):
        (staging / "b").mkdir()
        store.put_tree("b", staging / "b")  # an existing folder is never replaced


# --- S3 not configured -------------------------------------------------------------------------


def test_without_a_bucket_objects_wait_in_the_outbox(settings):
    remote = build_engine(settings).stores.remote
    assert isinstance(remote, NullStore) and not remote.configured
    with pytest.raises(NotConfigured, match="S3_BUCKET_NAME"):
        remote.list_keys()
    outbox = Outbox(settings.outbox_dir)
    outbox.stage_bytes("vkp/index.json", b"{}")

    delivery = outbox.flush(remote)

    assert delivery.pending == 1 and "S3 is not configured" in delivery.error
