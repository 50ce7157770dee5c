"""`actavatar data review`: the static review page, checked in a real headless browser (chromium)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from dataset.review import build_review, script_json

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
needs_browser = pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (`make test` installs it with apt-get)")


@pytest.fixture(scope="module")
def page(toy_corpus_master, tmp_path_factory) -> Path:
    from actavatar.cli import main

    html = tmp_path_factory.mktemp("review") / "page.html"
    assert main(["data", "review", str(toy_corpus_master), "--html", str(html), "--no-progress"]) == 0
    return html


def _chromium(*args: str, url: str, tmp: Path) -> subprocess.CompletedProcess:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp}",
           "--enable-logging=stderr", "--v=0", *args, url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def _console_errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]


def test_page_files_and_data(page, toy_corpus_master):
    files = sorted((page.parent / "page_files").glob("*.jpg"))
    assert len(files) == 6 and all(f.read_bytes()[:2] == b"\xff\xd8" for f in files)  # one JPEG strip per kept clip
    text = page.read_text()
    data = json.loads(re.search(r'<script type="application/json" id="review-data">(.*?)</script>', text, re.S).group(1))
    rows = {r["key"]: r for r in data["rows"]}
    assert len(rows) == 8 and sum(r["status"] == "rejected" for r in rows.values()) == 2
    kept = [r for r in rows.values() if r["status"] == "ok"]
    assert all(r["annotation"]["key"] == r["key"] and len(r["strip_times"]) == 8 for r in kept)
    assert {r["reason"] for r in rows.values() if r["status"] == "rejected"} == {"no_face", "too_short"}


def test_script_json_cannot_close_the_script_element():
    text = script_json({"t": "</script><script>alert(1)</script>"})
    assert "</" not in text and json.loads(text) == {"t": "</script><script>alert(1)</script>"}


def test_missing_manifest_is_a_clear_error(tmp_path):
    from dataset.errors import UserError

    with pytest.raises(UserError, match="no manifest.parquet here"):
        build_review(tmp_path, tmp_path / "x.html")


@needs_browser
def test_page_renders_in_a_browser_without_errors(page, tmp_path):
    shot = tmp_path / "shot.png"
    run = _chromium("--window-size=1200,1600", f"--screenshot={shot}", url=page.as_uri(), tmp=tmp_path / "profile")
    assert run.returncode == 0, run.stderr[-2000:]
    assert shot.stat().st_size > 20_000  # a page with pictures, not a blank one
    assert _console_errors(run.stderr) == []
    dom = _chromium("--dump-dom", url=page.as_uri(), tmp=tmp_path / "profile").stdout
    assert 'data-shown="8"' in dom and dom.count('class="clip ') == 8
    assert "8 of 8 rows shown (6 ok, 2 rejected)" in dom
    assert dom.count('class="facebox"') == 6 * 8  # the face box on every frame of every kept clip's strip


@needs_browser
def test_a_script_error_would_be_caught(page, tmp_path):
    broken = page.with_name("broken.html")
    broken.write_text(page.read_text().replace("\ninit();\n", "\ninit(); notDefinedAnywhere();\n"))
    run = _chromium("--dump-dom", url=broken.as_uri(), tmp=tmp_path / "profile")
    assert any("notDefinedAnywhere" in line for line in _console_errors(run.stderr))


@needs_browser
@pytest.mark.parametrize("query, cards, label", [("?status=rejected", 2, "page 1 of 1"),
                                                 ("?page_size=3&page=2", 3, "page 2 of 3"),
                                                 ("?reason=no_face", 1, "page 1 of 1")])
def test_filters_and_pages_from_the_url(page, tmp_path, query, cards, label):
    run = _chromium("--dump-dom", url=page.as_uri() + query, tmp=tmp_path / "profile")
    assert run.returncode == 0 and _console_errors(run.stderr) == []
    assert run.stdout.count('class="clip ') == cards and label in run.stdout
