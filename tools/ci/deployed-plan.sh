#!/usr/bin/env bash
# The offline plan (`python -m infra plan --json`) of the commit last deployed successfully to a stack, for the
# per-deploy quota budget on main (stacks/quotas.py, `plan --diff-against`): a deploy is measured against what is
# live, not against the previous commit (which may never have deployed).
#
#   tools/ci/deployed-plan.sh ORG/platform/STACK STACK OUT.json
#
# The commit is the `git.head` the Pulumi CLI records in each update's environment (`pulumi stack history --json`,
# newest first); it is checked out beside this one (`deployed/`, its own virtual environment, from the history the
# job fetched with fetch-depth: 0) and planned there. No earlier successful update (a first deploy): the budget is
# measured against an empty plan, so a first deploy that creates more than one deploy may is refused as well.
set -euo pipefail
full="$1" stack="$2" out="$(realpath -m "$3")"
head="$(pulumi stack history --stack "$full" --json | python3 -c '
import json, sys
updates = [u for u in json.load(sys.stdin) if u.get("kind") == "update" and u.get("result") == "succeeded"]
heads = [(u.get("environment") or {}).get("git.head", "") for u in updates]
print(next((h for h in heads if h), ""))')"
if [ -z "$head" ]; then
  echo "::notice::$full has no successful update with a recorded commit: the budget is measured against an empty plan"
  echo '{"resources": []}' > "$out"
  exit 0
fi
echo "$full was last deployed from $head"
git worktree add --detach deployed "$head"
(cd deployed && python3 tools/dev.py setup --runtime && .venv/bin/python -m infra plan --stack "$stack" --json > "$out")
