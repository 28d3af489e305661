"""The predictions log: one row per prediction, CSV, JSON lines or Parquet by extension.

CSV and JSON lines are flushed row by row, so a session cut off by a crash
keeps every prediction made before it. Parquet is columnar and only readable
once its footer is written: rows are buffered into row groups and the file is
complete after ``close()``; choose CSV or JSON lines when a crash must not
cost anything.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from core.health import StreamHealth
from core.prediction import Prediction

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}

#: columns that hold text, as do the "mask_*" columns; every other column but "window" is a float
TEXT_COLUMNS = ("model", "label")


class PredictionLogError(ValueError):
    """The log cannot be written where asked."""


def log_format(path: Path) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise PredictionLogError(
            f"predictions file {str(path)!r}: unknown extension {path.suffix!r}; "
            f"use one of {', '.join(FORMATS)}"
        )
    return fmt


class PredictionLog:
    """Writes ``Prediction.flat()`` rows under a fixed list of columns.

    ``columns`` should list every column the models can fill (see
    ``core.prediction.prediction_columns``); without it the first row decides.
    An existing file is never overwritten.
    """

    def __init__(self, path: Path | str, columns: list[str] | None = None, row_group: int = 512):
        self.path = Path(path)
        self.format = log_format(self.path)
        if self.path.exists():
            raise PredictionLogError(
                f"predictions file {str(self.path)!r} already exists; "
                "choose another name or remove it (affectlab never overwrites a log)"
            )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.columns = list(columns) if columns else None
        self.rows_written = 0
        self._row_group = row_group
        self._pending: list[dict[str, Any]] = []
        self._file = (
            None if self.format == "parquet" else self.path.open("w", newline="", encoding="utf-8")
        )
        self._csv: csv.DictWriter | None = None
        self._parquet = None  # pyarrow.parquet.ParquetWriter, opened on the first row group

    def on_prediction(self, prediction: Prediction) -> None:
        row = prediction.flat()
        if self.columns is None:
            self.columns = list(row)
        if self.format == "csv":
            self._write_csv(row)
        elif self.format == "jsonl":
            assert self._file is not None
            clean = {k: _json_value(row.get(k)) for k in self.columns}
            self._file.write(json.dumps(clean) + "\n")
            self._file.flush()
        else:
            self._pending.append(row)
            if len(self._pending) >= self._row_group:
                self._flush_parquet()
        self.rows_written += 1

    def on_health(self, health: dict[str, StreamHealth], now: float) -> None:
        """Health is not logged here; the session statistics carry it."""

    def close(self) -> None:
        if self.format == "parquet":
            if self._pending or self._parquet is None:
                self._flush_parquet()
            if self._parquet is not None:
                self._parquet.close()
                self._parquet = None
        elif self._file is not None:
            if self.format == "csv" and self._csv is None and self.columns:
                # no prediction came: a header-only table still reads as one (a 0-byte CSV
                # does not, e.g. pandas raises EmptyDataError)
                csv.DictWriter(self._file, fieldnames=self.columns).writeheader()
            self._file.close()
            self._file = None

    def discard(self) -> None:
        """Close, and remove the file when it holds no prediction: a session that failed to
        start leaves no empty log behind to block its rerun (a log is never overwritten)."""
        self.close()
        if self.rows_written == 0:
            self.path.unlink(missing_ok=True)

    # ------------------------------------------------------------ formats
    def _write_csv(self, row: dict[str, Any]) -> None:
        assert self._file is not None and self.columns is not None
        if self._csv is None:
            self._csv = csv.DictWriter(self._file, fieldnames=self.columns, extrasaction="ignore")
            self._csv.writeheader()
        self._csv.writerow(row)
        self._file.flush()

    def _schema(self):
        import pyarrow as pa

        assert self.columns is not None
        fields = []
        for c in self.columns:
            if c in TEXT_COLUMNS or c.startswith("mask_"):
                fields.append(pa.field(c, pa.string()))
            elif c == "window":
                fields.append(pa.field(c, pa.int64()))
            else:
                fields.append(pa.field(c, pa.float64()))
        return pa.schema(fields)

    def _flush_parquet(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self.columns is None:
            self.columns = ["model", "window", "t_end", "published_at"]
        schema = self._schema()
        if self._parquet is None:
            self._parquet = pq.ParquetWriter(str(self.path), schema)
        table = pa.Table.from_pylist(
            [{c: row.get(c) for c in self.columns} for row in self._pending], schema=schema
        )
        self._parquet.write_table(table)
        self._pending.clear()


def _json_value(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v
