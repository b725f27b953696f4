"""Cycle summaries for people (rich tables) and scripts (JSON)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bot.app import CycleReport
from bot.config import Config
from bot.outbox.model import Delivery, State
from bot.store import Store

_STATUS_STYLE = {"ok": "green", "sent": "green", "not-modified": "cyan", "skipped": "dim", "failed": "red",
                 "unknown": "yellow", "retry": "yellow", "expired": "dim", "cancelled": "dim", "lost": "dim"}


def _styled(status: str) -> str:
    style = _STATUS_STYLE.get(status, "")
    return f"[{style}]{status}[/]" if style else status


def print_cycle(console: Console, report: CycleReport) -> None:
    sources = Table("source", "status", "items", "new", "error", title=f"Sources at {report.now:%Y-%m-%d %H:%M %Z}")
    for r in report.refreshed:
        sources.add_row(r.source, _styled(r.status), str(r.fetched), str(r.new), r.error or "")
    console.print(sources)
    if report.planned.matched:
        planned = Table("delivery", "matched", title=f"Planned: {len(report.planned.planned)} new outbox row(s)")
        for key, count in sorted(report.planned.matched.items()):
            planned.add_row(key, str(count))
        console.print(planned)
    sent = Table("recipient", "channel", "kind", "status", "items", "error", title="Deliveries")
    for d in report.delivered:
        sent.add_row(d.recipient, d.channel, d.kind, _styled(d.status), str(d.items), d.error or "")
    if report.delivered:
        console.print(sent)
    else:
        console.print("[dim]Nothing was due to be sent.[/]")


def report_json(report: CycleReport) -> dict[str, Any]:
    return {
        "now": report.now.isoformat(),
        "sources": [asdict(r) for r in report.refreshed],
        "planned": report.planned.planned,
        "matched": report.planned.matched,
        "deliveries": [asdict(d) for d in report.delivered],
    }


def source_rows(config: Config, store: Store) -> list[dict[str, Any]]:
    """Each configured source with what the store knows of it, for `digestbot sources`."""
    rows = []
    for source in config.sources:
        state = store.get_source_state(source.name)
        if not source.enabled:
            status = "disabled"
        elif state.last_fetch_at is None:
            status = "never fetched"
        elif state.consecutive_failures >= config.bot.failure_threshold:
            status = "broken"
        elif state.consecutive_failures:
            status = "failing"
        else:
            status = "ok"
        rows.append({
            "name": source.name, "kind": source.kind, "url": source.url, "status": status,
            "last_success": state.last_success_at.isoformat() if state.last_success_at else None,
            "last_fetch": state.last_fetch_at.isoformat() if state.last_fetch_at else None,
            "consecutive_failures": state.consecutive_failures, "last_error": state.last_error,
            "items_last_fetch": state.last_item_count, "items_max": state.max_item_count,
            "next_due": state.next_due_at.isoformat() if state.next_due_at else None,
            "not_before": state.not_before.isoformat() if state.not_before else None,
        })
    return rows


def print_sources(console: Console, rows: list[dict[str, Any]]) -> None:
    styles = {"ok": "green", "failing": "yellow", "broken": "bold red", "never fetched": "dim", "disabled": "dim"}
    table = Table(title=f"{len(rows)} source(s)")
    for header in ("source", "kind", "status", "last success", "fails", "items", "next due", "last error"):
        table.add_column(header, overflow="fold")  # a narrow terminal wraps a name or a date, never cuts it
    for row in rows:
        status = row["status"]
        table.add_row(escape(row["name"]), row["kind"], f"[{styles[status]}]{status}[/]",
                      _short(row["last_success"]), str(row["consecutive_failures"]),
                      "" if row["items_last_fetch"] is None else str(row["items_last_fetch"]),
                      _next_refresh(row), escape(row["last_error"] or "") if status != "ok" else "")
    console.print(table)


def _next_refresh(row: dict[str, Any]) -> str:
    """When the source is next fetched: its due time, or later where a Retry-After hold (its own, or its host's)
    keeps it waiting, which the table says, so a quiet source that is only being polite is not a mystery."""
    due, held = row["next_due"], row["not_before"]
    if held and (not due or held > due):
        return f"{_short(held)} (held)"
    return _short(due)


def _short(iso: str | None) -> str:
    return iso[:16].replace("T", " ") if iso else ""


def delivery_rows(deliveries: list[Delivery]) -> list[dict[str, Any]]:
    return [{"id": d.id, "kind": d.kind, "channel": d.channel, "recipient": d.recipient, "address": d.address,
             "period": d.period_key, "state": d.state, "attempts": d.attempts, "items": len(d.payload.items),
             "created": d.created_at.isoformat(), "next_attempt": d.next_attempt_at.isoformat(),
             "last_error": d.last_error} for d in deliveries]


def print_deliveries(console: Console, rows: list[dict[str, Any]]) -> None:
    styles = {"pending": "cyan", "claimed": "cyan", "sending": "cyan", "sent": "green", "failed": "red",
              "unknown": "yellow", "expired": "dim", "cancelled": "dim"}
    table = Table("id", "kind", "to", "via", "period", "state", "tries", "next try", "last error",
                  title=f"{len(rows)} deliver{'y' if len(rows) == 1 else 'ies'}")
    for r in rows:
        state = r["state"]
        table.add_row(str(r["id"]), r["kind"], escape(r["recipient"]), r["channel"], r["period"],
                      f"[{styles.get(state, '')}]{state}[/]" if styles.get(state) else state, str(r["attempts"]),
                      _short(r["next_attempt"]) if state == "pending" else "", escape(r["last_error"] or ""))
    console.print(table)
    if not rows:
        console.print("[dim]Nothing pending, failed or unknown.[/]")


def status_report(config: Config, store: Store, *, now: datetime) -> dict[str, Any]:
    """What `digestbot status` shows, as plain data."""
    from bot.outbox.keys import Recipient, recipient_identity

    upcoming = []
    everyone: list[Recipient] = [*config.subscribers, *config.slack_channels]
    for recipient in everyone:
        name, channel, _address = recipient_identity(recipient)
        due = recipient.parsed_schedule.next_due(now, recipient.zone)
        upcoming.append({"recipient": name, "channel": channel, "schedule": str(recipient.parsed_schedule),
                         "timezone": recipient.timezone, "next_due": due.isoformat(),
                         "next_due_local": due.astimezone(recipient.zone).strftime("%a %d %b %H:%M %Z")})
    upcoming.sort(key=lambda u: u["next_due"])
    rows = source_rows(config, store)
    footprint = store.footprint()
    pruned = store.last_pruned()
    return {
        "now": now.isoformat(),
        "database": {"bytes": footprint.bytes, "items": footprint.items, "outbox_rows": footprint.deliveries,
                     "oldest_item": footprint.oldest_item.isoformat() if footprint.oldest_item else None,
                     "oldest_outbox_row": (footprint.oldest_delivery.isoformat()
                                           if footprint.oldest_delivery else None),
                     "retention": config.bot.retention,
                     "last_pruned": pruned.isoformat() if pruned else None},
        "last_cycle": last_cycle.isoformat() if (last_cycle := store.last_cycle()) else None,
        "items_stored": store.item_count(),
        "deliveries": store.delivery_counts(),
        "problems": delivery_rows(store.deliveries((State.FAILED, State.UNKNOWN), limit=10)),
        "failing_sources": [r for r in rows if r["status"] in ("failing", "broken")],
        "sources_fetched": sum(r["status"] != "never fetched" for r in rows),
        "next_due": upcoming,
    }


def print_status(console: Console, report: dict[str, Any]) -> None:
    counts = report["deliveries"]
    last = _short(report["last_cycle"])
    console.print(f"Last cycle: [bold]{f'{last} UTC' if last else 'none yet'}[/] · "
                  f"{report['items_stored']} items stored · outbox: "
                  + (", ".join(f"{n} {state}" for state, n in sorted(counts.items())) or "empty"))
    db = report["database"]
    oldest = min(filter(None, (db["oldest_item"], db["oldest_outbox_row"])), default=None)
    size = f"{db['bytes'] / 2**20:.1f} MB" if db["bytes"] is not None else "size unknown"
    console.print(f"Database: {size} · oldest row {_short(oldest) + ' UTC' if oldest else 'none'} · keeps "
                  f"{escape(db['retention'])} (bot.retention) · last pruned "
                  f"{_short(db['last_pruned']) + ' UTC' if db['last_pruned'] else 'not yet'}")
    if report["failing_sources"]:
        print_sources(console, report["failing_sources"])
    elif report.get("sources_fetched"):
        console.print("[green]All sources are working.[/]")
    elif not last:
        console.print("No source has been fetched yet: `digestbot once` runs a first cycle now.")
    if report["problems"]:
        print_deliveries(console, report["problems"])
    table = Table("recipient", "via", "schedule", "next digest (their time)", "UTC", title="Next digests")
    for u in report["next_due"][:15]:
        table.add_row(escape(u["recipient"]), u["channel"], u["schedule"], u["next_due_local"], _short(u["next_due"]))
    if report["next_due"]:
        console.print(table)
