import os
import stat
import threading

import pytest

from ponder.core.errors import DataError
from ponder.core.io import atomic_writer, fresh_dir, write_atomic


def test_writes_text_and_bytes_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "sub" / "out.json"
    assert write_atomic(target, "héllo\n") == target
    assert target.read_text(encoding="utf-8") == "héllo\n"
    write_atomic(target, memoryview(b"\x00\x01"))
    assert target.read_bytes() == b"\x00\x01"
    assert os.listdir(target.parent) == ["out.json"]


def test_mode_follows_the_umask_like_open(tmp_path):
    old = os.umask(0o027)
    try:
        write_atomic(tmp_path / "a", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o640
    write_atomic(tmp_path / "b", "x", mode=0o600)
    assert stat.S_IMODE((tmp_path / "b").stat().st_mode) == 0o600


def test_a_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "keep.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_writer(target) as fh:
        fh.write("half")
        raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["keep.txt"]


def test_a_directory_at_the_target_is_a_clear_error(tmp_path):
    (tmp_path / "out").mkdir()
    with pytest.raises(DataError, match="out is a directory; name a file"):
        write_atomic(tmp_path / "out", "x")
    assert (tmp_path / "out").is_dir() and os.listdir(tmp_path) == ["out"]  # no temporary file left


def test_a_symlink_at_the_target_is_replaced_not_followed(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    target = tmp_path / "out"
    target.symlink_to(victim)
    write_atomic(target, "new")
    assert victim.read_text() == "precious"
    assert not target.is_symlink() and target.read_text() == "new"


def test_concurrent_writers_each_leave_a_whole_file(tmp_path):
    target = tmp_path / "shared.txt"
    bodies = [str(n) * 100_000 for n in range(8)]
    errors: list[BaseException] = []

    def writer(body: str) -> None:
        try:
            for _ in range(5):
                write_atomic(target, body)
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(b,)) for b in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert target.read_text() in bodies
    assert os.listdir(tmp_path) == ["shared.txt"]


def test_fresh_dir_is_new_private_to_the_call_and_mkdir_like(tmp_path):
    target = tmp_path / "games" / "key"
    first, second = fresh_dir(target), fresh_dir(target)
    assert first != second and first.parent == target.parent and first.name.startswith(".key.")
    assert list(first.iterdir()) == [] and not first.is_symlink()
    old = os.umask(0o022)
    try:
        assert stat.S_IMODE(fresh_dir(target).stat().st_mode) == 0o755
    finally:
        os.umask(old)
