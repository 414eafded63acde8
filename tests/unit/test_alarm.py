"""The firer's alarm: a ring wakes a sleep at once, from the sleeper's loop or another
thread, and a ring while nobody sleeps cuts the next sleep short (no wake-up is lost)."""

import asyncio
import threading
import time

from server.infra.alarm import Alarm


async def test_a_sleep_nobody_rings_lasts_its_time() -> None:
    started = time.monotonic()
    assert await Alarm().sleep(0.1) is False
    assert time.monotonic() - started >= 0.09


async def test_a_ring_from_another_thread_wakes_the_sleeper_at_once() -> None:
    alarm = Alarm()
    ringer = threading.Timer(0.1, alarm.ring)
    started = time.monotonic()
    ringer.start()
    assert await alarm.sleep(30) is True
    assert time.monotonic() - started < 5
    ringer.join()


async def test_a_ring_on_the_same_loop_wakes_the_sleeper() -> None:
    alarm = Alarm()
    asyncio.get_running_loop().call_later(0.05, alarm.ring)
    assert await asyncio.wait_for(alarm.sleep(30), 5) is True


async def test_a_ring_while_nobody_sleeps_is_not_lost() -> None:
    alarm = Alarm()
    alarm.ring()
    started = time.monotonic()
    assert await alarm.sleep(30) is True
    assert time.monotonic() - started < 1
    assert await alarm.sleep(0.01) is False  # rung once, woken once
