"""How far each `newsagg import-warc` got in each WARC file, so a killed import resumes where it stopped."""

from __future__ import annotations

import sqlalchemy as sa

from pipeline.storage.base import StoreBase, utc_now
from pipeline.storage.schema import warc_imports


class WarcImportStore(StoreBase):
    """Per WARC file (known by ``file_key``, a digest of its first bytes): the next offset to read, and whether it is done."""

    def warc_import_progress(self, file_key: str) -> tuple[int, bool]:
        """(the offset to go on from, whether the file was imported to its end); (0, False) for a new file."""
        with self._read() as conn:
            row = conn.execute(
                sa.select(warc_imports.c.next_offset, warc_imports.c.done).where(warc_imports.c.file_key == file_key)
            ).first()
        return (0, False) if row is None else (int(row.next_offset), bool(row.done))

    def record_warc_import(self, file_key: str, path: str, next_offset: int, *, done: bool = False) -> None:
        values = {"path": path, "next_offset": next_offset, "done": done, "updated_at": utc_now()}
        stmt = self._insert(warc_imports).values(file_key=file_key, **values)
        with self._tx(f"the import progress of {path}") as conn:
            conn.execute(stmt.on_conflict_do_update(index_elements=["file_key"], set_=values))
