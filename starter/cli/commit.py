"""``selfheal commit check`` and ``selfheal hooks install``: the ways into the git rollback."""

import argparse
import json
import shlex
import stat
import sys
from pathlib import Path

from temporalio.client import Client

from activities.git import GitError, git_repo
from selfheal.config import load_settings
from selfheal.rollback import CommitCheck, GuardStatus, guard_workflow_id
from starter.cli.commands import add_command
from starter.cli.errors import UsageError
from starter.client import UnreachableError, connect
from starter.commits import (
    Judgement,
    build_check,
    check_build_command,
    enqueue,
    latest_judgement,
    read_commit,
    running,
    wait_for_guard,
)

BEGIN, END = "# >>> selfheal post-commit >>>", "# <<< selfheal post-commit <<<"
_OK_STATES = frozenset({"passed", "reverted", "inherited", "flaky", "skipped"})


def register(sub: argparse._SubParsersAction) -> None:
    commit = add_command(sub, "commit")
    cmds = commit.add_subparsers(dest="commit_command", required=True, parser_class=type(commit))
    check = cmds.add_parser("check", help="guard one commit (CommitGuard)")
    check.add_argument("--repo", required=True, help="path of the git checkout")
    check.add_argument("--sha", help="the commit (default HEAD)")
    check.add_argument("--build", help="build command (default: the rollback policy's)")
    check.add_argument(
        "--recheck", action="store_true",
        help="judge an already judged commit again (a new run of its guard), e.g. once the "
        "cause of a refusal is fixed or with another --build",
    )  # fmt: skip
    check.add_argument("--time-scale", type=float, help="divide every policy duration by N")
    check.add_argument("--wait", action="store_true", help="wait and print the verdict")
    check.add_argument("--json", action="store_true")
    check.add_argument("--hook", action="store_true", help=argparse.SUPPRESS)
    check.set_defaults(handler=commit_check)

    hooks = add_command(sub, "hooks")
    hook_cmds = hooks.add_subparsers(dest="hooks_command", required=True, parser_class=type(hooks))
    install = hook_cmds.add_parser("install", help="install the post-commit hook")
    install.add_argument("--repo", required=True, help="path of the git checkout")
    install.add_argument(
        "--build", help="build command (default: the hook's current one, else the policy's)"
    )
    install.set_defaults(handler=hooks_install)


async def commit_check(args: argparse.Namespace) -> int:
    if args.time_scale is not None and args.time_scale <= 0:
        raise UsageError(f"--time-scale must be positive, got {args.time_scale:g}")
    settings = load_settings(args.config)
    try:
        commit = read_commit(args.repo, args.sha)
    except GitError as err:
        raise UsageError(str(err)) from None
    try:
        check = build_check(settings, commit, build=args.build, time_scale=args.time_scale)
    except ValueError as err:
        raise UsageError(str(err)) from None
    try:
        client = await connect()
    except UnreachableError as err:
        if not args.hook:
            raise
        # From the hook: the commit stands; say why it is not guarded, and never fail it.
        print(f"selfheal: {err}; commit {commit.sha[:12]} is not guarded", file=sys.stderr)
        return 0
    workflow_id = guard_workflow_id(commit.repo_name, commit.repo_path, commit.sha)
    before = None if args.hook else await latest_judgement(client, workflow_id)
    judged = before is not None and before.status is not None and not args.recheck
    if before and judged:
        _refuse_a_silent_build(args.build, before, workflow_id)  # nothing new is started
    else:
        if before and before.running:
            _refuse_while_running(args, before, workflow_id)
        if before and args.recheck:
            check = await _as_recheck(client, check, before)
        await enqueue(client, settings, check)
    if not args.wait:
        print(json.dumps({"workflow_id": workflow_id, "sha": commit.sha}) if args.json
              else workflow_id)  # fmt: skip
        return 0
    if before and before.status and judged:
        status = before.status
    else:
        newer_than = before.run_id if before and not before.running else None
        status = await wait_for_guard(client, workflow_id, after_run=newer_than)
    _print_status(status, args.json)
    if status.state == "setup-broken":
        raise UsageError(f"{status.reason} (build command: {status.build_command})")
    return 0 if status.state in _OK_STATES else 1


def _refuse_a_silent_build(build: str | None, before: Judgement, workflow_id: str) -> None:
    """Judged already and not re-checked: a different --build would be ignored, so refuse."""
    if build and build != before.build_command:
        state = before.status.state if before.status else "judged"
        raise UsageError(
            f"commit {before.input.check.sha[:12]} was judged already ({workflow_id}: {state}, "
            f"build {before.build_command!r}); pass --recheck to judge it again with --build"
        )


def _refuse_while_running(args: argparse.Namespace, before: Judgement, workflow_id: str) -> None:
    if args.recheck:
        raise UsageError(f"{workflow_id} is still judging this commit; re-check it once it ends")
    if args.build and args.build != before.build_command:
        raise UsageError(
            f"{workflow_id} is judging this commit with build {before.build_command!r}; "
            "--build is not used: re-check it with --recheck once it ends"
        )


async def _as_recheck(client: Client, check: CommitCheck, before: Judgement) -> CommitCheck:
    """The next judgement of a judged commit: it settles the one before (incident, ladder)."""
    previous = before.status
    escalation = previous.escalation_id if previous else None
    return check.model_copy(update={
        "recheck": before.input.check.recheck + 1,
        "first_parent": None,
        "previous_incident": previous.incident_key if previous else None,
        "previous_escalation": escalation if await running(client, escalation) else None,
    })  # fmt: skip


def _print_status(status: GuardStatus, as_json: bool) -> None:
    if as_json:
        print(status.model_dump_json(indent=2))
        return
    lines = [f"{status.workflow_id}  {status.state}  {status.reason or ''}"]
    lines += [
        f"  build {b.sha[:12]}  {'ok' if b.ok else f'exit {b.exit_code}'}  {b.duration:.2f}s"
        for b in status.builds
    ]
    lines += [f"  revert {status.revert_sha}"] if status.revert_sha else []
    lines += [f"  escalated: {status.escalation_id}"] if status.escalation_id else []
    print("\n".join(lines))


def hook_script(build: str | None, config: str | None) -> str:
    beside = Path(sys.executable).parent / "selfheal"
    program = [str(beside)] if beside.exists() else [sys.executable, "-m", "starter.cli"]
    if config:
        program += ["--config", str(Path(config).resolve())]
    command = shlex.join([*program, "commit", "check", "--hook"])
    build_flag = f" --build {shlex.quote(build)}" if build else ""
    return f"""{BEGIN}
# Guards each commit with `selfheal commit check`, in the background: the commit is never slowed
# or blocked. Messages go to the terminal, else to .git/selfheal-hook.log.
if [ -z "$SELFHEAL_HOOK_SKIP" ]; then
  (
    unset GIT_DIR GIT_WORK_TREE GIT_INDEX_FILE GIT_PREFIX
    sha=$(git rev-parse HEAD) && repo=$(git rev-parse --show-toplevel) || exit 0
    log="$(git rev-parse --absolute-git-dir)/selfheal-hook.log"
    [ -t 2 ] && log=/dev/stderr
    {command} --repo "$repo" --sha "$sha"{build_flag} </dev/null >/dev/null 2>>"$log" &
  )
fi
{END}
"""


def install_hook(
    repo_path: str, build: str | None, config: str | None, default_build: str | None = None
) -> tuple[Path, str | None]:
    """Write (or rewrite) the selfheal block of the post-commit hook; returns the hook and the
    build command it names (None: the policy's). Without ``build`` the block keeps the build
    command it has. The build command that will run is checked first (a broken setup is
    refused now, not at every commit)."""
    try:
        repo = git_repo(repo_path)
    except GitError as err:
        raise UsageError(str(err)) from None
    if not repo.working_tree_dir:
        raise UsageError(f"{repo_path} is a bare repository; install the hook in a checkout")
    hooks_dir = Path(repo.working_tree_dir) / repo.git.rev_parse("--git-path", "hooks")
    hook = hooks_dir / "post-commit"
    try:
        current = hook.read_text() if hook.is_file() else ""
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"cannot read the hook {hook}: {err}") from None
    build = build or hook_build(current)
    if build or default_build:
        try:
            head = read_commit(repo_path)
        except GitError:
            head = None  # no commit yet
        try:
            check_build_command(build or default_build or "", head)
        except ValueError as err:
            raise UsageError(str(err)) from None
    block = hook_script(build, config)
    if BEGIN in current and END in current:
        head_text, rest = current.split(BEGIN, 1)
        text = head_text + block + rest.split(END, 1)[1].lstrip("\n")
    elif current:
        text = current.rstrip("\n") + "\n\n" + block
    else:
        text = "#!/bin/sh\n" + block
    try:
        hooks_dir.mkdir(parents=True, exist_ok=True)
        hook.write_text(text)
        hook.chmod(hook.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    except OSError as err:
        raise UsageError(f"cannot write the hook {hook}: {err.strerror or err}") from None
    return hook, build


def hook_build(text: str) -> str | None:
    """The ``--build`` of the selfheal block in a hook's text, if it has one."""
    if BEGIN not in text or END not in text:
        return None
    block = text.split(BEGIN, 1)[1].split(END, 1)[0]
    for line in block.splitlines():
        if " commit check --hook " not in line:
            continue
        try:
            words = shlex.split(line)
        except ValueError:
            return None
        if "--build" in words[:-1]:
            return words[words.index("--build") + 1]
    return None


async def hooks_install(args: argparse.Namespace) -> int:
    policy_build = load_settings(args.config).policies.rollback.build_command
    hook, build = install_hook(args.repo, args.build, args.config, policy_build)
    kept = " (kept from the hook)" if build and not args.build else ""
    print(f"installed {hook} (build: {build or policy_build}{kept})")
    return 0
