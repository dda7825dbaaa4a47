"""create_app(settings): builds engines, stores and the queue in the lifespan; mounts routers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles
from prometheus_client import CollectorRegistry

from vexam import __version__
from vexam.accounts import api as accounts_api
from vexam.accounts import operator_pages as accounts_operator_pages
from vexam.accounts import operator_policy as accounts_operator_policy
from vexam.accounts import pages as accounts_pages
from vexam.accounts import policy as accounts_policy
from vexam.accounts import service as accounts_service
from vexam.accounts import staff_api
from vexam.accounts import tasks as accounts_tasks
from vexam.accounts.sms import sender_from_settings
from vexam.config import Settings
from vexam.core.auth import authenticate
from vexam.core.clock import Clock, SystemClock
from vexam.core.db import Database
from vexam.core.health import router as health_router
from vexam.core.jobs import InProcessWorker, JobHandler, JobQueue, JobRuntime
from vexam.core.middleware import ClientVersionGate, DeviceCookie, RequestMetrics
from vexam.core.policy import RESOURCE as POLICY_RESOURCE
from vexam.core.policy import PolicyCache
from vexam.core.problems import install_problem_handlers
from vexam.core.security import SecurityHeaders
from vexam.core.storage import BlobStore, blob_store_from_url
from vexam.core.warmup import warm_up
from vexam.core.web import Templates
from vexam.exams import api as exams_api
from vexam.exams import candidate_api as exams_candidate_api
from vexam.exams import pages as exams_pages
from vexam.exams import playback_api as exams_playback_api
from vexam.exams import sitting_api as exams_sitting_api
from vexam.exams import sitting_pages as exams_sitting_pages
from vexam.exams import upload_api as exams_upload_api
from vexam.exams import upload_checks as exams_upload_checks
from vexam.exams import upload_pages as exams_upload_pages
from vexam.exams.payments import provider_from_settings
from vexam.exams.status_lane import LaneCount, StatusPollLane
from vexam.exams.upload_lane import UploadPatchLane
from vexam.exams.upload_memory import UploadMemory
from vexam.identity import api as identity_api
from vexam.identity import pages as identity_pages
from vexam.identity import support_api as identity_support_api
from vexam.identity.engines import IdentityEngines
from vexam.identity.registers import register_from_settings
from vexam.review import api as review_api
from vexam.review import pages as review_pages
from vexam.schools import api as schools_api
from vexam.schools import dashboard_pages as schools_dashboard_pages
from vexam.schools import pages as schools_pages
from vexam.schools import school_api
from vexam.support import api as support_api
from vexam.support import pages as support_pages
from vexam.support import ticket_pages as support_ticket_pages

PACKAGE_DIR = Path(__file__).resolve().parent
TEMPLATE_DIRS = [
    PACKAGE_DIR / "web" / "templates",
    PACKAGE_DIR / "accounts" / "templates",
    PACKAGE_DIR / "identity" / "templates",
    PACKAGE_DIR / "exams" / "templates",
    PACKAGE_DIR / "schools" / "templates",
    PACKAGE_DIR / "support" / "templates",
    PACKAGE_DIR / "review" / "templates",
]


def job_handlers() -> dict[str, JobHandler]:
    """Every domain's jobs by name."""
    return {**accounts_tasks.JOBS, **exams_upload_checks.JOBS}


def build_resources(settings: Settings) -> dict[str, Any]:
    """Pluggable services and engines that requests and jobs use (SMS, ID register, faces)."""
    return {
        "sms_sender": sender_from_settings(settings),
        "id_register": register_from_settings(settings),
        "identity_engines": IdentityEngines(),
        "payment_provider": provider_from_settings(settings),
        POLICY_RESOURCE: PolicyCache(settings, accounts_policy.stored),
    }


def build_store(settings: Settings) -> BlobStore:
    """The blob store named by the settings."""
    return blob_store_from_url(
        settings.storage_url,
        data_dir=settings.data_dir,
        s3_endpoint_url=settings.s3_endpoint_url,
        s3_region=settings.s3_region,
        s3_access_key=settings.s3_access_key,
        s3_secret_key=settings.s3_secret_key,
    )


def build_queue(settings: Settings) -> JobQueue:
    """The job queue named by the settings, knowing every domain's jobs."""
    return JobQueue(
        settings.effective_queue_url,
        settings.queue_name,
        job_handlers(),
        every_minutes=exams_upload_checks.EVERY_MINUTES,
    )


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    in_process_worker: bool = False,
    resources: dict[str, Any] | None = None,
    warm: bool = False,
) -> FastAPI:
    """Build the web application. Nothing connects until the lifespan starts.

    `warm`: the lifespan does the libraries' first-request work before the app serves
    (`vexam.core.warmup`; what `vexam serve` and `vexam demo` use).
    """
    settings = settings or Settings()
    settings.check_safe_to_start()
    clock = clock or SystemClock()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        db = Database.configured(settings)
        store = build_store(settings)
        queue = build_queue(settings)
        queue.runtime = JobRuntime(
            db=db,
            settings=settings,
            clock=clock,
            loop=asyncio.get_running_loop(),
            resources=app.state.resources,
            store=store,
        )
        db.watch(accounts_service.SESSION_TABLES, app.state.principal_memory.forget_principals)
        app.state.db = db
        app.state.queue = queue
        app.state.store = store
        if warm:
            await warm_up(app)
        worker = InProcessWorker(queue) if in_process_worker else None
        if worker:
            worker.start()
        try:
            yield
        finally:
            if worker:
                await asyncio.to_thread(worker.stop)
            await db.dispose()

    app = FastAPI(
        title="vexam",
        version=__version__,
        lifespan=lifespan,
        docs_url="/api/docs",
        redoc_url=None,
        openapi_url="/api/openapi.json",
        dependencies=[Depends(authenticate)],
        # Operators read vexam's own Prometheus metrics (/metrics). FastAPI's native
        # OpenTelemetry, on by default, asked the global providers on every request whether
        # anyone listens.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.clock = clock
    app.state.templates = Templates(TEMPLATE_DIRS)
    app.state.authenticator = accounts_service.resolve_token
    app.state.resources = resources if resources is not None else build_resources(settings)
    policy = app.state.resources.setdefault(
        POLICY_RESOURCE, PolicyCache(settings, accounts_policy.stored)
    )

    async def refresh_policy() -> None:
        db: Database | None = getattr(app.state, "db", None)
        if db is not None:  # from the lifespan on
            await policy.refresh_from(db.sessionmaker)

    app.state.metrics = CollectorRegistry()
    app.state.upload_memory = UploadMemory()
    app.state.principal_memory = app.state.upload_memory

    install_problem_handlers(app)
    app.include_router(health_router)
    # Routes are matched in order: the exam-day calls first (no other route's path overlaps
    # theirs, so the order decides nothing else; a status poll skips ~60 route checks).
    app.include_router(exams_sitting_api.router)
    app.include_router(exams_upload_api.router)
    app.include_router(accounts_api.router)
    app.include_router(accounts_pages.router)
    app.include_router(identity_api.router)
    app.include_router(identity_support_api.router)
    app.include_router(identity_pages.router)
    app.include_router(exams_api.router)
    app.include_router(exams_candidate_api.router)
    app.include_router(schools_api.router)
    app.include_router(school_api.router)
    app.include_router(staff_api.router)
    app.include_router(accounts_operator_pages.router)
    app.include_router(accounts_operator_policy.router)
    app.include_router(exams_pages.router)
    app.include_router(schools_pages.router)
    app.include_router(schools_dashboard_pages.router)
    app.include_router(exams_sitting_pages.router)
    app.include_router(exams_upload_pages.router)
    app.include_router(exams_playback_api.router)
    app.include_router(support_pages.router)
    app.include_router(support_api.router)
    app.include_router(support_ticket_pages.router)
    app.include_router(review_api.router)
    app.include_router(review_pages.router)
    app.mount("/static", StaticFiles(directory=PACKAGE_DIR / "web" / "static"), name="static")

    # Added innermost first: metrics must see the scope the router fills in; the lanes of
    # status polls and PATCHes answer before routing, inside the version gate and the metrics.
    app.state.status_lane = LaneCount()
    app.add_middleware(
        StatusPollLane, memory=app.state.principal_memory, count=app.state.status_lane
    )
    app.add_middleware(
        UploadPatchLane, settings=settings, clock=clock, memory=app.state.upload_memory
    )
    app.add_middleware(RequestMetrics, registry=app.state.metrics)
    app.add_middleware(DeviceCookie, secure=settings.cookie_secure)
    app.add_middleware(
        ClientVersionGate,
        min_version=settings.min_client_version,
        download_url=settings.client_download_url,
        timezone=settings.default_timezone,
        policy=policy,
        refresh=refresh_policy,
    )
    # Outermost: every response, the gate's refusals included, carries the headers.
    app.add_middleware(
        SecurityHeaders, base_url=settings.base_url, hsts_seconds=settings.hsts_seconds
    )
    return app
