"""Running ``derive`` and reading what it did: the command in a process of its own, its one error
line, the files of a folder, and the stderr of a process that may hang (read with a deadline)."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from helpers import ROOT


def run_derive(args: list[str], cwd: Path = ROOT, extra_path: str = "") -> subprocess.CompletedProcess:
    """``python -m derive.cli ARGS`` in ``cwd``, with this checkout (then ``extra_path``) on its path."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), extra_path) if p))
    return subprocess.run([sys.executable, "-m", "derive.cli", *args], cwd=cwd, capture_output=True,
                          text=True, env=env, timeout=300)


def one_error(capsys) -> str:
    """What an in-process ``main`` printed to stderr, checked to be one ``derive: error:`` line."""
    err = capsys.readouterr().err
    assert err.startswith("derive: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder``, by its relative path: two snapshots are equal when nothing changed."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


class Watched:
    """A started process whose stderr a thread reads line by line, so that waiting for a line or for
    the end has a deadline: a process that hangs fails its test, never the whole run."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.process, self.lines, self._queue = process, [], queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stderr:
            self.lines.append(line)
            self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, text: str, timeout: float) -> None:
        """Return once a line of stderr holds ``text``; fail the test after ``timeout`` seconds or at
        the end of the output."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"no line with {text!r} within {timeout} s; stderr so far:\n{''.join(self.lines)}")
            if line is None:
                pytest.fail(f"the process ended without a line with {text!r}; stderr:\n{''.join(self.lines)}")
            if text in line:
                return

    def finish(self, timeout: float) -> tuple[int, str]:
        """The exit status and the whole of stderr, once the process has ended and every holder of its
        stderr has closed it; fail the test after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        try:
            status = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running after {timeout} s; stderr:\n{''.join(self.lines)}")
        self._reader.join(timeout=max(0.0, deadline - time.monotonic()))
        if self._reader.is_alive():
            pytest.fail(f"the process ended, but its stderr was still held open after {timeout} s (a child "
                        f"left running?); stderr:\n{''.join(self.lines)}")
        return status, "".join(self.lines)
