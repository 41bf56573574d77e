"""Test-only control under /_mock/: what a real phone or ESIA would show, accounts, counters."""

from __future__ import annotations

import time
import zlib
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, ConfigDict, Field

from authload.contracts.openapi import openapi_document
from authload.mock.core import Mock
from authload.mock.http import ApiError, Reply, Request, json_reply, parse_body
from authload.mock.mobile import normalize_phone
from authload.mock.profile import Fault, Profile

MAX_ACCOUNTS = 10_000


async def healthz(mock: Mock, request: Request) -> Reply:
    return json_reply({"status": "ok"})


async def openapi(mock: Mock, request: Request) -> Reply:
    return json_reply(openapi_document())


async def stats(mock: Mock, request: Request) -> Reply:
    """Counters since the mock started, summed over its processes."""
    return json_reply(
        {
            "epoch": mock.behaviour.epoch,
            "uptime_s": round(time.time() - mock.behaviour.epoch, 3),
            **mock.metrics.snapshot(),
        }
    )


async def held(mock: Mock, request: Request) -> Reply:
    """What the store holds now: live sessions per API, remembered rotated refresh tokens,
    codes, ESIA states and codes (a memory bound to check, see the README)."""
    return json_reply(await mock.store.held())


async def metrics(mock: Mock, request: Request) -> Reply:
    return Reply(200, mock.metrics.exposition(), CONTENT_TYPE_LATEST)


async def reset(mock: Mock, request: Request) -> Reply:
    await mock.store.reset()
    return json_reply(
        {"message": "codes, sessions and rate-limit windows forgotten; counters and behaviour kept"}
    )


async def get_faults(mock: Mock, request: Request) -> Reply:
    board = mock.behaviour.faults
    now = time.time()
    return json_reply(
        {
            "now": now,
            "epoch": board.epoch,
            "faults": [r.to_json(board.epoch, now) for r in board.records],
            "history": board.history(),
        }
    )


async def add_fault(mock: Mock, request: Request) -> Reply:
    """A fault window from now + start_s; the body is one fault of the profile schema."""
    spec = parse_body(Fault, request.body, 422)
    board = mock.behaviour.faults
    record = board.add(spec, "admin", time.time())
    await mock.publish()
    return json_reply({"fault": record.to_json(board.epoch, time.time())}, 201)


async def end_faults(mock: Mock, request: Request, fault_id: str | None = None) -> Reply:
    ended = mock.behaviour.faults.remove(fault_id, time.time())
    if fault_id is not None and not ended:
        raise ApiError(404, f"No open or scheduled fault {fault_id!r}.")
    await mock.publish()
    return json_reply({"ended": [r.id for r in ended]})


class Epoch(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    t: float | None = Field(None, gt=0, description="unix seconds; none: now")


async def set_epoch(mock: Mock, request: Request) -> Reply:
    """Count the profile's fault windows from ``t`` (the load's start), as timed events are
    counted; windows already open end now."""
    body = parse_body(Epoch, request.body or b"{}", 422)
    mock.behaviour.rebase(body.t if body.t is not None else time.time())
    await mock.publish()
    return json_reply({"epoch": mock.behaviour.epoch})


async def get_behaviour(mock: Mock, request: Request) -> Reply:
    return json_reply(mock.behaviour.profile.model_dump(mode="json"))


async def put_behaviour(mock: Mock, request: Request) -> Reply:
    """Replace the profile; its faults are scheduled from the mock's start, as at launch."""
    profile = parse_body(Profile, request.body, 422)
    mock.behaviour.apply(profile)
    await mock.publish()
    return json_reply(profile.model_dump(mode="json"))


async def inbox(mock: Mock, request: Request, phone: str) -> Reply:
    """The call-reset and the SMS a real phone would have received, if any is still valid."""
    phone = normalize_phone(phone)
    if mock.population.index_of_phone(phone) is None:
        raise ApiError(404, f"Phone {phone!r} is not in the test population.")
    call = await mock.store.peek_code(f"call:{phone}")
    sms = await mock.store.peek_code(f"sms:{phone}")
    return json_reply(
        {
            "phone": phone,
            "call": None
            if call is None
            else {
                "from": call.message,
                "password": call.code,
                "expires_in_s": round(call.expires_in, 3),
                "attempts_left": call.attempts_left,
            },
            "sms": None
            if sms is None
            else {
                "text": sms.message,
                "code": sms.code,
                "expires_in_s": round(sms.expires_in, 3),
                "attempts_left": sms.attempts_left,
            },
        }
    )


async def esia_authorize(mock: Mock, request: Request) -> Reply:
    """The authorization code ESIA hands back after the user signs in for ``state``.

    The user is the account named by ``phone``, ``inn`` or ``account`` (index), else one
    chosen from the state, so the same state always signs in the same user.
    """
    state = request.query("state")
    if not state:
        raise ApiError(400, "Query parameter 'state' is required.")
    index = _account_from_query(mock, request)
    if index is None:
        index = zlib.crc32(state.encode("utf-8", "backslashreplace")) % mock.population.size
    code = mock.uuid4()
    if not await mock.store.authorize_esia(state, code, index, mock.settings.esia_state_ttl_s):
        raise ApiError(404, "Unknown or expired state: get a new ESIA URL first.")
    account = mock.population.account(index)
    return json_reply(
        {
            "code": code,
            "state": state,
            "account": {"index": index, "phone": account.phone, "inn": account.inn},
        }
    )


def _account_from_query(mock: Mock, request: Request) -> int | None:
    pop = mock.population
    if (phone := request.query("phone")) is not None:
        found = pop.index_of_phone(normalize_phone(phone))
    elif (inn := request.query("inn")) is not None:
        found = pop.index_of_inn(inn)
    elif (raw := request.query("account")) is not None:
        found = _int_param("account", raw, 0, pop.size - 1)
    else:
        return None
    if found is None:
        raise ApiError(404, "No such account in the test population.")
    return found


async def accounts(mock: Mock, request: Request) -> Reply:
    pop = mock.population
    limit = _int_param("limit", request.query("limit") or "10", 1, MAX_ACCOUNTS)
    offset = _int_param("offset", request.query("offset") or "0", 0, pop.size - 1)
    rows: list[dict[str, Any]] = []
    for index in range(offset, min(offset + limit, pop.size)):
        a = pop.account(index)
        rows.append(
            {
                "index": index,
                "id": a.id,
                "phone": a.phone,
                "inn": a.inn,
                "lkfl_password": a.lkfl_password,
                "devices": a.devices,
            }
        )
    return json_reply({"population": pop.size, "offset": offset, "accounts": rows})


def _int_param(name: str, raw: str, low: int, high: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"Query parameter {name!r} must be an integer.") from None
    if not low <= value <= high:
        raise ApiError(400, f"Query parameter {name!r} must be between {low} and {high}.")
    return value
