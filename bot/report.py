"""Cycle summaries for people (rich tables) and scripts (JSON)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from rich.console import Console
from rich.table import Table

from bot.app import CycleReport

_STATUS_STYLE = {"ok": "green", "sent": "green", "not-modified": "cyan", "skipped": "dim", "failed": "red",
                 "unknown": "yellow", "retry": "yellow", "expired": "dim"}


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
