"""Environment profiles: the reviewed defaults each stack starts from.

A stack file names its environment (`platform:environment`); the profile of that name supplies the
backend of every container service, sizes, replica bounds, edge hardening, canary and DR switches.
A stack may override a service's backend, size and replicas; the result is validated against what
the backend allows (`stacks.backends`).
"""

from stacks.profile import (
    CanaryProfile,
    DisasterRecoveryProfile,
    EdgeProfile,
    FrontendProfile,
    Profile,
    ServiceProfile,
)
from stacks.registry import PROFILES

__all__ = [
    "PROFILES",
    "CanaryProfile",
    "DisasterRecoveryProfile",
    "EdgeProfile",
    "FrontendProfile",
    "Profile",
    "ServiceProfile",
]
