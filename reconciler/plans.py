"""Plans: what a valid `POST /executions` body is, with every problem listed at once.

Split from the execution lifecycle because validation is pure and has its own reasons to change
(limits, id formats): the body's shape and types come from the pydantic model, the meaning of
the waves (count, sizes, id format, no server twice) from `plan_problems`. Whether the servers
are known to DRS is checked by `Executions.create`, which needs DRS.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import TypeAdapter, ValidationError

from schemas.api import SOURCE_SERVER_ID, CreateExecutionRequest, WavePlan

from .errors import PermanentError

# An execution is created in one transaction (at most 100 items, 4 MB): 50 waves plus the
# execution item keeps far inside both, even with 200-server waves.
MAX_WAVES = 50
_WAVES = TypeAdapter(list[WavePlan])


class PlanInvalid(PermanentError):
    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = list(problems)


def wave_target(wave: WavePlan, hub: tuple[str, str] | None = None) -> tuple[str, str]:
    """The (account, Region) a planned wave recovers in: what it names, else the hub's."""
    account, region = hub or ("", "")
    return wave.account_id or account, wave.region or region


def plan_problems(
    request: CreateExecutionRequest, max_servers_per_wave: int, hub: tuple[str, str] | None = None
) -> list[str]:
    """Every semantic problem of a plan at once (shape and types were checked by the model). A
    source server is one server per account and Region (its id is unique only there), so a
    server twice means the same id twice in one target."""
    problems: list[str] = []
    if not 1 <= len(request.waves) <= MAX_WAVES:
        problems.append(f"waves: needs 1 to {MAX_WAVES} waves, got {len(request.waves)}")
    first_wave: dict[tuple[str, str, str], int] = {}
    for number, wave in enumerate(request.waves, start=1):
        target = wave_target(wave, hub)
        where = f"waves[{number - 1}] ({wave.name!r})"
        count = len(wave.source_server_ids)
        if not 1 <= count <= max_servers_per_wave:
            problems.append(f"{where}: needs 1 to {max_servers_per_wave} source servers, got {count}")
        for sid in wave.source_server_ids:
            if not SOURCE_SERVER_ID.fullmatch(sid):
                problems.append(
                    f"{where}: {sid!r} is not a DRS source server id (s- and 17 letters or digits)"
                )
            elif (*target, sid) in first_wave:
                other = first_wave[(*target, sid)]
                detail = "twice in this wave" if other == number else f"also in wave {other}"
                problems.append(f"{where}: {sid} is {detail}")
            else:
                first_wave[(*target, sid)] = number
    return problems


def parse_plan(body: object, max_servers_per_wave: int) -> CreateExecutionRequest:
    """A request body as a plan, or PlanInvalid listing every problem found: shape and type
    errors, plus the meaning of the waves whenever the waves themselves have the right shape."""
    try:
        request = CreateExecutionRequest.model_validate(body)
    except ValidationError as error:
        problems = [f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in error.errors()]
        waves = body.get("waves") if isinstance(body, dict) else None
        try:
            plans = _WAVES.validate_python(waves)
        except ValidationError:
            plans = None
        if plans is not None:
            shell = CreateExecutionRequest.model_construct(name="", is_drill=False, waves=plans)
            problems += [p for p in plan_problems(shell, max_servers_per_wave) if p not in problems]
        raise PlanInvalid(problems) from error
    return request
