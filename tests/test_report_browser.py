"""`harness report` end to end: a real run on the tiny zoo (every track, a recovered
trigger), its site rendered by the CLI, and every page opened in headless Chromium with
networking off: every table and image renders, no resource fails to load, nothing is
fetched from outside, every link leads to a file of the site, and index.html's first
screen holds the ranking of every track and the attack x defense matrix. The index's
screenshot is written beside the site (the path is printed with ``-s``)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from browser import Chromium, find_chromium
from conftest import HOSTILE, REPO, run_cli
from refsubs import by_id

pytestmark = pytest.mark.sandbox
PATCH = "mnist-badnets-patch3-t0-v1"
#: The first screen: a laptop's browser window.
SCREEN = (1440, 900)


@pytest.fixture(scope="session")
def chromium() -> str:
    path = find_chromium()
    if path is None:
        pytest.fail(
            "Chromium is not installed: apt-get install chromium (.ci/run does); the "
            "report's browser test must not silently skip"
        )
    return path


@pytest.fixture(scope="module")
def site(tmp_path_factory, tiny_zoo, backend):
    folder = tmp_path_factory.mktemp("sub") / "known_answers"
    shutil.copytree(HOSTILE / "known_answers", folder)
    mask, pattern = by_id(tiny_zoo, PATCH).triggers()[0]
    np.savez(folder / "answers.npz", mask=mask, pattern=pattern)
    db = str(tmp_path_factory.mktemp("db") / "results.sqlite")
    run_cli(
        "run", str(folder), str(REPO / "submissions" / "null"), "--profile", "tiny",
        "--tracks", "detect,filter,repair,fuzz", "--fuzz-budget", "60", "--run-id", "r",
        "--workers", "1", "--backend", backend, "--db", db, check=True,
    )  # fmt: skip
    out = tmp_path_factory.mktemp("site")
    proc = run_cli("report", "--db", db, "--run-id", "r", "--out", str(out), check=True)
    assert f"open {out / 'index.html'}" in proc.stdout
    return out


def test_the_cli_writes_every_page_and_plot(site):
    pages = {p.name for p in site.glob("*.html")}
    assert pages == {"index.html", "zoo.html", "sub-known-answers.html", "sub-null.html"}
    plots = {p.name for p in (site / "plots").glob("*.png")}
    assert {"matrix-detect-auc.png", "matrix-repair-der.png", "matrix-filter-filter_auc.png",
            "matrix-fuzz-activation_rate.png", "roc-mnist.png", "ca-asr-null.png",
            "masks-known-answers.png", "activation-known-answers.png"} <= plots  # fmt: skip
    assert any((site / "plots" / "triggers").glob("trigger-badnets_patch.png"))
    assert (site / "LEADERBOARD.md").is_file() and (site / "leaderboard.csv").is_file()


def test_every_page_renders_in_chromium_with_nothing_from_outside(site, chromium, tmp_path):
    with Chromium(chromium, tmp_path / "profile") as browser:
        for page in sorted(site.glob("*.html")):
            report = browser.open(page.as_uri(), *SCREEN)
            probe = report.probe
            assert report.failed == [], f"{page.name}: failed loads {report.failed}"
            assert report.errors == [], f"{page.name}: {report.errors}"
            outside = [u for u in report.requests if not u.startswith(("file://", "data:"))]
            assert outside == [], f"{page.name} fetched {outside}"
            assert probe["pageWidth"] <= SCREEN[0], f"{page.name} scrolls sideways"
            assert probe["tables"], page.name
            for t in probe["tables"]:
                assert t["rows"] >= 2 and t["width"] > 0 and t["height"] > 0, (page.name, t)
            assert probe["images"], page.name
            for img in probe["images"]:
                assert img["loaded"] and img["width"] > 10 and img["height"] > 10, (page.name, img)
            for ref in probe["links"] + probe["sources"]:
                assert "://" not in ref, f"{page.name} links outside: {ref}"
                assert (site / ref).is_file(), f"{page.name} links to a missing {ref}"
            if page.name == "index.html":
                (site / "index-screenshot.png").write_bytes(report.screenshot)
                print(f"screenshot: {site / 'index-screenshot.png'}")
                _first_screen_holds_rankings_and_matrix(probe)


def _first_screen_holds_rankings_and_matrix(probe: dict) -> None:
    height = probe["viewport"][1]
    # detect, filter, repair and fuzz each have a ranking, all of it on the first screen
    assert len(probe["rankings"]) == 4
    assert all(box["bottom"] <= height for box in probe["rankings"]), probe["rankings"]
    (matrix,) = probe["matrix"]
    assert matrix["top"] < height / 2 and matrix["bottom"] <= height, matrix
