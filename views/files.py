"""Files the bot uploads: CSVs written row by row into a spooled temporary file (in memory while
small, on disk past SPOOL_BYTES), so an export of any size never sits in memory twice as rows and text."""

from __future__ import annotations

import csv
import io
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from typing import IO, Any, Generic, TypeVar

SPOOL_BYTES = 1 << 20


def csv_file(header: Sequence[str], rows: Iterable[Sequence[Any]], lineterminator: str = "\r\n") -> IO[bytes]:
    """`header`, then each row as it comes (`rows` may be a generator over a database cursor); the
    file is returned rewound, for the caller to upload and close."""
    out: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 (the caller closes it)
    text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=True)
    writer = csv.writer(text, lineterminator=lineterminator)
    writer.writerow(header)
    writer.writerows(rows)
    text.detach()  # leave `out` open
    out.seek(0)
    return out


T = TypeVar("T")


class Counted(Generic[T]):
    """Passes the items of an iterable through, counting them (a streamed export's row count)."""

    def __init__(self, items: Iterable[T]) -> None:
        self._items = items
        self.count = 0

    def __iter__(self) -> Iterator[T]:
        for item in self._items:
            self.count += 1
            yield item
