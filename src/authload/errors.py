"""The one error hierarchy of authload; the CLI maps each branch to an exit code.

::

    AuthloadError                    exit 3 unless a subclass says otherwise
    +-- InputError                   exit 2: the user gave something unusable
    |   +-- ScenarioError            a scenario file is invalid (file, field, what is allowed)
    |   +-- ProfileError             a mock setting or behaviour profile is invalid
    |   +-- TargetError              a target is unknown, unsafe or unreachable
    +-- ContractError                a response broke an API contract (endpoint, what broke)
    +-- ResultsError                 a run directory is missing, incomplete or unreadable
    +-- MockStartError               the embedded mock did not come up
"""

from __future__ import annotations

__all__ = [
    "AuthloadError",
    "ContractError",
    "InputError",
    "MockStartError",
    "ProfileError",
    "ResultsError",
    "ScenarioError",
    "TargetError",
]


class AuthloadError(Exception):
    """Base of every error authload raises on purpose."""

    exit_code = 3


class InputError(AuthloadError):
    exit_code = 2


class ScenarioError(InputError):
    pass


class ProfileError(InputError):
    pass


class TargetError(InputError):
    pass


class ContractError(AuthloadError):
    """A response that does not match the endpoint's contract."""

    def __init__(self, endpoint: str, problem: str) -> None:
        super().__init__(f"{endpoint}: {problem}")
        self.endpoint = endpoint
        self.problem = problem


class ResultsError(AuthloadError):
    pass


class MockStartError(AuthloadError):
    pass
