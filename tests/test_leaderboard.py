"""The results store, the standings, and the rendered Markdown and HTML pages."""

from __future__ import annotations

import json
import multiprocessing
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from ganzoo.leaderboard import build_standings, read_records, write_record
from ganzoo.leaderboard._render import render_html, render_markdown
from ganzoo.training._grids import save_image_grid

PROTOCOL = {
    "feature_extractor": {
        "name": "fashion-classifier",
        "weights_hash": "abc123",
        "preprocessing": "none",
    },
    "reference": {"dataset": "fashion-mnist", "split": "test", "fingerprint": "f00d"},
    "n_real": 10000,
    "n_fake": 10000,
    "k_pr": 3,
    "k_dc": 5,
    "versions": {"ganzoo": "0.1.0", "torch": "2.14.1"},
}


def record(
    name,
    fid,
    *,
    recipe_hash=None,
    status="ok",
    std=None,
    protocol=None,
    created="2026-12-03T10:00:00",
    samples=None,
    **extra,
):
    data = {
        "name": name,
        "status": status,
        "dataset": "fashion-mnist",
        "recipe": f"recipes/fashion-mnist/{name}.yaml",
        "recipe_hash": recipe_hash or (name * 4)[:16].ljust(16, "0"),
        "created": created,
        "n_seeds": 3,
        "protocol": protocol or PROTOCOL,
        "training": {
            "kimg": 40,
            "sec_per_kimg": 12.5,
            "peak_host_mem_gb": 1.2,
            "device": "cpu",
        },
        "seeds": [
            {
                "seed": 0,
                "samples": samples,
                "curve": [[10, {"fid": fid + 5}], [20, {"fid": fid}]],
            }
        ],
    }
    if status == "ok":
        data.update(
            {"fid": fid, "precision": 0.5, "recall": 0.4, "std": std or {"fid": 1.5}}
        )
    else:
        data["errors"] = ["seed 1 diverged: 12 of 500 samples are NaN"]
    data.update(extra)
    return data


def _write_many(args):
    folder, worker = args
    for index in range(10):
        write_record(record(f"w{worker}-{index}", 10.0 + index), Path(folder))


def test_concurrent_writers_lose_no_record(tmp_path):
    with multiprocessing.get_context("spawn").Pool(8) as pool:
        pool.map(_write_many, [(str(tmp_path), worker) for worker in range(8)])
    records = read_records(tmp_path)
    assert len(records) == 80
    assert len({r["name"] for r in records}) == 80
    assert not list(tmp_path.glob(".*")), "temporary files were left behind"


def test_a_reader_never_sees_a_partial_record(tmp_path):
    path = write_record(record("only", 3.0), tmp_path)
    assert json.loads(path.read_text())["name"] == "only"
    (tmp_path / ".record-half.tmp").write_text('{"name": "par')
    assert [r["name"] for r in read_records(tmp_path)] == ["only"]


def test_records_are_never_overwritten(tmp_path):
    first = write_record(record("same", 1.0), tmp_path)
    second = write_record(record("same", 2.0), tmp_path)
    assert first != second
    assert json.loads(first.read_text())["fid"] == 1.0


def test_ranking_by_fid_lowest_first_and_by_recall_highest_first():
    records = [record("b", 30.0), record("a", 20.0), record("c", 25.0, recall=0.9)]
    records[2]["recall"] = 0.9
    [table] = build_standings(records).tables
    assert table.metric == "fid"
    assert [r["name"] for r in table.rows] == ["a", "c", "b"]
    [table] = build_standings(records, metric="recall").tables
    assert table.rows[0]["name"] == "c"


def test_different_protocols_are_never_ranked_together():
    other = json.loads(json.dumps(PROTOCOL))
    other["n_fake"] = 2000
    standings = build_standings([record("a", 20.0), record("b", 10.0, protocol=other)])
    assert len(standings.tables) == 2
    for table in standings.tables:
        assert len(table.rows) == 1
        assert any(
            "n_fake 10000 vs 2000" in r or "n_fake 2000 vs 10000" in r
            for r in table.apart
        )


def test_failed_runs_are_shown_but_not_ranked():
    standings = build_standings(
        [record("ok", 20.0), record("broken", 0.0, status="failed")]
    )
    [table] = standings.tables
    assert [r["name"] for r in table.rows] == ["ok"]
    assert [r["name"] for r in standings.failed["fashion-mnist"]] == ["broken"]
    text = render_markdown(standings)
    assert "**failed**: broken" in text and "diverged" in text


def test_latest_record_of_a_recipe_wins():
    old = record("a", 50.0, created="2026-01-01T00:00:00")
    new = record("a", 20.0, created="2026-06-01T00:00:00")
    [table] = build_standings([new, old]).tables
    assert [r["fid"] for r in table.rows] == [20.0]


def test_markdown_shows_mean_std_and_seed_count():
    text = render_markdown(build_standings([record("a", 20.0, std={"fid": 1.25})]))
    row = next(line for line in text.splitlines() if line.startswith("| 1 |"))
    assert "20 ± 1.2" in row and "| 3 |" in row
    assert "fashion-classifier (abc123)" in text
    assert "12.5" in row and "1.20 GB" in row


def _site(tmp_path):
    grid = tmp_path / "grid.png"
    import torch

    save_image_grid(torch.rand(16, 1, 28, 28), grid)
    records = [
        record(name, fid, samples=str(grid))
        for name, fid in (("zeta", 20.0), ("alpha", 25.0), ("mid", 30.0))
    ]
    out = tmp_path / "site" / "index.html"
    render_html(build_standings(records), out)
    return out


def test_html_page_has_a_row_per_run_and_local_images_only(tmp_path):
    out = _site(tmp_path)
    page = out.read_text()
    assert page.count("<tr>") == 1 + 3
    assert "http://" not in page and "https://" not in page
    images = re.findall(r"src='([^']+)'", page)
    assert images and all((out.parent / src).is_file() for src in images)


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _chromium(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=5000",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.skipif(
    CHROMIUM is None,
    reason="Chromium is not installed (apt-get install chromium; .ci/run installs it)",
)
def test_html_page_in_a_real_browser(tmp_path):
    out = _site(tmp_path)
    url = out.resolve().as_uri()

    loaded = _chromium("--dump-dom", url)
    console = [line for line in loaded.stderr.splitlines() if "CONSOLE" in line]
    assert console == [], f"console messages: {console}"
    assert 'data-images-loaded="true"' in loaded.stdout

    def names(dom: str) -> list[str]:
        body = dom[dom.index("<tbody>") :]
        return re.findall(r"<td class=\"name\">([a-z]+)</td>", body)

    # Ranked by FID first; sorting by a column reorders the rows.
    assert names(loaded.stdout) == ["zeta", "alpha", "mid"]
    assert names(_chromium("--dump-dom", url + "#sort=name").stdout) == [
        "alpha",
        "mid",
        "zeta",
    ]
    assert names(_chromium("--dump-dom", url + "#sort=fid").stdout) == [
        "zeta",
        "alpha",
        "mid",
    ]

    shot = tmp_path / "shot.png"
    _chromium(f"--screenshot={shot}", "--window-size=1200,800", url)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_shows_metrics_and_recipe_differences(tmp_path, cli):
    first = record("a", 20.0, config={"loss": {"name": "bce"}, "train": {"kimg": 40}})
    second = record(
        "b", 30.0, config={"loss": {"name": "hinge"}, "train": {"kimg": 40}}
    )
    paths = [write_record(r, tmp_path) for r in (first, second)]
    status, out, _ = cli("compare", *paths, "--json", "--results", tmp_path)
    assert status == 0
    result = json.loads(out)
    assert result["runs"] == ["a", "b"]
    assert result["metrics"]["fid"] == [20.0, 30.0]
    assert result["recipe_differences"] == {"loss.name": ["bce", "hinge"]}
    status, _, err = cli("compare", tmp_path / "missing-run", "--results", tmp_path)
    assert status == 2 and "expected a record" in err


def test_bad_leaderboard_and_compare_arguments_get_one_line(tmp_path, cli):
    clean = tmp_path / "clean"
    write_record(record("a", 20.0), clean)
    write_record(record("a", 20.0), tmp_path)
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "list.json").write_text("[1, 2]")
    cases = {
        ("leaderboard", "--results", clean, "--metric", "fidd"): (
            "no record has a score 'fidd'; scores in the records: fid, precision"
        ),
        ("compare", tmp_path / "broken.json", "--results", clean): (
            "broken.json: not a readable record"
        ),
        ("compare", tmp_path / "list.json", "--results", clean): (
            "list.json: not an evaluation record"
        ),
    }
    for args, message in cases.items():
        status, out, err = cli(*args)
        assert status == 2 and out == "", (args, err)
        assert message in err and len(err.strip().splitlines()) == 1, (args, err)

    # A folder not written yet is an empty board.
    status, out, err = cli("leaderboard", "--results", tmp_path / "nowhere")
    assert status == 0 and "## " not in out and err == ""

    # A damaged record in the folder is skipped with a warning, not fatal.
    status, out, err = cli("leaderboard", "--results", tmp_path, "--metric", "fid")
    assert status == 0 and "| a |" in out.replace("[a]", "a")
    assert "skipping unreadable record" in err and "broken.json" in err
