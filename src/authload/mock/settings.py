"""Settings of the mock: flags of `authload mock` and environment variables AUTHLOAD_MOCK_*."""

from __future__ import annotations

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from authload.errors import ProfileError


class MockSettings(BaseSettings):
    """Everything the mock accepts and how long what it issues lives. Times in seconds."""

    model_config = SettingsConfigDict(
        env_prefix="AUTHLOAD_MOCK_", extra="forbid", allow_inf_nan=False
    )

    behaviour: str | None = Field(None, description="behaviour profile file; none: the default")
    store: str = Field(
        "memory",
        pattern=r"^(memory|rediss?://.+)$",
        description="state store: memory, or redis://host:port/db to share",
    )
    app_token: str = Field("mock-app-token", min_length=1, description="Gigma `Token` header")
    client_secret: str = Field("mock-client-secret", min_length=1, description="mobile secret")
    population: int = Field(10_000, ge=1, le=10_000_000, description="test accounts")
    seed: int = Field(1, description="seed of the deterministic population")
    test_password: str = Field(
        "1111", pattern=r"^([0-9]{4})?$", description="Gigma password always accepted; '' = off"
    )
    password_ttl_s: float = Field(300.0, gt=0, description="call-reset password lifetime")
    sms_code_ttl_s: float = Field(300.0, gt=0, description="SMS code lifetime")
    sms_code_length: int = Field(4, ge=4, le=8)
    max_code_attempts: int = Field(5, ge=1, description="wrong tries before a code is void")
    esia_state_ttl_s: float = Field(600.0, gt=0, description="ESIA state and code lifetime")
    gigma_token_ttl_s: float = Field(86_400.0, gt=0, description="Gigma Bearer token lifetime")
    access_ttl_s: float = Field(900.0, gt=0, description="mobile sessionId lifetime")
    refresh_ttl_s: float = Field(2_592_000.0, gt=0, description="mobile refresh token lifetime")
    reuse_memory_s: float = Field(
        3600.0, ge=0, description="how long a rotated refresh token is remembered as reused"
    )
    refresh_grace_s: float = Field(
        0.0, ge=0, description="a rotated refresh token still works this long (0: dies at once)"
    )
    reuse_revokes_family: bool = Field(
        False,
        description="a reused (already rotated) refresh token ends its whole session, as "
        "OAuth 2.0 security best practice recommends (false: only the reuse is refused)",
    )
    max_sessions_per_account: int = Field(
        10, ge=1, description="live sessions per account and API; the oldest is evicted"
    )
    max_body_bytes: int = Field(65_536, ge=1024, description="larger request bodies get 413")


def load_settings(**overrides: object) -> MockSettings:
    """Settings from the environment with explicit overrides; a bad value names the field."""
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return MockSettings(**given)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ProfileError(f"invalid mock settings: {problems}") from None
