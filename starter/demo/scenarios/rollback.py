"""Git rollback (M2.2): a scratch repo with a real build; a breaking commit is reverted, a flaky
build is not, a good commit is left alone."""

import asyncio
import shlex
import shutil
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from selfheal.rollback import GuardStatus
from starter.commits import build_check, enqueue, read_commit, wait_for_guard
from starter.demo.scenario import DemoContext, Metric, Scenario, ScenarioResult
from starter.testing import commit, init_repo

# The project's build: byte-compile it, then run its checks — all real, all local.
PY = shlex.quote(sys.executable)
BUILD = f"{PY} -m compileall -q app && {PY} checks.py"
CHECKS = """\
import pathlib, sys
sys.path.insert(0, ".")
from app.prices import total
assert total([1, 2, 3]) == 6, "total is wrong"
flaky = pathlib.Path("flaky.txt")
if flaky.exists():  # a timing-dependent check: fails on its first run only
    marker = pathlib.Path(flaky.read_text().strip())
    if not marker.exists():
        marker.write_text("failed once")
        sys.exit("checks: warm-up race in the cache check (flaky)")
print("checks passed")
"""
GOOD = "def total(xs):\n    return sum(xs)\n"
DOCS = "Prices: `total(xs)` adds them up.\n"
BROKEN = "def total(xs)\n    return sum(xs)\n"  # the missing colon breaks compileall


async def _guard(ctx: DemoContext, repo: Path) -> GuardStatus:
    check = build_check(ctx.settings, read_commit(repo), build=BUILD)
    return await wait_for_guard(ctx.client, await enqueue(ctx.client, ctx.settings, check))


async def run(ctx: DemoContext) -> ScenarioResult:
    result = ScenarioResult(
        "git rollback (M2.2)", ["commit", "change", "verdict", "builds", "revert", "workflow"]
    )
    root = Path(tempfile.mkdtemp(prefix="selfheal-demo-rollback-"))
    try:
        initial = {"app/__init__.py": "", "app/prices.py": GOOD, "checks.py": CHECKS}
        repo = await asyncio.to_thread(init_repo, root / "shop", initial)
        cases = [
            ("docs", "add docs", {"README.md": DOCS}, "passed"),
            ("break", "prices: refactor total()", {"app/prices.py": BROKEN}, "reverted"),
            ("flaky", "cache: warm-up check", {"flaky.txt": str(root / "flaky-ran")}, "flaky"),
        ]
        took: float | None = None
        for label, message, files, expected in cases:
            committed = datetime.now(UTC)
            sha = await asyncio.to_thread(commit, repo, message, files)
            ctx.report(f"guarding {sha[:12]} {message!r} (expect {expected})")
            status = await _guard(ctx, repo)
            if label == "break" and status.reverted_at:
                took = (status.reverted_at - committed).total_seconds()
            builds = ",".join("ok" if b.ok else "fail" for b in status.builds)
            result.rows.append([
                sha[:12], message, status.state, builds, (status.revert_sha or "")[:12],
                ctx.link(status.workflow_id),
            ])  # fmt: skip
            if status.state != expected:
                result.failures.append(f"{message}: {status.state} ({status.reason}), "
                                       f"expected {expected}")  # fmt: skip
        text = (repo / "app" / "prices.py").read_text()
        if text != GOOD:
            result.failures.append("the breaking change is still in the tree after the revert")
        result.metrics.append(Metric(
            "breaking commit → reverted", f"{took:.1f}s" if took is not None else "not reverted",
            "< 2 min", took is not None and took < 120,
        ))  # fmt: skip
    finally:
        await asyncio.to_thread(shutil.rmtree, root, True)
    return result


SCENARIO = Scenario(
    "git rollback (M2.2)", run, order=40, policy_time=30 * 60,
    metrics=("breaking commit → reverted",),
)  # fmt: skip
