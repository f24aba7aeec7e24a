"""The environments a stack file may name in `platform:environment`."""

from stacks import integration, prod, staging
from stacks.profile import Profile

PROFILES: dict[str, Profile] = {
    p.environment: p for p in (integration.PROFILE, staging.PROFILE, prod.PROFILE)
}
