"""A tracked event reaches the timeline and enrols the customer into a journey while a real worker runs."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time

import httpx
from sqlalchemy import select

from kizuna.auth.permissions import Actor
from kizuna.db import new_session
from kizuna.events.models import Event
from kizuna.ingest import sources
from kizuna.journeys import service as journeys
from kizuna.journeys.models import JourneyEnrollment

MARKETER = Actor(label="marketer@example.com", role="marketer", user_id=None, origin="api")
STEPS = [{"id": "t", "type": "tag", "add": ["ordered"], "next": "x"}, {"id": "x", "type": "exit"}]


def test_tracked_event_triggers_a_journey_through_a_running_worker(live_server, db, tmp_path) -> None:  # noqa: ANN001
    with new_session(db) as s:
        _, key = sources.create_source(s, actor=Actor.system("test"), name="site")
        journeys.apply(
            s,
            actor=MARKETER,
            definition={
                "name": "After an order",
                "trigger": {"type": "event", "event": "Order Completed"},
                "start": "t",
                "steps": STEPS,
            },
        )
        s.commit()
    auth = {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}
    # The customer exists before the event, as a signed-in shopper would.
    assert httpx.post(f"{live_server}/v1/identify", json={"userId": "u-1"}, headers=auth).status_code == 200
    env = {
        **os.environ,
        "KIZUNA_DATABASE_URL": db.url.render_as_string(hide_password=False),
        "KIZUNA_HOME": str(tmp_path),
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "kizuna", "worker", "--poll", "0.2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        time.sleep(3)  # the worker's start (imports, first poll) is not what is measured
        assert worker.poll() is None, worker.stderr.read().decode() if worker.stderr else ""
        sent = time.monotonic()
        r = httpx.post(f"{live_server}/v1/track", json={"userId": "u-1", "event": "Order Completed"}, headers=auth)
        assert r.status_code == 200 and r.json()["accepted"] == 1
        on_timeline = enrolled = None
        while time.monotonic() - sent < 30 and enrolled is None:
            with new_session(db) as s:
                if on_timeline is None and s.scalar(select(Event.id).where(Event.type == "Order Completed")):
                    on_timeline = time.monotonic() - sent
                if s.scalar(select(JourneyEnrollment.id)):
                    enrolled = time.monotonic() - sent
            time.sleep(0.02)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    assert on_timeline is not None and enrolled is not None, "the journey did not enrol the customer within 30 s"
    print(f"\nevent on the timeline after {on_timeline * 1000:.0f} ms, enrolled after {enrolled * 1000:.0f} ms")
