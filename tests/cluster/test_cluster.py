"""Several gateway processes on one PostgreSQL: number leases, handover, cross-process calls."""

from __future__ import annotations

import asyncio

import pytest

from tests.cluster.conftest import LEASE_TTL_S, POOL, Workers, cluster_config, load_config, rows
from tests.conftest import ADMIN_KEY


async def start(workers: Workers, db_url: str, n: int) -> list[int]:
    await load_config(db_url, cluster_config())
    live = list(range(n))
    for i in live:
        workers.start(i)
    await workers.until("balanced leases", lambda: workers.balanced(live), timeout_s=60)
    return live


async def test_concurrent_new_visitors_never_share_a_number_while_one_is_free(
        workers: Workers, db_url: str) -> None:
    live = await start(workers, db_url, 3)
    # Twelve new visitors at once, spread over the three processes: twelve distinct numbers.
    visits = await asyncio.gather(*(workers.swap(i % 3, click=str(i)) for i in range(12)))
    assert sorted(v["number"] for v in visits) == sorted(POOL)
    owners = {r["number"]: r["owner"] for r in await rows(
        db_url, "SELECT number, owner FROM number_leases WHERE owner IS NOT NULL")}
    assert set(owners) == set(POOL) and len(set(owners.values())) == 3
    # The pool is full now: the next visitors share (one per process), never more than
    # one number at a time beyond the pool.
    extra = await asyncio.gather(*(workers.swap(i) for i in live))
    assert all(v["number"] in POOL for v in extra)
    assert len({v["number"] for v in extra}) == 3


async def test_a_killed_process_hands_its_numbers_over_within_the_lease_time(
        workers: Workers, db_url: str) -> None:
    live = await start(workers, db_url, 3)
    before = await workers.readyz(2)
    assert before is not None
    visits = [await workers.swap(2, click=str(k)) for k in range(3)]
    await asyncio.sleep(0.3)  # flushed (50 ms period)
    workers.kill(2)
    took = await workers.until("handover", lambda: workers.balanced(live[:2]), timeout_s=20)
    assert took <= LEASE_TTL_S + 2.0, took
    stored = {r["id"] for r in await rows(db_url, "SELECT id FROM sessions")}
    assert {v["session"] for v in visits} <= stored  # nothing it had flushed is lost
    # Its visitors come back to the others with their numbers, and the calls find them.
    again = await workers.swap(0, visitor=visits[0]["visitor"])
    assert again["number"] == visits[0]["number"]
    call = await workers.call(1, "CAkilled", visits[1]["number"], "+16505550001")
    assert call["session"] == visits[1]["session"]


async def test_a_call_on_another_process_is_attributed_as_one_process_would(
        workers: Workers, db_url: str) -> None:
    """The same traffic against one process on its own (DNI_CLUSTER off, the default) and
    against two in a cluster (visitors on one, calls on the other, one second after the last
    page event): the same numbers shared by the same visitors, the same candidates, matches
    and likelihoods. Each run has its own site and pool, so neither sees the other's
    sessions."""
    pools = {"solo": [f"+1415555{n:04d}" for n in range(400, 403)],
             "duo": [f"+1415555{n:04d}" for n in range(410, 413)]}
    await load_config(db_url, {"sites": [
        {**cluster_config(numbers)["sites"][0], "key": site} for site, numbers in pools.items()]})
    workers.start(0, DNI_CLUSTER="off")
    await workers.until("the single process", lambda: workers.readyz(0), timeout_s=60)
    single = await shared_traffic(workers, "solo", serve=0, call=0)
    workers.stop_all()
    workers.killed.add(0)  # stopped on purpose
    workers.start(1)
    workers.start(2)
    await workers.until("two workers", lambda: workers.balanced([1, 2], numbers=6),
                        timeout_s=60)
    spread = await shared_traffic(workers, "duo", serve=1, call=2)
    assert [c["visitors"] for c in spread] == [c["visitors"] for c in single]
    assert [c["matched"] for c in spread] == [c["matched"] for c in single]
    # Real time runs on between requests: likelihoods agree to within that.
    for got, want in zip(spread, single, strict=True):
        assert got["likelihoods"] == pytest.approx(want["likelihoods"], abs=0.02)
    assert [c["matched"] for c in single] == [3, 1, 2]


async def shared_traffic(workers: Workers, site: str, serve: int,
                         call: int) -> list[dict[str, object]]:
    """Five visitors on a pool of three on process `serve`: the fourth and fifth share the
    numbers whose holders have been idle longest. Visitors 1 and 3 tap the number; a call on
    each number one second after the last page event, on process `call`.
    Returns per call the candidates (as visitor indexes), their likelihoods and the match."""
    visits = [await workers.swap(serve, click=f"{site}{k}", site=site) for k in range(3)]
    for v in visits:
        await workers.event(serve, v["session"], "pageview")
    visits.append(await workers.swap(serve, click=f"{site}3", site=site))  # shares v0's
    visits.append(await workers.swap(serve, click=f"{site}4", site=site))  # shares v1's
    # Taps decide each shared number's call by a wide margin, so the seconds that lending
    # and flushing add to the clustered run (recency is scored on a log scale) cannot tip it.
    await workers.event(serve, visits[1]["session"], "click_to_call")
    await workers.event(serve, visits[3]["session"], "click_to_call")
    await asyncio.sleep(1.0)
    index = {v["session"]: k for k, v in enumerate(visits)}
    out: list[dict[str, object]] = []
    for k in range(3):  # the numbers of visitors 0, 1, 2
        c = await workers.call(call, f"CA{site}{k}", visits[k]["number"], f"+1650555{k:04d}")
        out.append({"visitors": [index[x["session"]] for x in c["candidates"]],
                    "likelihoods": [x["likelihood"] for x in c["candidates"]],
                    "matched": index[c["session"]]})
    return out


async def test_a_configuration_change_on_one_process_reaches_the_others(
        workers: Workers, db_url: str) -> None:
    live = await start(workers, db_url, 2)
    bigger = cluster_config([*POOL, "+14155550320", "+14155550321"])
    async with workers.http.post(workers.url(0, "/v1/import"), json=bigger,
                                 headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as resp:
        assert resp.status == 200, await resp.text()
    await workers.until("the new numbers dealt out",
                        lambda: workers.balanced(live, numbers=len(POOL) + 2), timeout_s=20)


async def test_new_visitors_spread_unevenly_get_free_numbers_owned_elsewhere(
        workers: Workers, db_url: str) -> None:
    """All twelve new visitors reach one of three processes (which owns four numbers): the
    others lend theirs, so nobody shares while a number is free."""
    await start(workers, db_url, 3)
    visits = await asyncio.gather(*(workers.swap(0, click=str(i)) for i in range(12)))
    assert sorted(v["number"] for v in visits) == sorted(POOL)
    state = await workers.readyz(0)
    assert state is not None and state["cluster"]["borrowed"] == 8
    # The pool is full everywhere now: the next one shares, promptly.
    extra = await workers.swap(1)
    assert extra["number"] in POOL
    # A session started on one process takes events on another at once.
    await workers.event(2, visits[0]["session"], "click_to_call")


async def test_a_borrowed_number_goes_back_to_its_owner_once_free(
        workers: Workers, db_url: str) -> None:
    await load_config(db_url, cluster_config(idle_timeout=2))
    live = [0, 1]
    for i in live:
        workers.start(i)
    await workers.until("balanced", lambda: workers.balanced(live), timeout_s=60)
    visits = await asyncio.gather(*(workers.swap(0, click=str(i)) for i in range(8)))
    assert len({v["number"] for v in visits}) == 8
    lent = await workers.readyz(1)
    assert lent is not None and lent["cluster"]["lent"] == 2

    async def settled() -> bool:
        states = [await workers.readyz(i) for i in live]
        return await workers.balanced(live) and all(
            s is not None and s["cluster"]["lent"] == s["cluster"]["borrowed"] == 0
            for s in states)

    # The sessions go idle after 2 s: the loans go home, the split is even again.
    await workers.until("loans returned", settled, timeout_s=15)


async def test_metrics_and_readiness_say_which_worker_and_what_it_holds(
        workers: Workers, db_url: str) -> None:
    live = await start(workers, db_url, 2)
    state = await workers.readyz(1)
    assert state is not None
    worker = state["cluster"]["worker"]
    async with workers.http.get(workers.url(1, "/metrics")) as resp:
        text = await resp.text()
    owned = [line for line in text.splitlines()
             if line.startswith("dni_cluster_owned_numbers{")]
    assert owned == [f'dni_cluster_owned_numbers{{worker="{worker}"}} '
                     f'{float(state["cluster"]["owned"])}']
    assert f'dni_cluster_workers{{worker="{worker}"}} {float(len(live))}' in text
    assert all(f'worker="{worker}"' in line for line in text.splitlines()
               if line and not line.startswith("#"))
