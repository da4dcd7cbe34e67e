"""engine.paths.confined: resolve, then check, whatever the caller's link policy."""

from __future__ import annotations

import os

import pytest

from engine.paths import Outside, confined


@pytest.mark.parametrize("follow", [True, False])
def test_only_entries_inside_the_root_are_allowed(tmp_path, follow):
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    os.symlink(tmp_path / "outside", root / "out")
    assert confined(root, root / "sub" / "f.pdf", follow_final_link=follow) == (
        root.resolve() / "sub" / "f.pdf"
    )
    for hostile in (root / "..", root / "sub" / ".." / "..", root / "out" / "f.pdf", root):
        with pytest.raises(Outside):
            confined(root, hostile, follow_final_link=follow)


def test_a_final_link_is_followed_only_when_asked(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(tmp_path / "elsewhere.txt", root / "link")
    with pytest.raises(Outside):
        confined(root, root / "link")  # open() would write where it points
    assert confined(root, root / "link", follow_final_link=False) == root.resolve() / "link"
