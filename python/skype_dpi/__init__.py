"""skype-dpi from Python: tells, flow by flow, whether traffic is classic Skype.

The method is that of Bonfiglio et al., "Revealing Skype Traffic: When
Randomness Plays with You" (SIGCOMM 2007): a chi-square randomness test of
the first payload bytes and a Naive Bayes test of packet sizes and gaps.

Flow records come as :class:`pyarrow.Table` objects with the columns of the
``classify`` command's JSON lines, in their order (:func:`schema`): one row
per flow; the evidence of each direction is a struct column (``fwd``,
``bwd``; ``table.flatten()`` gives ``fwd.packets`` and so on).

>>> import skype_dpi
>>> flows = skype_dpi.classify("datasets/sample.pcap")   # doctest: +SKIP
>>> flows.group_by("verdict").aggregate([("packets", "sum")])   # doctest: +SKIP

Errors are exceptions of :class:`Error` (:class:`ModelError`,
:class:`CaptureError`, :class:`TrainError`) with the messages the command
line prints.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Sequence, Union

import pyarrow as pa

from . import _native
from ._native import CaptureError, Error, ModelError, TrainError

__all__ = [
    "Classifier",
    "CaptureError",
    "Error",
    "ModelError",
    "Report",
    "TrainError",
    "analyze",
    "classify",
    "evaluate",
    "schema",
    "train",
]

PathLike = Union[str, "os.PathLike[str]"]

#: pcap link-type numbers the classifier reads (others are counted as
#: skipped frames).
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LINUX_SLL = 113
LINKTYPE_LINUX_SLL2 = 276


def _table(ipc: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(ipc)).read_all()


def schema() -> pa.Schema:
    """The schema of flow records (the JSON lines' fields, in their order)."""
    return _table(_native.empty_records()).schema


@dataclass
class Report:
    """What :func:`analyze` found in one capture."""

    #: The capture as given.
    capture: str
    #: One row per flow, in the order the flows ended.
    table: pa.Table
    #: Run counters: frames, packets, flows, peak_flows, skipped (by
    #: reason), skipped_total, tunneled (by kind).
    stats: Dict[str, Any]
    #: Why reading stopped before the end (the table holds the flows read
    #: before), or None.
    error: Optional[str] = None
    #: Worker threads that failed (their flows are in the table).
    failures: List[str] = field(default_factory=list)
    #: Seconds the analysis took.
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Whether the capture was read to its end with no failure."""
        return self.error is None and not self.failures


def _path(p: Optional[PathLike]) -> Optional[str]:
    return None if p is None else os.fspath(p)


def analyze(
    path: PathLike,
    model: Optional[PathLike] = None,
    bpf: Optional[str] = None,
    max_flows: Optional[int] = None,
    *,
    tunnels: Optional[str] = None,
    threads: int = 1,
) -> Report:
    """Classifies every flow of a capture file (pcap or pcapng).

    Unlike :func:`classify`, a capture that cannot be read to its end is not
    an exception: the report holds the flows read before, and the error.

    :param path: the capture.
    :param model: a model file (``train``'s output); None for the default.
    :param bpf: a BPF filter applied while reading.
    :param max_flows: flows held at once (the longest idle are evicted).
    :param tunnels: the tunnels opened ("all", "none", or a comma-separated
        list of gtp_u, gre, vxlan, geneve, ip_in_ip, capwap).
    :param threads: worker threads (the records are the same for any number).
    :raises ModelError: the model file cannot be used.
    :raises CaptureError: the capture cannot be opened, or the filter is bad.
    """
    ipc, stats, error, failures, seconds = _native.analyze(
        _path(path), _path(model), bpf, max_flows, tunnels, threads
    )
    table = _table(ipc)
    capture = os.fspath(path)
    return Report(capture, table, json.loads(stats), error, list(failures), seconds)


def classify(
    path: PathLike,
    model: Optional[PathLike] = None,
    bpf: Optional[str] = None,
    max_flows: Optional[int] = None,
    *,
    tunnels: Optional[str] = None,
    threads: int = 1,
) -> pa.Table:
    """The flow records of a capture file, as a pyarrow table.

    The parameters are those of :func:`analyze`.

    :raises CaptureError: the capture cannot be opened or read to its end;
        for a capture cut short, the exception's ``table`` attribute holds
        the flows read before.
    :raises ModelError: the model file cannot be used.
    """
    report = analyze(path, model, bpf, max_flows, tunnels=tunnels, threads=threads)
    problem = report.error or ("; ".join(report.failures) if report.failures else None)
    if problem is not None:
        err = CaptureError(problem)
        err.table = report.table  # type: ignore[attr-defined]
        err.stats = report.stats  # type: ignore[attr-defined]
        raise err
    return report.table


def train(labels: Sequence[str], out: Optional[PathLike] = None, notes: str = "") -> str:
    """Trains a model from labelled captures; returns the model file's text.

    :param labels: label specs as for the ``train`` command:
        ``CAPTURE@RESULT.out`` (nDPI), ``CAPTURE@FLOWS.csv``,
        ``CAPTURE=LABEL``, ``ndpi:DIR``, ``ndpi-classic:DIR``;
        ``$SKYPE_DPI_DATASETS`` expands.
    :param out: where to write the model file, if anywhere.
    :param notes: recorded in the model's provenance.
    :raises TrainError: a label spec, label file or capture is unusable.
    """
    text = _native.train(list(labels), notes)
    if out is not None:
        with open(out, "w", encoding="utf-8") as f:
            f.write(text)
    return text


def evaluate(labels: Sequence[str], model: Optional[PathLike] = None) -> Dict[str, Any]:
    """Evaluates a model on labelled captures.

    Returns the evaluation (per set: flows and bytes, true and false
    positives, recall, precision, false-positive rates per flow and per
    byte; every false positive and miss) as a dict, with the ``evaluate``
    command's printed text under ``"text"``.

    :raises TrainError: a label spec, label file or capture is unusable.
    :raises ModelError: the model file cannot be used.
    """
    value, text = _native.evaluate(list(labels), _path(model))
    result: Dict[str, Any] = json.loads(value)
    result["text"] = text
    return result


class Classifier:
    """The streaming classifier: frames in, events out.

    Push frames as they come (``push``), and read the events reached so far
    (``events``): ``verdict`` (a flow recognised as Skype while open, with
    its 5-tuple, kind, confidence and when), ``flow_ended`` and ``revised``
    (a flow's record, the same fields as a table row, under ``"record"``),
    ``endpoint`` (an endpoint recognised as a Skype client).

    >>> c = skype_dpi.Classifier()                          # doctest: +SKIP
    >>> c.push(frame_bytes, ts=1700000000.25, linktype=1)  # doctest: +SKIP
    >>> for e in c.events(): print(e["event"])              # doctest: +SKIP
    """

    def __init__(
        self,
        model: Optional[PathLike] = None,
        max_flows: Optional[int] = None,
        *,
        tunnels: Optional[str] = None,
        name: str = "stream",
    ) -> None:
        """
        :param model: a model file; None for the default.
        :param max_flows: flows held at once.
        :param tunnels: the tunnels opened (as for :func:`analyze`).
        :param name: the ``capture`` field of the records.
        """
        self._inner = _native.Classifier(_path(model), max_flows, tunnels, name)

    def push(
        self, frame: bytes, ts: float, linktype: int = LINKTYPE_ETHERNET, orig_len: Optional[int] = None
    ) -> Optional[str]:
        """Pushes one frame (captured at ``ts`` seconds since the epoch, of
        pcap link type ``linktype``). Returns the reason it was skipped (not
        IP, malformed, ...), or None."""
        return self._inner.push(frame, ts, linktype, orig_len)

    def events(self) -> List[Dict[str, Any]]:
        """Takes the events reached since the last call."""
        return [json.loads(e) for e in self._inner.events()]

    def iter_events(self) -> Iterator[Dict[str, Any]]:
        """Takes the events reached since the last call, one by one."""
        for e in self._inner.events():
            yield json.loads(e)

    def expire(self, now: float) -> None:
        """Ends the flows idle at ``now`` (their records come as events)."""
        self._inner.expire(now)

    def finish(self) -> None:
        """Ends every open flow (their records come as events)."""
        self._inner.finish()

    @property
    def open_flows(self) -> int:
        """Flows held open."""
        return self._inner.open_flows()

    def stats(self) -> Dict[str, Any]:
        """The run's counters (as :attr:`Report.stats`)."""
        return json.loads(self._inner.stats())

    def records(self, events: Sequence[Dict[str, Any]]) -> pa.Table:
        """The records of ``flow_ended`` events as a table of :func:`schema`."""
        rows = [e["record"] for e in events if e.get("event") == "flow_ended"]
        return pa.Table.from_pylist(rows, schema=schema())
