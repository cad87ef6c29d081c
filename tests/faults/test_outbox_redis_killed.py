"""Redis SIGKILLed during a burst of orders: every order's delivery mail still arrives, exactly once.

Before the outbox, the mail jobs queued when Redis died were lost with it, and every delivery record stayed
`queued` forever. Now the delivery record is the outbox and the periodic sweep sends what no job sent.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest
from flask import Flask
from sqlalchemy import select

from orders.models import Delivery
from saas.extensions import db
from saas.timeutil import utcnow
from tenants.outbox import sweep_everywhere
from tests.factories import Outbox, Shop
from tests.faults.conftest import PrivateRedis
from tests.faults.test_redis_outage import use_redis
from tests.orders.factories import add_keys, make_product, place_order

BURST = 60


def work_mail_queue(url: str) -> None:
    """Run a real RQ worker (in this process, no fork) over the mail queue until it is empty."""
    from redis import Redis
    from rq import Queue, SimpleWorker

    connection = Redis.from_url(url)
    SimpleWorker([Queue("mail", connection=connection)], connection=connection).work(burst=True)


@pytest.mark.postgres
def test_redis_killed_during_a_burst_of_orders_loses_no_delivery_mail_and_sends_none_twice(
    app: Flask, shop: Shop, outbox: Outbox, private_redis: PrivateRedis
) -> None:
    with shop.bound():
        product = make_product()
        add_keys(product.right, BURST)
    use_redis(app, private_redis.url)
    buyers = [f"buyer{n}@example.test" for n in range(BURST)]
    with shop.bound():
        for n, email in enumerate(buyers[: BURST // 3]):
            place_order(product, f"BURST-{n}", paid=True, email=email)
    work_mail_queue(private_redis.url)  # the first third is sent by its jobs
    assert len(outbox.messages()) == BURST // 3
    with shop.bound():
        for n, email in enumerate(buyers[BURST // 3 :], start=BURST // 3):
            if n == 2 * BURST // 3:
                private_redis.kill()  # the jobs of the second third die with it; the last third has none
            place_order(product, f"BURST-{n}", paid=True, email=email)
    private_redis.start()  # back, empty
    use_redis(app, private_redis.url)
    work_mail_queue(private_redis.url)
    assert len(outbox.messages()) == BURST // 3  # nothing left to repair the rest but the sweep

    with shop.bound():
        waiting = db.session.scalars(select(Delivery.status)).all()
        db.session.commit()
    assert Counter(waiting) == {"sent": BURST // 3, "queued": BURST - BURST // 3}
    assert sweep_everywhere(utcnow() + dt.timedelta(minutes=5))["sent"] == BURST - BURST // 3
    assert sweep_everywhere(utcnow() + dt.timedelta(minutes=10))["sent"] == 0

    received = Counter(str(mail["To"]) for mail in outbox.messages())
    assert received == {email: 1 for email in buyers}  # every order's mail, exactly once
    message_ids = {str(mail["Message-ID"]) for mail in outbox.messages()}
    assert len(message_ids) == BURST
    with shop.bound():
        records = db.session.scalars(select(Delivery)).all()
        assert {(r.status, r.attempts) for r in records} == {("sent", 1)}
