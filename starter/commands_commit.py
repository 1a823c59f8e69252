"""``selfheal commit check`` and ``selfheal hooks install``: the ways into the git rollback."""

import argparse
import json
import shlex
import stat
import sys
from pathlib import Path

from activities.git import GitError, git_repo
from selfheal.config import load_settings
from selfheal.rollback import GuardStatus
from starter.client import UnreachableError, connect
from starter.commits import build_check, check_build_command, enqueue, read_commit, wait_for_guard
from starter.errors import UsageError

BEGIN, END = "# >>> selfheal post-commit >>>", "# <<< selfheal post-commit <<<"
_OK_STATES = frozenset({"passed", "reverted", "flaky", "skipped"})


def register(sub: argparse._SubParsersAction) -> None:
    commit = sub.add_parser("commit", help="guard commits: build, revert a breaking one")
    cmds = commit.add_subparsers(dest="commit_command", required=True, parser_class=type(commit))
    check = cmds.add_parser("check", help="guard one commit (CommitGuard)")
    check.add_argument("--repo", required=True, help="path of the git checkout")
    check.add_argument("--sha", help="the commit (default HEAD)")
    check.add_argument("--build", help="build command (default: the rollback policy's)")
    check.add_argument("--time-scale", type=float, help="divide every policy duration by N")
    check.add_argument("--wait", action="store_true", help="wait and print the verdict")
    check.add_argument("--json", action="store_true")
    check.add_argument("--hook", action="store_true", help=argparse.SUPPRESS)
    check.set_defaults(handler=commit_check)

    hooks = sub.add_parser("hooks", help="install the git hook that guards every commit")
    hook_cmds = hooks.add_subparsers(dest="hooks_command", required=True, parser_class=type(hooks))
    install = hook_cmds.add_parser("install", help="install the post-commit hook")
    install.add_argument("--repo", required=True, help="path of the git checkout")
    install.add_argument("--build", help="build command (default: the rollback policy's)")
    install.set_defaults(handler=hooks_install)


async def commit_check(args: argparse.Namespace) -> int:
    if args.time_scale is not None and args.time_scale <= 0:
        raise UsageError(f"--time-scale must be positive, got {args.time_scale:g}")
    settings = load_settings(args.config)
    try:
        commit = read_commit(args.repo, args.sha)
    except GitError as err:
        raise UsageError(str(err)) from None
    check = build_check(settings, commit, build=args.build, time_scale=args.time_scale)
    try:
        client = await connect()
    except UnreachableError as err:
        if not args.hook:
            raise
        # From the hook: the commit stands; say why it is not guarded, and never fail it.
        print(f"selfheal: {err}; commit {commit.sha[:12]} is not guarded", file=sys.stderr)
        return 0
    workflow_id = await enqueue(client, settings, check)
    if not args.wait:
        print(json.dumps({"workflow_id": workflow_id, "sha": commit.sha}) if args.json
              else workflow_id)  # fmt: skip
        return 0
    status = await wait_for_guard(client, workflow_id)
    _print_status(status, args.json)
    if status.state == "setup-broken":
        raise UsageError(f"{status.reason} (build command: {status.build_command})")
    return 0 if status.state in _OK_STATES else 1


def _print_status(status: GuardStatus, as_json: bool) -> None:
    if as_json:
        print(status.model_dump_json(indent=2))
        return
    print(f"{status.workflow_id}  {status.state}  {status.reason or ''}")
    for b in status.builds:
        print(f"  build {b.sha[:12]}  {'ok' if b.ok else f'exit {b.exit_code}'}  {b.duration:.2f}s")
    if status.revert_sha:
        print(f"  revert {status.revert_sha}")
    if status.escalation_id:
        print(f"  escalated: {status.escalation_id}")


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


def install_hook(repo_path: str, build: str | None, config: str | None) -> Path:
    try:
        repo = git_repo(repo_path)
    except GitError as err:
        raise UsageError(str(err)) from None
    if not repo.working_tree_dir:
        raise UsageError(f"{repo_path} is a bare repository; install the hook in a checkout")
    if build:
        check_build_command(build)
    hooks_dir = Path(repo.working_tree_dir) / repo.git.rev_parse("--git-path", "hooks")
    hook = hooks_dir / "post-commit"
    block = hook_script(build, config)
    try:
        current = hook.read_text() if hook.exists() else ""
        if BEGIN in current and END in current:
            head, rest = current.split(BEGIN, 1)
            text = head + block + rest.split(END, 1)[1].lstrip("\n")
        elif current:
            text = current.rstrip("\n") + "\n\n" + block
        else:
            text = "#!/bin/sh\n" + block
        hooks_dir.mkdir(parents=True, exist_ok=True)
        hook.write_text(text)
        hook.chmod(hook.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"cannot write the hook {hook}: {err.strerror or err}") from None
    return hook


async def hooks_install(args: argparse.Namespace) -> int:
    hook = install_hook(args.repo, args.build, args.config)
    build = args.build or load_settings(args.config).policies.rollback.build_command
    print(f"installed {hook} (build: {build})")
    return 0
