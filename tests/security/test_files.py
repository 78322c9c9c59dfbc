"""Files on disk: a failed export keeps the file it would replace; killed imports leave no scratch behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.test_cli import _kizuna


@pytest.fixture
def home(tmp_path):
    home = tmp_path / "home"
    assert _kizuna(home, "init").returncode == 0
    return home


def test_a_failed_export_keeps_the_existing_file(home, tmp_path):
    out = tmp_path / "customers.csv"
    out.write_text("yesterday's export\n")
    r = _kizuna(home, "export", "customers", "-o", str(out), "-f", "shoe_size=9")
    assert r.returncode == 2
    assert out.read_text() == "yesterday's export\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []

    ok = _kizuna(home, "export", "customers", "-o", str(out))
    assert ok.returncode == 0, ok.stderr
    assert out.read_text(encoding="utf-8-sig").startswith("id,")


def test_a_missing_folder_is_a_clear_error_not_a_traceback(home, tmp_path):
    out = tmp_path / "no" / "such" / "folder" / "customers.csv"
    r = _kizuna(home, "export", "customers", "-o", str(out))
    assert r.returncode == 2
    # rich wraps at the terminal width, which depends on the length of the temporary path
    assert "does not exist" in " ".join(r.stdout.split())
    assert "Traceback" not in r.stderr + r.stdout


def _run(home: Path, tmp: Path, *args: str, wait: bool = True):  # noqa: ANN202
    env = {"KIZUNA_HOME": str(home), "PATH": "/usr/bin:/bin", "HOME": str(home), "TMPDIR": str(tmp)}
    command = [sys.executable, "-m", "kizuna", *args]
    if not wait:
        return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_an_import_removes_scratch_folders_of_dead_imports_only(home, tmp_path):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    dead = scratch / f"kizuna-import-{_dead_pid()}-abc123"
    (dead / "range-0.db").parent.mkdir()
    (dead / "range-0.db").write_bytes(b"x" * 100)
    alive = scratch / f"kizuna-import-{os.getpid()}-def456"
    alive.mkdir()
    unrelated = scratch / "someone-elses-folder"
    unrelated.mkdir()
    small = tmp_path / "small.csv"
    small.write_text("email,family_name\nsmall@example.jp,小林\n", encoding="utf-8")
    r = _run(home, scratch, "import", "customers", str(small))
    assert r.returncode == 0, r.stderr
    assert not dead.exists()
    assert alive.exists() and unrelated.exists()


def test_an_import_killed_with_sigkill_leaves_scratch_that_the_next_import_removes(home, tmp_path):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    big = tmp_path / "big.csv"
    with big.open("w", encoding="utf-8") as fh:
        fh.write("email,family_name,given_name,prefecture,city,address_line\n")
        for i in range(160_000):
            fh.write(f"person{i}@example.jp,山田,太郎{i},東京都,渋谷区,神南1-{i}-1 サンプルビル{i % 50}階\n")
    assert big.stat().st_size > 4_000_000
    victim = _run(home, scratch, "import", "customers", str(big), wait=False)
    deadline = time.monotonic() + 120
    folders: list[Path] = []
    while time.monotonic() < deadline and victim.poll() is None:
        folders = [p for p in scratch.glob(f"kizuna-import-{victim.pid}-*") if any(p.iterdir())]
        if folders:
            break
        time.sleep(0.05)
    if not folders:
        victim.kill()
        victim.wait()
        pytest.fail("the import never staged a batch in its scratch folder (machine too slow or file too small?)")
    parsers = _children(victim.pid)
    assert parsers, "the import runs parser processes for a file this size"
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert folders[0].exists()  # nothing could clean up
    # Its parser processes notice that the import is gone and end, rather than wait on their queue forever.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(_alive(pid) for pid in parsers):
        time.sleep(0.1)
    assert not [pid for pid in parsers if _alive(pid)]

    small = tmp_path / "small.csv"
    small.write_text("email,family_name\nsmall@example.jp,小林\n", encoding="utf-8")
    r = _run(home, scratch, "import", "customers", str(small))
    assert r.returncode == 0, r.stderr
    assert list(scratch.glob("kizuna-import-*")) == []


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
