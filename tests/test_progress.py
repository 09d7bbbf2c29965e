"""ganrun's progress on long generation: one line rewritten in place on a terminal (a real
pseudo-terminal here), plain lines into a pipe, nothing with --quiet or for one batch's work;
the samples written are the same either way.

Progress shows once the work is expected to take more than a couple of seconds; these tests
set that threshold to 0 (runtime.core.progress.SHOW_AFTER_ENV) so that a few small batches show
it, without a test that takes seconds or depends on the machine's speed."""
import os
import pty
import re
import subprocess
import sys

import pytest

from conftest import ROOT
from runtime.core.progress import SHOW_AFTER_ENV

N = 40
# One drawing of the progress line: samples done of N, share, rate, then time left or taken.
STATE = re.compile(rf"(\d+)/{N} samples \(\d+%\), [\d,]+ samples/s, "
                   r"(about [\d.]+ (s|min|h) left|done in [\d.]+ (s|min|h))")


@pytest.fixture(scope="module")
def model(exported_runs):
    return exported_runs["mlp-mnist"] / "export" / "generator.int8.onnx"


def _ganrun(model, out, *args, terminal: bool, show_after: str | None = "0",
            status: int = 0) -> str:
    """ganrun --n N in batches of 4 in a fresh process, with stderr on a pseudo-terminal or a
    pipe; returns what it wrote on stderr, once it has ended with exit `status`."""
    env = {**os.environ}
    env.pop(SHOW_AFTER_ENV, None)
    if show_after is not None:
        env[SHOW_AFTER_ENV] = show_after
    command = [sys.executable, "-m", "runtime.cli", "--model", str(model), "--n", str(N),
               "--batch", "4", "--out", str(out), *args]
    if not terminal:
        result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == status, result.stderr
        return result.stderr
    controller, terminal_end = pty.openpty()
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=terminal_end)
    os.close(terminal_end)
    err = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: the process closed its end
            break
        if not chunk:
            break
        err += chunk
    os.close(controller)
    assert proc.wait(timeout=120) == status, err
    proc.stdout.close()
    return err.decode().replace("\r\n", "\n")  # the terminal's own line ends


def _counts(states: list[str]) -> list[int]:
    counts = []
    for state in states:
        found = STATE.fullmatch(state)
        assert found, repr(state)
        counts.append(int(found.group(1)))
    assert counts == sorted(counts) and counts[-1] == N, counts
    assert "done in" in states[-1] and all("left" in s for s in states[:-1]), states
    return counts


def test_a_terminal_gets_one_line_rewritten_in_place(model, tmp_path):
    err = _ganrun(model, tmp_path / "a.png", terminal=True)
    header, rest = err.split("\n", 1)
    assert "mlp-mnist" in header
    # Every drawing starts at the line's start and clears what a longer one left; the line
    # ends once, when the work is done.
    assert rest.startswith("\r") and rest.endswith("\n") and rest.count("\n") == 1, repr(rest)
    states = [s.removesuffix("\n").removesuffix("\x1b[K") for s in rest.split("\r")[1:]]
    assert len(_counts(states)) >= 2  # drawn first when it shows, and again at the end


def test_a_pipe_gets_plain_lines(model, tmp_path):
    err = _ganrun(model, tmp_path / "a.png", terminal=False)
    assert "\r" not in err and "\x1b" not in err, repr(err)
    lines = err.splitlines()
    assert "mlp-mnist" in lines[0]
    assert len(_counts(lines[1:])) >= 2


def test_quiet_and_one_batch_show_no_progress_and_the_samples_are_the_same(model, tmp_path):
    shown = tmp_path / "shown"
    _ganrun(model, tmp_path / "a.png", "--out-dir", shown, terminal=False)
    quiet = tmp_path / "quiet"
    assert _ganrun(model, tmp_path / "b.png", "--quiet", "--out-dir", quiet,
                   terminal=True) == ""
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    assert sorted(p.name for p in shown.iterdir()) == sorted(p.name for p in quiet.iterdir())
    for sample in shown.iterdir():
        assert sample.read_bytes() == (quiet / sample.name).read_bytes()
    # One batch holds all of the work: nothing to show while it runs.
    err = _ganrun(model, tmp_path / "c.png", "--batch", str(N), terminal=True)
    assert err.count("\n") == 1 and "samples" not in err, repr(err)


def test_an_error_while_progress_shows_is_a_line_of_its_own(model, tmp_path):
    """A sample's target turns out to be a folder halfway through: the error starts a line of
    its own on the terminal, after the progress line, and nothing follows it."""
    each = tmp_path / "each"
    (each / "sample_000020.png").mkdir(parents=True)
    err = _ganrun(model, tmp_path / "a.png", "--out-dir", each, "--replace", terminal=True,
                  status=2)
    before, error = err.removesuffix("\n").rsplit("\n", 1)
    assert error.startswith("error: ") and "sample_000020.png" in error, repr(err)
    assert STATE.fullmatch(before.rsplit("\r", 1)[-1].removesuffix("\x1b[K")), repr(err)
