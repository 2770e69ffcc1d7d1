"""The Dask example on a 2-worker LocalCluster: the merged Parquet dataset
of the nDPI and legacy captures equals one classify process's records, row
for row, and every capture is accounted for."""

import importlib.util
import os
import json
from collections import defaultdict

import pyarrow.parquet as pq
import pytest

from test_bindings import assert_row_equal, cli_error, jsonl_records, run_classify

distributed = pytest.importorskip("dask.distributed")


@pytest.fixture(scope="module")
def dask_archive(repo):
    spec = importlib.util.spec_from_file_location("dask_archive", repo / "examples" / "dask_archive.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0")
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


def test_the_archive_equals_classify_row_for_row(dask_archive, client, datasets, classify_bin, tmp_path):
    inputs = [str(datasets / "ndpi" / "pcap"), str(datasets / "ndpi" / "legacy-skype" / "pcap")]
    out = tmp_path / "archive"
    summary = dask_archive.run(inputs, str(out), client, progress=lambda s: None)
    captures = dask_archive.find_captures(inputs)
    assert len(captures) >= 500 and summary["captures"] == len(captures)
    assert summary["workers"] == 2

    want, p = jsonl_records(classify_bin, *captures)
    by_capture = defaultdict(list)
    for r in want:
        by_capture[r["capture"]].append(r)
    dataset = pq.read_table(out)
    assert "capture_id" in dataset.column_names
    got = defaultdict(list)
    for r in dataset.drop(["capture_id"]).to_pylist():
        got[r["capture"]].append(r)
    assert dataset.num_rows == len(want) == summary["flows"]
    assert set(got) == set(by_capture)
    for capture, rows in by_capture.items():
        assert len(got[capture]) == len(rows), capture
        for i, (g, w) in enumerate(zip(got[capture], rows)):
            assert_row_equal(g, w, f"{capture} row {i}")

    # Every capture ends ok, truncated or failed, as classify saw it.
    cli_errors = [line for line in p.stderr.splitlines() if line.startswith("classify: ")]
    reported = summary["truncated"] + summary["failed"]
    assert len(reported) == len(cli_errors)
    assert sorted(r["error"] for r in reported) == sorted(line[len("classify: "):] for line in cli_errors)
    assert (p.returncode == 1) == bool(reported)
    assert summary["ok"] + len(reported) == len(captures)
    written = json.loads((out / "_summary.json").read_text())
    assert written["flows"] == summary["flows"] and len(written["results"]) == len(captures)


def test_failures_are_reported_never_missing(dask_archive, client, repo, classify_bin, tmp_path):
    not_a_capture = tmp_path / "notes.pcap"
    not_a_capture.write_text("not a capture\n")
    sample = str(repo / "datasets" / "sample.pcap")
    gone = "memory://nowhere/lost.pcap"  # the fetch raises: retried, then failed
    out = tmp_path / "archive"
    summary = dask_archive.run([sample, str(not_a_capture), gone], str(out), client, retries=1, progress=lambda s: None)
    assert summary["captures"] == 3 and summary["ok"] == 1
    failed = {r["capture"]: r["error"] for r in summary["failed"]}
    assert set(failed) == {str(not_a_capture), gone}
    assert failed[str(not_a_capture)] == cli_error(run_classify(classify_bin, not_a_capture))
    assert "FileNotFoundError" in failed[gone]
    table = pq.read_table(out)
    assert set(table.column("capture").to_pylist()) == {sample}
    with pytest.raises(SystemExit):
        dask_archive.run([sample], str(out), client, progress=lambda s: None)
    again = dask_archive.run([sample], str(out), client, overwrite=True, progress=lambda s: None)
    assert again["ok"] == 1 and pq.read_table(out).num_rows == table.num_rows


def test_the_command_line_exits_one_when_a_capture_failed(dask_archive, repo, tmp_path):
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"\x00" * 40)
    rc = dask_archive.main(["--workers", "1", "--out", str(tmp_path / "o"), str(repo / "datasets" / "sample.pcap"), str(bad)])
    assert rc == 1
    rc = dask_archive.main(["--workers", "1", "--out", str(tmp_path / "o2"), str(repo / "datasets" / "sample.pcap")])
    assert rc == 0


def test_small_captures_share_a_task_big_ones_and_urls_do_not(dask_archive, tmp_path):
    sizes = {"a": 10, "b": 10, "c": 500, "d": 10, "e": 10, "f": 10}
    paths = []
    for name, n in sizes.items():
        p = tmp_path / f"{name}.pcap"
        p.write_bytes(b"\x00" * n)
        paths.append(str(p))
    url = "s3://bucket/x.pcap"
    tasks = dask_archive.plan_tasks(paths[:3] + [url] + paths[3:], batch_bytes=100, batch_captures=2)
    names = [[os.path.basename(p)[0] if "://" not in p else "url" for p in t] for t in tasks]
    assert sorted(names) == [["a", "b"], ["c"], ["d", "e"], ["f"], ["url"]]
    assert sorted(p for t in tasks for p in t) == sorted(paths + [url])
