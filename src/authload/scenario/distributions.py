"""Distributions of durations (latency, think time, delays), as scenarios and profiles
write them: ``{dist: fixed, ms: 50}``, ``{dist: uniform, min_ms, max_ms}``,
``{dist: lognormal, median_ms, p99_ms, max_ms?}``."""

from __future__ import annotations

import math
import random
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Z99 = 2.3263478740408408  # standard normal quantile at 0.99


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Fixed(_Strict):
    dist: Literal["fixed"]
    ms: float = Field(ge=0)


class Uniform(_Strict):
    dist: Literal["uniform"]
    min_ms: float = Field(ge=0)
    max_ms: float = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> Uniform:
        if self.max_ms < self.min_ms:
            raise ValueError("max_ms must be >= min_ms")
        return self


class LogNormal(_Strict):
    """Given by its median and 99th percentile, as latencies are usually described."""

    dist: Literal["lognormal"]
    median_ms: float = Field(gt=0)
    p99_ms: float = Field(gt=0)
    max_ms: float | None = Field(None, gt=0, description="cap on a single draw")

    @model_validator(mode="after")
    def _ordered(self) -> LogNormal:
        if self.p99_ms < self.median_ms:
            raise ValueError("p99_ms must be >= median_ms")
        return self

    @property
    def sigma(self) -> float:
        return math.log(self.p99_ms / self.median_ms) / Z99


Distribution = Annotated[Fixed | Uniform | LogNormal, Field(discriminator="dist")]


def sample_ms(spec: Fixed | Uniform | LogNormal | None, rng: random.Random) -> float:
    """One draw in milliseconds; no distribution is zero."""
    if spec is None:
        return 0.0
    if isinstance(spec, Fixed):
        return spec.ms
    if isinstance(spec, Uniform):
        return rng.uniform(spec.min_ms, spec.max_ms)
    draw = spec.median_ms * math.exp(spec.sigma * rng.gauss(0.0, 1.0))
    return min(draw, spec.max_ms) if spec.max_ms is not None else draw
