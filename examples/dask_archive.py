#!/usr/bin/env python3
"""Classifies an archive of captures on a Dask cluster into one Parquet dataset.

    python examples/dask_archive.py [--workers N | --scheduler ADDRESS]
        [--out DIR] [--overwrite] [--retries N] [--model FILE] [--bpf FILTER]
        [--max-flows N] [--tunnels LIST] INPUT...

INPUT is a directory (searched for .pcap, .pcapng and .cap files), a capture
file, a URL that every worker can open (anything fsspec reads: s3://,
gs://, https://, ...; it is fetched to the worker's temporary folder, since
libpcap reads files), or @FILE, a file with one input per line.

One Dask task per capture (small local captures share a task, up to
--batch-mb and --batch-captures), on a LocalCluster of N worker processes (one
machine) or on the cluster at ADDRESS (many). Each capture's flow records
(the columns of ``classify``'s JSON lines, ``skype_dpi.schema()``) go to
``DIR/capture_id=<name>-<hash>/part-0.parquet`` (Hive-style partitions:
``pyarrow.parquet.read_table(DIR)`` or ``dask.dataframe.read_parquet(DIR)``
read the whole archive). ``DIR`` may be a local folder shared by the
workers or a URL pyarrow writes to (s3://...).

Each capture ends as one of:
  ok         read to its end;
  truncated  read until an error (a capture cut short): its flows so far
             are written and the error is reported;
  failed     nothing could be read (not a capture, unreadable): no rows,
             the error is reported.
A task that raises (a worker lost, a fetch that failed) is retried up to
``--retries`` times, then counted as failed with its error. Nothing is
silently missing: the summary (printed, and written to DIR/_summary.json)
accounts for every input. The exit code is 1 when a capture was truncated
or failed, as for ``classify``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import tempfile
import time
import uuid
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap")


def find_captures(inputs: Iterable[str]) -> List[str]:
    """Expands directories and @lists into capture names, in a stable order
    (directories sorted; the inputs' own order otherwise), without
    duplicates."""
    found: List[str] = []
    seen = set()

    def add(name: str) -> None:
        if name not in seen:
            seen.add(name)
            found.append(name)

    for item in inputs:
        if item.startswith("@"):
            with open(item[1:], encoding="utf-8") as f:
                for line in f:
                    line = line.strip()
                    if line and not line.startswith("#"):
                        for c in find_captures([line]):
                            add(c)
        elif "://" not in item and os.path.isdir(item):
            names = []
            for root, _dirs, files in os.walk(item):
                for fname in files:
                    if fname.lower().endswith(CAPTURE_SUFFIXES):
                        names.append(os.path.join(root, fname))
            for n in sorted(names):
                add(n)
        else:
            add(item)
    return found


def partition_name(capture: str) -> str:
    """The capture's partition folder: its file name (made safe) and a hash
    of the whole name, so that equal file names in two folders differ."""
    base = re.sub(r"[^A-Za-z0-9._-]", "_", os.path.basename(capture.rstrip("/"))) or "capture"
    digest = hashlib.sha256(capture.encode("utf-8")).hexdigest()[:12]
    return f"capture_id={base[:80]}-{digest}"


def _filesystem(out: str):
    """pyarrow's file system for the output and the path inside it."""
    if "://" in out:
        return pafs.FileSystem.from_uri(out)
    return pafs.LocalFileSystem(), os.path.abspath(out)


def _local_copy(capture: str, tmpdir: str) -> str:
    """The capture as a local file (a URL is fetched with fsspec)."""
    if "://" not in capture or capture.startswith("file://"):
        return capture[len("file://"):] if capture.startswith("file://") else capture
    import fsspec  # comes with dask

    local = os.path.join(tmpdir, "capture" + os.path.splitext(capture)[1])
    with fsspec.open(capture, "rb") as src, open(local, "wb") as dst:
        while True:
            block = src.read(1 << 20)
            if not block:
                break
            dst.write(block)
    return local


def _model_file(model_text: Optional[str]) -> Optional[str]:
    """The model shipped with the task, as a file in the worker's
    temporary folder (written once per model)."""
    if model_text is None:
        return None
    digest = hashlib.sha256(model_text.encode("utf-8")).hexdigest()[:16]
    path = os.path.join(tempfile.gettempdir(), f"skype-dpi-model-{digest}.json")
    if not os.path.exists(path):
        tmp = f"{path}.{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(model_text)
        os.replace(tmp, path)
    return path


def classify_capture(capture: str, out: str, options: Dict[str, Any]) -> Dict[str, Any]:
    """One task: classifies a capture and writes its partition. Returns
    what the summary needs. Errors of the capture itself are results (no
    retry helps them); anything else raises, and Dask retries it."""
    import skype_dpi

    started = time.time()
    result: Dict[str, Any] = {
        "capture": capture,
        "partition": partition_name(capture),
        "status": "failed",
        "error": None,
        "flows": 0,
        "skype_flows": 0,
        "frames": 0,
        "packets": 0,
        "seconds": 0.0,
    }
    with tempfile.TemporaryDirectory(prefix="skype-dpi-") as tmpdir:
        local = _local_copy(capture, tmpdir)
        try:
            report = skype_dpi.analyze(
                local,
                model=_model_file(options.get("model_text")),
                bpf=options.get("bpf"),
                max_flows=options.get("max_flows"),
                tunnels=options.get("tunnels"),
            )
        except skype_dpi.Error as e:  # not a capture, a bad model, a bad filter
            result["error"] = str(e)
            result["seconds"] = time.time() - started
            return result
        table = report.table
        if local != capture:
            # The records name the capture as given, not the fetched copy.
            names = pa.array([capture] * table.num_rows, pa.string())
            table = table.set_column(table.schema.get_field_index("capture"), table.schema.field("capture"), names)
    fs, root = _filesystem(out)
    folder = f"{root}/{result['partition']}"
    fs.create_dir(folder, recursive=True)
    # Written whole under a temporary name, then renamed: a retried or
    # killed task never leaves half a file in the dataset.
    tmp = f"{folder}/.part-0.parquet.{os.getpid()}.tmp"
    pq.write_table(table, tmp, filesystem=fs, compression="snappy")
    fs.move(tmp, f"{folder}/part-0.parquet")
    problem = report.error or ("; ".join(report.failures) if report.failures else None)
    result.update(
        status="ok" if problem is None else "truncated",
        error=problem,
        flows=table.num_rows,
        skype_flows=table.column("verdict").to_pylist().count("skype"),
        frames=report.stats.get("frames", 0),
        packets=report.stats.get("packets", 0),
        seconds=time.time() - started,
    )
    return result


def classify_captures(group: Sequence[str], out: str, options: Dict[str, Any]) -> List[Dict[str, Any]]:
    """One task: the captures of a group, one after the other."""
    return [classify_capture(c, out, options) for c in group]


def _size(capture: str) -> Optional[int]:
    if "://" in capture and not capture.startswith("file://"):
        return None
    try:
        return os.path.getsize(capture[len("file://"):] if capture.startswith("file://") else capture)
    except OSError:
        return 0  # its task reports why


def plan_tasks(captures: Sequence[str], batch_bytes: int, batch_captures: int) -> List[List[str]]:
    """Groups small local captures into one task each (up to
    ``batch_bytes`` and ``batch_captures``), so that a task's fixed cost
    (scheduling, a round trip, a Parquet footer) does not dwarf a small
    capture's work; a big capture or a URL is a task of its own."""
    tasks: List[List[str]] = []
    group: List[str] = []
    size = 0
    for c in captures:
        n = _size(c)
        if n is None or n >= batch_bytes:
            tasks.append([c])
            continue
        if group and (size + n > batch_bytes or len(group) >= batch_captures):
            tasks.append(group)
            group, size = [], 0
        group.append(c)
        size += n
    if group:
        tasks.append(group)
    return tasks


def run(
    inputs: Sequence[str],
    out: str,
    client,
    *,
    model: Optional[str] = None,
    bpf: Optional[str] = None,
    max_flows: Optional[int] = None,
    tunnels: Optional[str] = None,
    retries: int = 2,
    overwrite: bool = False,
    batch_bytes: int = 64 << 20,
    batch_captures: int = 32,
    progress: Optional[Callable[[str], None]] = None,
) -> Dict[str, Any]:
    """Classifies the captures of ``inputs`` on ``client``'s cluster into the
    Parquet dataset ``out``; returns the summary (also written to
    ``out/_summary.json``)."""
    from dask.distributed import as_completed

    say = progress or (lambda s: print(s, file=sys.stderr, flush=True))
    captures = find_captures(inputs)
    fs, root = _filesystem(out)
    info = fs.get_file_info(root)
    if info.type != pafs.FileType.NotFound:
        listing = fs.get_file_info(pafs.FileSelector(root, recursive=False))
        if listing and not overwrite:
            raise SystemExit(f"dask_archive: {out} is not empty: choose another --out or give --overwrite")
        if listing:
            fs.delete_dir_contents(root)
    fs.create_dir(root, recursive=True)
    options = {"bpf": bpf, "max_flows": max_flows, "tunnels": tunnels, "model_text": None}
    if model is not None:
        with open(model, encoding="utf-8") as f:
            options["model_text"] = f.read()
    started = time.time()
    run_id = uuid.uuid4().hex[:8]  # a task of this run, never a result kept from an earlier one
    futures = {}
    for group in plan_tasks(captures, batch_bytes, batch_captures):
        key = f"classify-{run_id}-{partition_name(group[0])}"
        fut = client.submit(classify_captures, group, out, options, retries=retries, pure=False, key=key)
        futures[fut] = group
    results: List[Dict[str, Any]] = []
    for fut in as_completed(futures):
        group = futures[fut]
        try:
            done = fut.result()
        except Exception as e:  # the task failed after its retries
            done = [
                {
                    "capture": capture,
                    "partition": partition_name(capture),
                    "status": "failed",
                    "error": f"{type(e).__name__}: {e}",
                    "flows": 0,
                    "skype_flows": 0,
                    "frames": 0,
                    "packets": 0,
                    "seconds": 0.0,
                }
                for capture in group
            ]
        for r in done:
            results.append(r)
            note = f" ({r['error']})" if r["error"] else ""
            say(f"[{len(results)}/{len(captures)}] {r['status']}: {r['capture']}: {r['flows']} flows, {r['skype_flows']} skype{note}")
    wall = time.time() - started
    order = {c: i for i, c in enumerate(captures)}
    results.sort(key=lambda r: order[r["capture"]])
    frames = sum(r["frames"] for r in results)
    summary = {
        "captures": len(captures),
        "ok": sum(r["status"] == "ok" for r in results),
        "truncated": [{"capture": r["capture"], "error": r["error"]} for r in results if r["status"] == "truncated"],
        "failed": [{"capture": r["capture"], "error": r["error"]} for r in results if r["status"] == "failed"],
        "flows": sum(r["flows"] for r in results),
        "skype_flows": sum(r["skype_flows"] for r in results),
        "frames": frames,
        "packets": sum(r["packets"] for r in results),
        "seconds": round(wall, 3),
        "captures_per_second": round(len(captures) / wall, 1) if wall > 0 else None,
        "frames_per_second": round(frames / wall) if wall > 0 else None,
        "workers": len(client.scheduler_info().get("workers", {})),
        "results": results,
    }
    with fs.open_output_stream(f"{root}/_summary.json") as f:
        f.write(json.dumps(summary, indent=1).encode("utf-8"))
    say(
        f"summary: {summary['captures']} captures ({summary['ok']} ok, {len(summary['truncated'])} truncated, "
        f"{len(summary['failed'])} failed), {summary['flows']} flows ({summary['skype_flows']} skype), "
        f"{frames} frames, {wall:.2f} s ({summary['captures_per_second']} captures/s, "
        f"{summary['frames_per_second']} frames/s) on {summary['workers']} workers"
    )
    for kind in ("truncated", "failed"):
        for r in summary[kind]:
            err = r["error"] or ""
            say(f"{kind}: {err}" if r["capture"] in err else f"{kind}: {r['capture']}: {err}")
    return summary


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("inputs", nargs="+", metavar="INPUT")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=2, help="worker processes of a LocalCluster (default 2)")
    where.add_argument("--scheduler", help="address of a running Dask scheduler (tcp://host:8786)")
    p.add_argument("--out", default="flows.parquet", help="the Parquet dataset (a folder or a URL)")
    p.add_argument("--overwrite", action="store_true", help="empty --out first if it holds anything")
    p.add_argument("--retries", type=int, default=2, help="retries of a task that raised (default 2)")
    p.add_argument("--batch-mb", type=float, default=64, help="small captures share a task up to this size (default 64 MB)")
    p.add_argument("--batch-captures", type=int, default=32, help="and up to this many captures (default 32; 1: a task each)")
    p.add_argument("--model", help="a model file (default: the embedded model)")
    p.add_argument("--bpf", help="a BPF filter")
    p.add_argument("--max-flows", type=int)
    p.add_argument("--tunnels", help="all, none, or a list of gtp_u,gre,vxlan,geneve,ip_in_ip,capwap")
    a = p.parse_args(argv)
    from dask.distributed import Client, LocalCluster

    if a.scheduler:
        client = Client(a.scheduler)
        cluster = None
    else:
        cluster = LocalCluster(n_workers=a.workers, threads_per_worker=1, processes=True, dashboard_address=":0")
        client = Client(cluster)
    try:
        summary = run(
            a.inputs,
            a.out,
            client,
            model=a.model,
            bpf=a.bpf,
            max_flows=a.max_flows,
            tunnels=a.tunnels,
            retries=a.retries,
            overwrite=a.overwrite,
            batch_bytes=int(a.batch_mb * (1 << 20)),
            batch_captures=max(1, a.batch_captures),
        )
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return 0 if not summary["truncated"] and not summary["failed"] else 1


if __name__ == "__main__":
    sys.exit(main())
