"""bench.profile's summary of a py-spy raw profile, by line and by function."""

from __future__ import annotations

from pathlib import Path

from bench.profile import summarize

# A function called from two lines of its caller, in three samples of four.
RAW = (
    "main (cli.py:1);work (core.py:10);encode (codec.py:5) 2\n"
    "main (cli.py:1);work (core.py:12);encode (codec.py:5) 1\n"
    "main (cli.py:1);idle (loop.py:3) 1\n"
)


def test_by_line_each_call_site_is_its_own_frame(tmp_path: Path) -> None:
    path = tmp_path / "profile.raw"
    path.write_text(RAW)
    inclusive = dict(summarize(path)["inclusive"])
    assert inclusive["work (core.py:10)"] == 50.0
    assert inclusive["work (core.py:12)"] == 25.0
    assert dict(summarize(path)["own"])["encode (codec.py:5)"] == 75.0


def test_by_function_a_functions_lines_count_once_per_sample(tmp_path: Path) -> None:
    path = tmp_path / "profile.raw"
    path.write_text(RAW + "main (cli.py:1);main (cli.py:2) 1\n")
    summary = summarize(path, functions=True)
    inclusive = dict(summary["inclusive"])
    assert inclusive["work (core.py)"] == 60.0
    assert inclusive["main (cli.py)"] == 100.0  # a recursive call is one frame, once
    assert dict(summary["own"])["idle (loop.py)"] == 20.0
