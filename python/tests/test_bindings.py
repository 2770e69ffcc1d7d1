"""The Python face: tables equal to classify's records, errors with its
messages, the streaming classifier, training and evaluation."""

import json
import shutil
import struct
import subprocess
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import skype_dpi


def f32(x):
    """A JSON number as the float32 it was printed from."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def assert_row_equal(row, want, where):
    """A table row (to_pylist) equals a JSON record: the same fields in the
    same order, the same values (chi2 as float32)."""
    assert list(row.keys()) == list(want.keys()), where
    for k, v in want.items():
        got = row[k]
        if k in ("fwd", "bwd"):
            assert list(got.keys()) == list(v.keys()), f"{where} {k}"
            for dk, dv in v.items():
                if dk == "chi2":
                    assert got[dk] == [f32(x) for x in dv], f"{where} {k}.{dk}"
                else:
                    assert got[dk] == dv, f"{where} {k}.{dk}: {got[dk]!r} != {dv!r}"
        else:
            assert got == v, f"{where} {k}: {got!r} != {v!r}"


def run_classify(classify_bin, *args):
    return subprocess.run([str(classify_bin), *map(str, args)], capture_output=True, text=True)


def jsonl_records(classify_bin, *captures):
    p = run_classify(classify_bin, "--format", "jsonl", *captures)
    return [json.loads(line) for line in p.stdout.splitlines()], p


def cli_error(p):
    """The first error line of a classify run, without its prefix."""
    for line in p.stderr.splitlines():
        if line.startswith("classify: "):
            return line[len("classify: "):]
    raise AssertionError(f"no error in {p.stderr!r}")


@pytest.fixture(scope="module")
def sample(repo):
    return repo / "datasets" / "sample.pcap"


def test_the_table_is_classifys_jsonl_row_for_row(sample, classify_bin):
    table = skype_dpi.classify(str(sample))
    want, p = jsonl_records(classify_bin, sample)
    assert p.returncode == 0, p.stderr
    assert table.num_rows == len(want) > 100
    assert table.column_names == list(want[0].keys())
    assert table.schema.equals(skype_dpi.schema())
    for i, (row, w) in enumerate(zip(table.to_pylist(), want)):
        assert_row_equal(row, w, f"row {i}")
    verdicts = set(table.column("verdict").to_pylist())
    assert verdicts <= {"skype", "not_skype", "undecided"} and "skype" in verdicts


def test_cli_parquet_is_the_python_table(sample, classify_bin, tmp_path):
    out = tmp_path / "flows.parquet"
    p = run_classify(classify_bin, "--format", "parquet", "--out", out, sample)
    assert p.returncode == 0, p.stderr
    written = pq.read_table(out)
    assert written.equals(skype_dpi.classify(str(sample)))
    p = run_classify(classify_bin, "--format", "parquet", sample)
    assert p.returncode == 2 and "--out FILE" in p.stderr


def test_any_thread_count_gives_the_same_table(sample):
    one = skype_dpi.classify(sample)
    assert skype_dpi.classify(sample, threads=3).equals(one)


def test_bpf_and_max_flows_and_tunnels(sample):
    udp = skype_dpi.classify(sample, bpf="udp")
    assert set(udp.column("transport").to_pylist()) == {"udp"}
    bounded = skype_dpi.analyze(sample, max_flows=10)
    assert bounded.stats["peak_flows"] <= 10
    assert "evicted" in set(bounded.table.column("end").to_pylist())
    with pytest.raises(ValueError):
        skype_dpi.classify(sample, tunnels="nonsense")


def test_errors_carry_the_clis_messages(sample, classify_bin, tmp_path):
    missing = tmp_path / "missing.pcap"
    with pytest.raises(skype_dpi.CaptureError) as e:
        skype_dpi.classify(missing)
    assert str(e.value) == cli_error(run_classify(classify_bin, missing))

    bad_model = tmp_path / "model.json"
    bad_model.write_text('{"format": 1}')
    with pytest.raises(skype_dpi.ModelError) as e:
        skype_dpi.classify(sample, model=bad_model)
    assert str(e.value) == cli_error(run_classify(classify_bin, "--model", bad_model, sample))
    assert str(bad_model) in str(e.value)

    with pytest.raises(skype_dpi.CaptureError) as e:
        skype_dpi.classify(sample, bpf="this is not a filter")
    assert str(e.value) == cli_error(run_classify(classify_bin, "--filter", "this is not a filter", sample))
    assert isinstance(e.value, skype_dpi.Error)


def test_a_truncated_capture_gives_its_flows_so_far_and_the_error(sample, classify_bin, tmp_path):
    data = sample.read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[: len(data) // 2 + 7])
    with pytest.raises(skype_dpi.CaptureError) as e:
        skype_dpi.classify(cut)
    want, p = jsonl_records(classify_bin, cut)
    assert p.returncode == 1
    assert str(e.value) == cli_error(p)
    partial = e.value.table
    assert partial.num_rows == len(want) > 0
    for i, (row, w) in enumerate(zip(partial.to_pylist(), want)):
        assert_row_equal(row, w, f"row {i}")
    report = skype_dpi.analyze(cut)
    assert not report.ok and report.error == str(e.value)
    assert report.table.equals(partial)


def pcap_frames(path):
    """The frames of a classic little- or big-endian pcap file (microsecond
    or nanosecond), without a third-party reader."""
    data = Path(path).read_bytes()
    magic = data[:4]
    endian, scale = {
        b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
        b"\xa1\xb2\xc3\xd4": (">", 1e-6),
        b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
        b"\xa1\xb2\x3c\x4d": (">", 1e-9),
    }[magic]
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    off = 24
    while off + 16 <= len(data):
        sec, frac, incl, orig = struct.unpack(endian + "IIII", data[off : off + 16])
        off += 16
        yield data[off : off + incl], sec + frac * scale, linktype, orig
        off += incl


def test_the_streaming_classifier_reaches_the_same_verdicts(sample):
    table = skype_dpi.classify(sample)
    c = skype_dpi.Classifier(name=str(sample))
    final, first_verdict, skipped = {}, {}, 0
    for frame, ts, linktype, orig in pcap_frames(sample):
        skipped += c.push(frame, ts, linktype, orig) is not None
        for e in c.events():
            if e["event"] == "verdict":
                first_verdict.setdefault(e["community_id"], e)
            elif e["event"] in ("flow_ended", "revised"):
                r = e["record"]
                final[(r["community_id"], r["first_seen"])] = r
    c.finish()
    for e in c.events():
        if e["event"] in ("flow_ended", "revised"):
            r = e["record"]
            final[(r["community_id"], r["first_seen"])] = r
    assert c.open_flows == 0
    assert c.stats()["frames"] == sum(1 for _ in pcap_frames(sample))
    rows = table.to_pylist()
    assert len(final) == len(rows)
    for row in rows:
        r = final[(row["community_id"], row["first_seen"])]
        for k in ("verdict", "kind", "decided_at_packet", "packets", "payload_bytes"):
            assert r[k] == row[k], (k, row["community_id"])
    skype = [r for r in rows if r["verdict"] == "skype" and r["via"] == "flow"]
    assert skype and all(r["community_id"] in first_verdict for r in skype)
    assert c.push(b"\x00" * 3, 1.0, 1) is not None
    with pytest.raises(ValueError):
        c.push(b"", float("nan"), 1)


def test_train_and_evaluate(repo, tmp_path):
    spec = f"{repo}/datasets/sample.pcap@{repo}/datasets/sample-labels.csv"
    ev = skype_dpi.evaluate([spec])
    assert "text" in ev and ev["sets"], ev.keys()
    s = ev["sets"][0]
    assert s["recall"] is not None and s["recall"] > 0.5
    out = tmp_path / "model.json"
    text = skype_dpi.train([spec], out=out, notes="pytest")
    assert json.loads(text) == json.loads(out.read_text())
    assert skype_dpi.classify(repo / "datasets" / "sample.pcap", model=out).num_rows > 100
    with pytest.raises(skype_dpi.TrainError):
        skype_dpi.train([f"{tmp_path}/none.pcap@{tmp_path}/none.csv"])
