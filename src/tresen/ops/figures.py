"""Figures read from the database at scrape time: job queue depth and age, dead letters,
campaign progress, processes alive. The same in every process, so take max() across them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tresen.db.tables import Campaign, CampaignRecipient, Job
from tresen.db.types import utcnow
from tresen.jobs.queue import DEAD, PENDING, RUNNING
from tresen.ops.processes import alive

ACTIVE_CAMPAIGNS = ("starting", "running", "paused")


class _Families:
    """A one-off collector of families already computed."""

    def __init__(self, families: list[GaugeMetricFamily]):
        self.families = families

    def collect(self) -> Iterator[Any]:
        return iter(self.families)


async def database_figures(sessions: async_sessionmaker[AsyncSession]) -> bytes:
    """The figures as Prometheus text."""
    now = utcnow()
    depth = GaugeMetricFamily(
        "tresen_jobs_due", "Jobs due and waiting for a worker", labels=["kind"]
    )
    age = GaugeMetricFamily(
        "tresen_jobs_oldest_due_seconds", "How long the oldest due job has waited", labels=["kind"]
    )
    running = GaugeMetricFamily("tresen_jobs_running", "Jobs leased by a worker", labels=["kind"])
    dead = GaugeMetricFamily(
        "tresen_jobs_dead", "Dead letters waiting for a person", labels=["kind"]
    )
    recipients = GaugeMetricFamily(
        "tresen_campaign_recipients",
        "Recipients of started, running and paused campaigns by state",
        labels=["state"],
    )
    processes = GaugeMetricFamily(
        "tresen_processes_alive", "Web and worker processes seen recently", labels=["role"]
    )
    async with sessions() as session:
        due = await session.execute(
            select(Job.kind, func.count(), func.min(Job.run_at))
            .where(Job.state == PENDING, Job.run_at <= now)
            .group_by(Job.kind)
        )
        for kind, count, oldest in due:
            depth.add_metric([kind], count)
            age.add_metric([kind], max(0.0, (now - oldest).total_seconds()))
        for state, family in ((RUNNING, running), (DEAD, dead)):
            rows = await session.execute(
                select(Job.kind, func.count()).where(Job.state == state).group_by(Job.kind)
            )
            for kind, count in rows:
                family.add_metric([kind], count)
        progress = await session.execute(
            select(CampaignRecipient.state, func.count())
            .join(Campaign, Campaign.id == CampaignRecipient.campaign_id)
            .where(Campaign.state.in_(ACTIVE_CAMPAIGNS))
            .group_by(CampaignRecipient.state)
        )
        for state, count in progress:
            recipients.add_metric([state], count)
        roles: dict[str, int] = {}
        for process in await alive(session):
            roles[process.role] = roles.get(process.role, 0) + 1
        for role, count in sorted(roles.items()):
            processes.add_metric([role], count)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families([depth, age, running, dead, recipients, processes]))
    return generate_latest(registry)
