"""What the console shows, as plain JSON-able values: read through the existing APIs (the
delivery log, profiles, schedules, the change preview) and reconciliation's discrepancies (the
SQLite file opened read-only, or the shared store). PlanSource ids, control numbers, codes,
counts and hashes only: never names, SSNs, birthdates or addresses.
"""

from __future__ import annotations

import io
import json
import sqlite3
from collections.abc import Callable
from contextlib import closing
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

import transmit
from edi import delivery_config
from edi.console.summary import safe_member_id, summarize_834
from edi.overview import FAILURE_EVENTS, RUN_EVENTS, ack_target, ack_verdict, carrier_overview
from edi.profiles import CarrierProfile, load_profile, profile_names
from edi.schedules import Schedule, load_schedules
from edi.workspace import Workspace

# Runs that concern a file: the deliveries page lists these.
DELIVERY_EVENTS = ("delivery", *FAILURE_EVENTS)
ENCRYPTED_SUFFIXES = (".pgp", ".gpg", ".asc")


class NotFound(LookupError):
    """A delivery or carrier the console does not know (HTTP 404)."""


def day_bounds(since: date | None, until: date | None) -> tuple[datetime | None, datetime | None]:
    start = datetime.combine(since, time.min, UTC) if since else None
    end = datetime.combine(until, time.max, UTC) if until else None
    return start, end


class ConsoleData:
    def __init__(self, workspace: Workspace, now: Callable[[], datetime]) -> None:
        self.workspace = workspace
        self.now = now

    # Sources -------------------------------------------------------------------------------

    def log(self) -> transmit.DeliveryLog:
        return delivery_config.delivery_log(self.workspace)

    def carrier_names(self) -> list[str]:
        return profile_names(self.workspace)

    def profile(self, carrier: str) -> CarrierProfile:
        if carrier not in self.carrier_names():
            raise NotFound(f"no carrier profile {carrier!r}")
        return load_profile(self.workspace, carrier)

    def _identifiers(self) -> dict[str, str]:
        return {name: self.profile(name).members.identifier for name in self.carrier_names()}

    def schedules(self) -> dict[str, Schedule]:
        return {s.carrier: s for s in load_schedules(self.workspace)}

    def workspace_facts(self) -> dict[str, Any]:
        settings = self.workspace.settings
        name = getattr(settings, "name", None) or self.workspace.home.name
        return {
            "name": str(name),
            "home": str(self.workspace.home),
            "sample_data": bool(settings.sample_data),
            "generated_at": self.now().isoformat(timespec="seconds"),
        }

    # Overview ------------------------------------------------------------------------------

    def verification(self) -> dict[str, Any]:
        report = self.log().verify()
        return {
            "ok": report.ok,
            "status": "intact" if report.ok else "TAMPERED",
            "entries": report.entries,
            "checkpoints": report.checkpoints,
            "first_bad_entry": report.first_bad_seq,
            "problem": report.problem,
        }

    def carriers(self) -> list[dict[str, Any]]:
        return self.carrier_rows(self.verification(), self.discrepancies())

    def carrier_rows(
        self, verification: dict[str, Any], discrepancies: list[dict[str, Any]] | None
    ) -> list[dict[str, Any]]:
        entries = self.log().entries()
        schedules = self.schedules()
        now = self.now()
        rows = []
        for name in self.carrier_names():
            profile = self.profile(name)
            own = [e for e in entries if e.get("carrier") == name]
            row = carrier_overview(name, own, schedules.get(name), now)
            open_count = (
                None
                if discrepancies is None
                else sum(1 for d in discrepancies if d["carrier"] == name and d["status"] == "open")
            )
            row.update(
                display_name=profile.display_name,
                open_discrepancies=open_count,
                log_status=verification["status"],
            )
            rows.append(row)
        return rows

    # Deliveries ----------------------------------------------------------------------------

    def _all_deliveries(self) -> list[dict[str, Any]]:
        entries = self.log().entries()
        by_seq = {entry.seq: entry for entry in entries}
        answers: dict[int, list[transmit.LogEntry]] = {}
        for entry in entries:
            if isinstance(entry.get("delivery_entry"), int):
                answers.setdefault(entry.get("delivery_entry"), []).append(entry)

        def ack(entry: transmit.LogEntry, carrier: str) -> str:
            target = ack_target(entry)
            sent = by_seq.get(target, entry)
            when = datetime.fromisoformat(str(sent.get("recorded_at")))
            return ack_verdict(answers.get(target, []), when, windows.get(carrier), now)

        pending: dict[str, list[transmit.LogEntry]] = {}
        windows = {name: s.ack_window for name, s in self.schedules().items()}
        now = self.now()
        rows = []
        for entry in entries:
            carrier = str(entry.get("carrier", ""))
            event = entry.get("event")
            if event == "attempt":
                pending.setdefault(carrier, []).append(entry)
                continue
            if event not in RUN_EVENTS:
                continue
            attempts = pending.pop(carrier, [])
            if event not in DELIVERY_EVENTS:
                continue
            # A failed delivery's entry has no hashes of its own; its attempts carry them.
            tried = attempts[-1] if attempts else None

            def fact(key: str, entry: transmit.LogEntry = entry, tried: Any = tried) -> Any:
                value = entry.get(key)
                return tried.get(key) if value is None and tried is not None else value

            rows.append(
                {
                    "seq": entry.seq,
                    "recorded_at": entry.get("recorded_at"),
                    "carrier": carrier,
                    "event": event,
                    "outcome": entry.get("outcome"),
                    "failed": event in FAILURE_EVENTS,
                    "file_id": entry.get("file_id"),
                    "file_type": fact("file_type"),
                    "isa13": entry.get("isa13"),
                    "gs06": entry.get("gs06"),
                    "st02": entry.get("st02"),
                    "member_count": entry.get("member_count"),
                    "coverage_count": entry.get("coverage_count"),
                    "attempts": len(attempts),
                    "attempt_entries": [a.seq for a in attempts],
                    "remote_path": entry.get("remote_final_path"),
                    "hashes": {
                        "plaintext_sha256": fact("plaintext_sha256"),
                        "ciphertext_sha256": fact("ciphertext_sha256"),
                        "entry_hash": entry.entry_hash,
                    },
                    "ack": ack(entry, carrier) if event == "delivery" else None,
                    "error_code": entry.get("error_code"),
                    "error_message": entry.get("error_message"),
                }
            )
        return rows

    def deliveries(
        self, carrier: str | None = None, since: date | None = None, until: date | None = None
    ) -> list[dict[str, Any]]:
        start, end = day_bounds(since, until)
        found = []
        for row in self._all_deliveries():
            when = datetime.fromisoformat(str(row["recorded_at"]))
            if (
                (carrier and row["carrier"] != carrier)
                or (start and when < start)
                or (end and when > end)
            ):
                continue
            found.append(row)
        found.reverse()  # newest first
        return found

    def delivery(self, seq: int) -> dict[str, Any]:
        row = next((r for r in self._all_deliveries() if r["seq"] == seq), None)
        if row is None:
            raise NotFound(f"no delivery at log entry {seq}")
        log = self.log()
        related = set(row["attempt_entries"]) | {seq}
        entries = [
            entry_view(e)
            for e in log.entries(carrier=row["carrier"])
            if e.seq in related or e.get("delivery_entry") == seq
        ]
        plaintext = self._plaintext(row)
        identifier = self._identifiers().get(row["carrier"])
        return {
            **row,
            "entries": entries,
            "summary": summarize_834(plaintext, identifier) if plaintext else None,
            "summary_source": str(plaintext.relative_to(self.workspace.home))
            if plaintext and plaintext.is_relative_to(self.workspace.home)
            else (str(plaintext) if plaintext else None),
        }

    def _plaintext(self, row: dict[str, Any]) -> Path | None:
        """The validated 834 the entry recorded, if it is still on this machine: beside the
        outbox copy or in the workspace's out/ folder, and only when its SHA-256 matches."""
        digest = row["hashes"]["plaintext_sha256"]
        if not digest or not row["file_id"]:
            return None
        name = Path(str(row["file_id"])).name
        carrier = Path(str(row["carrier"])).name
        candidates: list[Path] = []
        outbox = self.workspace.state_dir / "outbox" / carrier / Path(str(digest)).name
        if outbox.is_dir():
            candidates.extend(
                p for p in sorted(outbox.iterdir()) if p.suffix not in ENCRYPTED_SUFFIXES
            )
        candidates.append(self.workspace.home / "out" / carrier / name)
        for candidate in candidates:
            if candidate.is_file() and transmit.sha256_file(candidate) == digest:
                return candidate
        return None

    # Log -----------------------------------------------------------------------------------

    def checkpoints(self) -> list[dict[str, Any]]:
        try:
            points = self.log().checkpoints()
        except transmit.LogError:
            return []
        return [
            {
                "entry_count": p.count,
                "head_hash": p.head,
                "signed_at": p.signed_at,
                "signature": p.signature,
                "prev_hash": p.prev,
            }
            for p in points
        ]

    def public_key(self) -> str | None:
        log = self.log()
        # Asking a log without a key for its public key would create one: read-only here.
        return log.export_public_key() if log.signing_key_path.exists() else None

    def log_info(self) -> dict[str, Any]:
        log = self.log()
        entries = log.entries()
        checkpoints = self.checkpoints()
        head = entries[-1] if entries else None
        return {
            "verification": self.verification(),
            "head": {"count": head.seq, "hash": head.entry_hash} if head else None,
            "newest_checkpoint": checkpoints[-1] if checkpoints else None,
            "checkpoints": checkpoints,
            "public_key": self.public_key(),
            "database": log.where,
            "tables": {"entries": log.tables[0], "checkpoints": log.tables[1]},
            "events": _count_by(entries, "event"),
        }

    def export(self, fmt: str) -> str:
        log = self.log()
        stream = io.StringIO()
        (log.export_csv if fmt == "csv" else log.export_json)(stream, log.entries())
        return stream.getvalue()

    # Discrepancies -------------------------------------------------------------------------

    def discrepancies(self) -> list[dict[str, Any]] | None:
        """None when reconciliation has not run here yet."""
        rows = self._stored_discrepancies()
        if rows is None:
            return None
        identifiers = self._identifiers()
        found = []
        for item in rows:
            item["member_id"] = safe_member_id(
                item["member_id"], identifiers.get(str(item["carrier"]))
            )
            item["notes"] = _notes(item["notes"])
            found.append(item)
        return found

    def _stored_discrepancies(self) -> list[dict[str, Any]] | None:
        """The contract's columns, by kind, carrier and first seen; the SQLite file is opened
        read-only (the console never creates it), the shared store is only read."""
        from edi import stores
        from edi.discrepancies import COLUMNS, store_path

        if stores.shared(self.workspace) is not None:
            store = stores.discrepancies(self.workspace)
            if not store.runs():
                return None
            rows = [{name: row[name] for name in COLUMNS} for row in store.select(status="all")]
            return sorted(rows, key=lambda r: (r["kind"], r["carrier"], r["first_seen"], r["id"]))
        path = store_path(self.workspace.state_dir)
        if not path.is_file():
            return None
        try:
            with closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)) as db:
                found = db.execute(
                    f"SELECT {', '.join(COLUMNS)} FROM discrepancies "
                    "ORDER BY kind, carrier, first_seen, id"
                ).fetchall()
        except sqlite3.OperationalError:
            return None
        return [dict(zip(COLUMNS, row, strict=True)) for row in found]

    def discrepancy_groups(self) -> dict[str, Any]:
        items = self.discrepancies()
        if items is None:
            return {"reconciled": False, "groups": {}, "summary": {}}
        groups: dict[str, list[dict[str, Any]]] = {}
        for item in items:
            groups.setdefault(str(item["kind"]), []).append(item)
        summary = _count_by_key(items, "status")
        return {"reconciled": True, "groups": groups, "summary": summary}

    # Diff preview --------------------------------------------------------------------------

    def diff(self, carrier: str, as_of: date | None = None) -> dict[str, Any]:
        from edi.pipeline import preview

        self.profile(carrier)
        effective = as_of or self.now().date()
        changes = preview(self.workspace, carrier, now=self.now(), as_of=effective)
        summary = {k: v for k, v in changes.summary().items() if k != "members"}
        rows = [
            {
                "kind": change.kind,
                "subscriber_id": change.member.subscriber_id,
                "dependent_id": change.member.dependent_id,
                "member": change.member.ref,
                "ins03": change.member.maintenance,
                "ins04": change.member.reason or "",
                "changed_lines": change.changed_lines,
                "demographics_changed": change.demographics_changed,
                "lines": [
                    {
                        "maintenance": line.maintenance,
                        "insurance_line": line.insurance_line,
                        "plan": line.plan_code,
                    }
                    for line in change.member.coverages
                ],
            }
            for change in changes.changes
        ]
        return {
            "carrier": carrier,
            "as_of": effective.isoformat(),
            **summary,
            "members": rows,
        }


def entry_view(entry: transmit.LogEntry) -> dict[str, Any]:
    return {**entry.body, "prev_hash": entry.prev_hash, "entry_hash": entry.entry_hash}


def _notes(raw: object) -> list[str]:
    if raw is None or raw == "":
        return []
    try:
        parsed = raw if isinstance(raw, list) else json.loads(str(raw))  # the store: a list
    except json.JSONDecodeError:
        return [str(raw)]
    if isinstance(parsed, list):
        return [n if isinstance(n, str) else json.dumps(n, sort_keys=True) for n in parsed]
    return [str(parsed)]


def _count_by(entries: list[transmit.LogEntry], key: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for entry in entries:
        value = str(entry.get(key, "-"))
        counts[value] = counts.get(value, 0) + 1
    return dict(sorted(counts.items()))


def _count_by_key(items: list[dict[str, Any]], key: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in items:
        value = str(item.get(key) or "-")
        counts[value] = counts.get(value, 0) + 1
    return dict(sorted(counts.items()))
