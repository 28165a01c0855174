"""`edi pull`: the PlanSource API into a snapshot folder in the export-directory format.

    <out>/subscribers.json    [ {page 1 envelope}, {page 2 envelope}, ... ]  (bytes as sent)
    <out>/dependents.json
    <out>/coverages.json
    <out>/meta/coverage.json  /coverage/meta: termination reasons
    <out>/meta/dependent.json /dependent/meta: relationship codes
    <out>/manifest.json       counts per endpoint, UTC time, API base, SHA-256 per file

Pages are written as they arrive, in page order, so memory does not grow with the number of
pages; ids are checked for duplicates in a scratch SQLite table for the same reason. Everything
is written into a dot-prefixed folder beside `<out>` (never "the newest snapshot") and renamed
to `<out>` only when complete; a failed or interrupted pull removes it.

Incremental pulls: `since` is sent as `updated_since=YYYY-MM-DD` on the three record endpoints
(PlanSource publishes no incremental parameter for them; this is the name the sandbox honours).
Such a snapshot holds only changed records; its manifest says `incremental: true`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, BinaryIO

import httpx
from pydantic import BaseModel, ConfigDict, Field

from edi.errors import PlanSourceApiError, UsageError
from edi.plansource.client import Credentials, Page, PlanSourceClient, RetryPolicy
from edi.plansource.client import credentials_from_settings as _credentials_from_settings
from edi.workspace import PlanSourceSettings

RECORD_ENDPOINTS = {
    "subscribers": "/subscribers",
    "dependents": "/dependents",
    "coverages": "/coverages",
}
META_ENDPOINTS = {"coverage": "/coverage/meta", "dependent": "/dependent/meta"}
SINCE_PARAM = "updated_since"
MANIFEST = "manifest.json"
LEDGER = ".ids.sqlite"

# (endpoint name, records so far, total records when known)
ProgressCallback = Callable[[str, int, int | None], None]


class EndpointSummary(BaseModel):
    model_config = ConfigDict(frozen=True)

    endpoint: str
    file: str
    records: int
    pages: int


class PullManifest(BaseModel):
    """`manifest.json`; `folder` is where the snapshot was published (not written to the file)."""

    model_config = ConfigDict(frozen=True)

    pulled_at: datetime
    api_base: str
    incremental: bool
    since: date | None
    since_param: str | None
    per_page: int
    concurrency: int
    endpoints: dict[str, EndpointSummary]
    files: dict[str, str] = Field(description="relative path → SHA-256 of the bytes")
    folder: Path = Field(exclude=True)

    @property
    def counts(self) -> dict[str, int]:
        return {name: summary.records for name, summary in self.endpoints.items()}


class _PagedFile:
    """`[` + page envelopes separated by `,` + `]`, hashed as written."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stream: BinaryIO = path.open("wb")
        self._sha = hashlib.sha256()
        self.pages = 0
        self._write(b"[")

    def _write(self, data: bytes) -> None:
        self._stream.write(data)
        self._sha.update(data)

    def add(self, envelope: bytes) -> None:
        self._write((b",\n" if self.pages else b"\n") + envelope.strip())
        self.pages += 1

    def close(self) -> str:
        self._write(b"\n]\n")
        self._stream.flush()
        os.fsync(self._stream.fileno())
        self._stream.close()
        return self._sha.hexdigest()

    def abandon(self) -> None:
        self._stream.close()


class _IdLedger:
    """Every record id seen, per endpoint, on disk: duplicates across pages are named."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.executescript(
            "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;"
            "CREATE TABLE ids (kind TEXT, id TEXT, page INTEGER, PRIMARY KEY (kind, id))"
            " WITHOUT ROWID;"
        )
        # One transaction for the whole scratch table (never committed: the file is thrown
        # away); autocommit would make every id its own write.
        self._db.execute("BEGIN")

    def close(self) -> None:
        self._db.close()

    def check_page(self, kind: str, page: Page) -> None:
        ids = [_record_id(page, position, record) for position, record in enumerate(page.records)]
        _no_duplicates_within(kind, page, ids)
        rows = [(kind, record_id, page.number) for record_id in ids]
        try:
            self._db.executemany("INSERT INTO ids VALUES (?, ?, ?)", rows)
        except sqlite3.IntegrityError:
            self._name_duplicate(kind, page, ids)
            raise

    def _name_duplicate(self, kind: str, page: Page, ids: list[str]) -> None:
        """The slow path, taken once: which id of this page an earlier page already had."""
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            seen = self._db.execute(
                f"SELECT id, page FROM ids WHERE kind = ? AND page != ? AND id IN ({marks})"
                " LIMIT 1",
                [kind, page.number, *chunk],
            ).fetchone()
            if seen:
                _duplicate(kind, page, seen[0], seen[1])


def _where(page: Page) -> str:
    return f"GET {page.endpoint} page {page.number}"


def _record_id(page: Page, position: int, record: Any) -> str:
    record_id = record.get("id") if isinstance(record, dict) else None
    if record_id is None or record_id == "" or isinstance(record_id, bool | dict | list | float):
        before = page.records[position - 1].get("id") if position else None
        after_text = f", after id={before}" if before not in (None, "") else ""
        shape = "has no usable id" if isinstance(record, dict) else "is not an object"
        raise PlanSourceApiError(
            "plansource-record-without-id",
            f"{_where(page)}: record #{position + 1} on the page {shape}{after_text}",
            hint="Every PlanSource record carries an id; the pull was not published.",
            record_ids=[str(before)] if before not in (None, "") else [],
            details=[
                f"endpoint={page.endpoint}",
                f"page={page.number}",
                f"position={position + 1}",
            ],
        )
    return str(record_id)


def _no_duplicates_within(kind: str, page: Page, ids: Sequence[str]) -> None:
    seen: set[str] = set()
    for record_id in ids:
        if record_id in seen:
            _duplicate(kind, page, record_id, page.number)
        seen.add(record_id)


def _duplicate(kind: str, page: Page, record_id: str, first_page: int) -> None:
    raise PlanSourceApiError(
        "plansource-duplicate-id",
        f"{_where(page)}: {kind[:-1]} id={record_id} was already on page {first_page}",
        hint="The pages overlap (data changed mid-pull, or the API ignored `page`); pull again.",
        record_ids=[record_id],
        details=[f"endpoint={page.endpoint}", f"page={page.number}", f"first_page={first_page}"],
    )


def _pull_records(
    client: PlanSourceClient,
    kind: str,
    folder: Path,
    params: dict[str, str | int],
    ledger: _IdLedger,
    progress: ProgressCallback | None,
) -> tuple[EndpointSummary, str]:
    endpoint = RECORD_ENDPOINTS[kind]
    target = _PagedFile(folder / f"{kind}.json")
    records = 0
    try:
        for page in client.pages(endpoint, params):
            ledger.check_page(kind, page)
            target.add(page.raw)
            records += len(page.records)
            if progress is not None:
                progress(kind, records, page.total)
    except BaseException:
        target.abandon()
        raise
    digest = target.close()
    return EndpointSummary(
        endpoint=endpoint, file=target.path.name, records=records, pages=target.pages
    ), digest


def _pull_meta(client: PlanSourceClient, name: str, folder: Path) -> tuple[EndpointSummary, str]:
    endpoint = META_ENDPOINTS[name]
    envelope = client.fetch(endpoint)
    target = folder / "meta" / f"{name}.json"
    target.parent.mkdir(exist_ok=True)
    target.write_bytes(envelope.raw)
    data = envelope.data
    # A lookup is a list, or an object of lists (`termination_reasons`): count the entries.
    lists = data.values() if isinstance(data, dict) else [data]
    count = sum(len(entries) for entries in lists if isinstance(entries, list))
    summary = EndpointSummary(endpoint=endpoint, file=f"meta/{name}.json", records=count, pages=1)
    return summary, hashlib.sha256(envelope.raw).hexdigest()


def _check_target(final: Path) -> None:
    """An existing `--out` may be empty or a previous snapshot (replaced); nothing else."""
    if not final.exists():
        return
    if final.is_dir() and (not any(final.iterdir()) or (final / MANIFEST).exists()):
        return
    raise UsageError(
        "pull-out-not-empty",
        f"{final} exists and is not an earlier snapshot",
        hint="Pass an empty or new folder to --out; a pull never overwrites other files.",
    )


def _publish(staging: Path, final: Path) -> None:
    """Rename into place; an earlier snapshot under that name is moved aside, then removed."""
    replaced: Path | None = None
    if final.exists() and any(final.iterdir()):
        replaced = final.parent / f".{final.name}.replaced-{os.getpid()}"
        final.rename(replaced)
    elif final.exists():
        final.rmdir()
    staging.rename(final)
    if replaced is not None:
        shutil.rmtree(replaced, ignore_errors=True)


def _write_manifest(folder: Path, manifest: PullManifest) -> None:
    path = folder / MANIFEST
    with path.open("w", encoding="utf-8") as stream:
        stream.write(manifest.model_dump_json(indent=2) + "\n")
        stream.flush()
        os.fsync(stream.fileno())


def pull(
    settings: PlanSourceSettings,
    out_dir: Path,
    since: date | None = None,
    progress: ProgressCallback | None = None,
    *,
    credentials: Credentials | None = None,
    transport: httpx.BaseTransport | None = None,
    retry: RetryPolicy | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> PullManifest:
    """Pulls records and meta lookups into `out_dir`, published only when complete and checked.

    `credentials` default to the workspace settings (secret env var or private key file);
    `transport` and `retry` replace the network and the retry timing (tests)."""
    _check_target(out_dir)
    credentials = credentials or _credentials_from_settings(settings)
    started = now().astimezone(UTC)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    try:
        with PlanSourceClient(settings, credentials, transport=transport, retry=retry) as client:
            manifest = _pull_into(client, staging, since, progress)
        manifest = manifest.model_copy(update={"pulled_at": started, "folder": out_dir})
        _write_manifest(staging, manifest)
        _publish(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def _pull_into(
    client: PlanSourceClient,
    staging: Path,
    since: date | None,
    progress: ProgressCallback | None,
) -> PullManifest:
    params: dict[str, str | int] = {SINCE_PARAM: since.isoformat()} if since else {}
    endpoints: dict[str, EndpointSummary] = {}
    files: dict[str, str] = {}
    ledger = _IdLedger(staging / LEDGER)
    try:
        for kind in RECORD_ENDPOINTS:
            summary, digest = _pull_records(client, kind, staging, params, ledger, progress)
            endpoints[kind], files[summary.file] = summary, digest
        for name in META_ENDPOINTS:
            summary, digest = _pull_meta(client, name, staging)
            endpoints[f"{name}_meta"], files[summary.file] = summary, digest
    finally:
        ledger.close()
        (staging / LEDGER).unlink(missing_ok=True)
    settings = client.settings
    return PullManifest(
        pulled_at=datetime.now(UTC),
        api_base=settings.base_url,
        incremental=since is not None,
        since=since,
        since_param=SINCE_PARAM if since else None,
        per_page=settings.per_page,
        concurrency=settings.concurrency,
        endpoints=endpoints,
        files=files,
        folder=staging,
    )


def read_manifest(folder: Path) -> PullManifest:
    """A published snapshot's manifest (for `edi snapshots list`)."""
    raw = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    return PullManifest.model_validate({**raw, "folder": folder})


def snapshot_name(moment: datetime) -> str:
    """`20260124T101500Z`: sorts by time, which is how the newest snapshot is found."""
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def new_snapshot_dir(snapshots_dir: Path, moment: datetime) -> Path:
    base = snapshot_name(moment)
    candidate, suffix = snapshots_dir / base, 1
    while candidate.exists():
        suffix += 1
        candidate = snapshots_dir / f"{base}-{suffix}"
    return candidate
