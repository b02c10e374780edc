"""Installed, soundalike is one package: nothing generic lands in site-packages, and the demo runs from it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # a system test: `pytest -m 'not slow'` leaves it out

ROOT = Path(__file__).resolve().parent.parent
SKIP = shutil.ignore_patterns(".venv", ".git", "*.soundalike", "soundalike-demo", "build", "*.egg-info", "__pycache__",
                              ".pytest_cache", ".hypothesis")


def test_pip_install_leaves_one_package_and_the_demo_runs_from_it(tmp_path):
    src = shutil.copytree(ROOT, tmp_path / "src", ignore=SKIP)  # builds leave nothing in the repository
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--target",
                    str(site), str(src)], check=True, capture_output=True, text=True)
    top = sorted(p.name for p in site.iterdir() if p.name != "bin")  # bin/: the console script
    assert len(top) == 2 and top[0] == "soundalike" and top[1].startswith("soundalike-") and top[1].endswith(".dist-info"), top
    assert (site / "bin" / "soundalike").is_file()

    # run from a folder that holds nothing of the project, with the installed copy first on the path
    run = tmp_path / "run"
    run.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "TF_CPP_MIN_LOG_LEVEL": "2"}
    where = subprocess.run([sys.executable, "-c", "import soundalike.cli as c; print(c.__file__)"], cwd=run, env=env,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert Path(where).is_relative_to(site)
    res = subprocess.run([sys.executable, str(site / "bin" / "soundalike"), "demo", "--dir", "demo", "--per-style", "4",
                          "--seconds", "6", "--epochs", "3", "--json"], cwd=run, env=env, capture_output=True, text=True,
                         timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads(res.stdout)
    assert summary["tracks"] == 24 and summary["held_out_queries"] == 12
    assert "share of the" in res.stderr  # the human-readable report goes to stderr under --json
    # both encoders put clearly more of a held-out track's neighbours in its own style than chance does
    for label, enc in summary["encoders"].items():
        assert enc["same_style_share"] > summary["chance"] + 0.2, (label, enc, summary["chance"])
    assert (run / "demo" / "library.soundalike" / "manifest.json").is_file()
