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
#
# The history is read 100 updates deep (`--page-size`, default 10: pulumi.com/docs/iac/cli/commands/
# pulumi_stack_history/), so ten failed deploys in a row do not hide the last successful one.
#
# The deployed commit is a baseline, not a gate: its waivers are judged as of that commit's own date
# (PLATFORM_WAIVERS_AS_OF, infra/config.py), so a waiver that has expired since does not fail this step in every
# later deploy, including the one that fixes the waiver (this commit's own plan still refuses it). A plan that
# wrote its JSON and exited 1 (policy findings on the deployed commit) is still the baseline; a plan that wrote
# nothing fails the step.
set -euo pipefail
full="$1" stack="$2" out="$(realpath -m "$3")"
head="$(pulumi stack history --stack "$full" --json --page-size 100 | python3 -c '
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
as_of="$(git show -s --format=%cs "$head")"
(cd deployed && python3 tools/dev.py setup --runtime)
code=0
(cd deployed && PLATFORM_WAIVERS_AS_OF="$as_of" .venv/bin/python -m infra plan --stack "$stack" --json > "$out") \
  || code=$?
if [ "$code" -ne 0 ]; then
  if [ "$code" -eq 1 ] && python3 -c 'import json, sys; assert isinstance(json.load(open(sys.argv[1]))["resources"], list)' \
       "$out" 2>/dev/null; then
    echo "::notice::the plan of $head has policy findings; its resources are still the budget's baseline"
  else
    echo "::error::the plan of the deployed commit $head wrote no plan (exit $code)"
    exit "$code"
  fi
fi
