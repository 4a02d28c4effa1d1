"""What the simulator asks the service before and after sending: the campaign, its region list, the dashboard."""

import asyncio
import ipaddress
from datetime import date
from typing import Any, Final

import aiohttp
import orjson
from yarl import URL

from events.regions import EXPECTED_PROVINCES, level_of
from services.simulate.ledger import Expected

THEME: Final = "全面提升质量 推动高质量发展"


class SimulationError(Exception):
    """The simulation cannot start or go on (a refused host, a missing campaign, a refused token)."""


def require_loopback(url: str, allow_remote: bool) -> None:
    """Refuse a URL whose host is not this machine, unless a person explicitly allowed it."""
    parsed = URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise SimulationError(f"--url must be an http(s) URL, not {url!r}")
    if allow_remote or parsed.host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(parsed.host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise SimulationError(f"refusing to send load to {parsed.host}: the simulator targets 127.0.0.1 unless "
                              "--allow-remote is passed")


class Service:
    """A thin client of the read and lifecycle endpoints the simulator needs."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, token: str) -> None:
        self._session = session
        self._base = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"}

    async def request(self, method: str, path: str, body: Any = None, **params: str) -> tuple[int, Any]:
        """(status, parsed JSON body or None)."""
        data = orjson.dumps(body) if body is not None else None
        headers = self._headers | ({"Content-Type": "application/json"} if data is not None else {})
        try:
            async with self._session.request(method, self._base + path, data=data, headers=headers,
                                             params=params or None, timeout=aiohttp.ClientTimeout(total=30)) as r:
                raw = await r.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SimulationError(f"{method} {self._base}{path} failed: {type(exc).__name__}: {exc}") from None
        try:
            return r.status, orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            return r.status, None

    async def campaign_window(self, campaign: str, *, open_it: bool, starts_on: date | None = None,
                              ends_on: date | None = None) -> tuple[date, date]:
        """The campaign's window (opened first, from ``starts_on``..``ends_on`` or September of the id's year,
        when asked and missing); refuses a closed campaign."""
        status, body = await self.request("GET", f"/v1/campaigns/{campaign}")
        if status == 404 and open_it:
            starts_on, ends_on = _default_window(campaign, starts_on, ends_on)
            status, body = await self.request("POST", "/v1/campaigns", {
                "id": campaign, "theme": THEME, "starts_on": starts_on.isoformat(), "ends_on": ends_on.isoformat()})
            if status not in (200, 201):
                raise SimulationError(f"could not open campaign {campaign} ({status}): {_detail(body)}")
            return starts_on, ends_on
        if status == 404:
            raise SimulationError(f"campaign {campaign} has not been opened; pass --open-campaign (admin token)")
        if status != 200:
            raise SimulationError(f"GET /v1/campaigns/{campaign} answered {status}: {_detail(body)}")
        if body["status"] != "open":
            raise SimulationError(f"campaign {campaign} is {body['status']}; events would be refused")
        return date.fromisoformat(body["starts_on"]), date.fromisoformat(body["ends_on"])

    async def region_codes(self, year: int) -> tuple[str, ...] | None:
        """Prefecture and county codes of the list the service checks events of ``year`` against, if any."""
        provinces = sorted(EXPECTED_PROVINCES)
        children = await asyncio.gather(*(self._children(p, year) for p in provinces))
        if not any(children):
            return None
        codes = [c for group in children for c in group]
        prefectures = [c for c in codes if level_of(c) == "prefecture"]
        counties = await asyncio.gather(*(self._children(p, year) for p in prefectures))
        return tuple(sorted({*codes, *(c for group in counties for c in group)}))

    async def _children(self, parent: str, year: int) -> list[str]:
        status, body = await self.request("GET", "/v1/regions", parent=parent, year=str(year))
        if status != 200:
            raise SimulationError(f"GET /v1/regions answered {status}: {_detail(body)}")
        return [r["code"] for r in body["regions"]]

    async def settled_dashboard(self, campaign: str, position: int, seconds: float) -> dict[str, Any]:
        """The national dashboard once its projection has reached ``position`` (bounded wait)."""
        body: Any = None
        try:
            async with asyncio.timeout(seconds):
                while True:
                    status, body = await self.request("GET", f"/v1/campaigns/{campaign}/dashboard")
                    if status != 200:
                        raise SimulationError(f"cannot read the dashboard ({status}): {_detail(body)}")
                    if body["position"] >= position:
                        return dict(body)
                    await asyncio.sleep(0.1)
        except TimeoutError:
            at = body.get("position") if isinstance(body, dict) else None
            raise SimulationError(f"the projection did not reach position {position} within {seconds:g} s "
                                  f"(it is at {at})") from None


def compare(dashboard: dict[str, Any], expected: Expected) -> list[str]:
    """Every figure where the dashboard differs from the expectation (empty when they agree)."""
    differences = [f"national {m}: dashboard {dashboard['metrics'][m]['value']!r}, expected {v!r}"
                   for m, v in expected.national.items() if dashboard["metrics"][m]["value"] != v]
    children = {c["code"]: c["metrics"] for c in dashboard["children"]}
    for province, figures in expected.provinces.items():
        shown = children.get(province, {})
        differences += [f"{province} {m}: dashboard {shown.get(m)!r}, expected {v!r}"
                        for m, v in figures.items() if shown.get(m) != v]
    if dashboard["pass_rate"]["overall"] != expected.pass_rate:
        differences.append(f"pass rate: dashboard {dashboard['pass_rate']['overall']}, expected {expected.pass_rate}")
    return differences


def _default_window(campaign: str, starts_on: date | None, ends_on: date | None) -> tuple[date, date]:
    if starts_on and ends_on:
        return starts_on, ends_on
    if not campaign[:4].isdigit():
        raise SimulationError(f"campaign {campaign} is not a year: give --starts-on and --ends-on to open it")
    year = int(campaign[:4])
    return starts_on or date(year, 9, 1), ends_on or date(year, 9, 30)


def _detail(body: Any) -> str:
    if isinstance(body, dict):
        return str(body.get("detail") or body)
    return str(body)
