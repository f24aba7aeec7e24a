"""Print `policies/POLICIES.md` from the pack table: `python -m policies.doc > policies/POLICIES.md`."""

from __future__ import annotations

from policies.pack import PACK_NAME, RULES


def render() -> str:
    lines = [
        f"# {PACK_NAME}",
        "",
        "Generated from `policies/pack.py` by `python -m policies.doc`; a test fails when this file drifts.",
        "Run offline by `python -m infra plan` (exit code 1 on a mandatory violation) and by",
        "`pulumi preview --policy-pack policies`. A stack waives a rule for one resource under",
        "`platform:waivers`, with a reason of at least 20 characters that `plan` prints.",
        "",
        "| id | level | severity | what | why | requirement |",
        "|----|-------|----------|------|-----|-------------|",
    ]
    lines += [f"| {r.id} | {r.level} | {r.severity} | {r.title} | {r.why} | {r.requirement} |" for r in RULES]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render(), end="")
