"""``patterns.write_docs``: the learnings as ``docs/patterns/<slug>.md`` files (M2.5).

Each file is a YAML front matter block of machine fields, then prose a person can read and edit.
The front matter records the hash of the prose selfheal last wrote (``prose_sha256``): when the
prose no longer has that hash a person edited it, and it is never written again — only the
front matter is refreshed, and the hint under its ``## Hint`` heading becomes the learning's hint.
A file whose front matter does not parse is reported and left alone. In a git repository the
files are committed together, one commit per analysis (its id in a ``Selfheal-Analysis``
trailer, so a retried activity finds its commit instead of making a second one); a file with
uncommitted edits of someone else is reported and left as it is.
"""

import asyncio
import hashlib
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import frontmatter
import git
import yaml
from temporalio import activity

from selfheal.config import Settings
from selfheal.learning import Learning
from selfheal.patterns import DocsInput, DocsResult, PersonHint

TRAILER = "Selfheal-Analysis"
_HINT = re.compile(r"^##\s+Hint\s*$\n(?P<body>.*?)(?=^##\s|\Z)", re.M | re.S)


def prose_hash(prose: str) -> str:
    return hashlib.sha256(prose.strip().encode()).hexdigest()


def person_hint(prose: str) -> str | None:
    """The text under ``## Hint`` in a learning file's prose, if any."""
    match = _HINT.search(prose)
    text = " ".join(match.group("body").split()) if match else ""
    return text or None


def _stamp(value: Any) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def front_matter(item: Learning, prose_sha: str) -> dict[str, Any]:
    return {
        "id": item.id,
        "fingerprint": item.fingerprint,
        "fingerprints": item.all_prints(),
        "kind": item.kind,
        "template": item.template,
        "status": item.status,
        "merged_into": item.merged_into,
        "scope": item.scope.model_dump(),
        "advice": item.advice.model_dump(),
        "hint": item.hint,
        "hint_source": item.hint_source,
        "score": item.score,
        "counts": {
            "occurrences": item.occurrences,
            "repeats_after_publication": item.repeats_after_publication,
            "regressions": item.regressions,
            "tasks": item.tasks_seen,
            "uses": item.uses,
            "successes": item.successes,
            "failures": item.failures,
        },
        "agents_seen": item.agents_seen,
        "first_seen": _stamp(item.first_seen),
        "last_seen": _stamp(item.last_seen),
        "published_at": _stamp(item.published_at),
        "retired_at": _stamp(item.retired_at),
        "prose_sha256": prose_sha,
    }


def prose(item: Learning) -> str:
    """The generated prose: what happens, the hint, what worked; a person may rewrite any of it."""
    advice = item.advice
    lines = [
        f"# {item.template}",
        "",
        f"A `{item.kind}` failure seen {item.occurrences} time(s) in {item.tasks_seen} task(s)"
        + (f", by {', '.join(item.agents_seen)}" if item.agents_seen else "")
        + ".",
        "",
        "## Hint",
        "",
        item.hint,
        "",
        "## What resolved it",
        "",
        f"- strategy: {advice.strategy or 'none known (escalate)'}",
    ]
    if advice.agent:
        lines.append(f"- agent: {advice.agent}")
    if advice.avoid:
        lines.append(f"- did not work: {', '.join(advice.avoid)}")
    lines += [
        "",
        "Edit this prose freely: selfheal keeps a person's text and only refreshes the front "
        "matter above. The text under *Hint* is what the next dispatches are given.",
    ]
    return "\n".join(lines)


def render(meta: dict[str, Any], body: str) -> str:
    head = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, width=100)
    return f"---\n{head}---\n\n{body.strip()}\n"


class PatternDocs:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @activity.defn(name="patterns.write_docs")
    async def write_docs(self, input: DocsInput) -> DocsResult:
        info = activity.info()
        # A retry runs only once Temporal has given the previous attempt up (its heartbeats
        # stopped): a git index lock older than this attempt is that attempt's, left by a crash.
        stale_before = info.current_attempt_scheduled_time if info.attempt > 1 else None
        work = asyncio.ensure_future(
            asyncio.to_thread(write_docs, self.settings.patterns_dir, input, stale_before)
        )
        while not work.done():
            activity.heartbeat()
            await asyncio.wait({work}, timeout=2.0)
        return work.result()


def write_docs(
    directory: Path, input: DocsInput, stale_before: datetime | None = None
) -> DocsResult:
    result = DocsResult(directory=str(directory))
    if not directory.is_dir():
        result.problems.append(
            f"patterns directory {directory} does not exist (create it or set "
            "SELFHEAL_PATTERNS_DIR); the learnings stay in the ledger"
        )
        return result
    if not os.access(directory, os.W_OK | os.X_OK):
        result.problems.append(f"patterns directory {directory} is not writable")
        return result
    repo = _repo(directory)
    dirty = _dirty_paths(repo) if repo else set()
    others = sorted(p for p in dirty if p.parent != directory.resolve() or p.suffix != ".md")
    if others:
        result.problems.append(
            f"the git repository at {repo.working_tree_dir if repo else directory} has "
            f"{len(others)} uncommitted change(s) besides the learnings; they are left out of "
            "the commit, untouched"
        )
    planned: dict[Path, str] = {}
    for item in sorted(input.learnings, key=lambda x: x.slug):
        path = directory / f"{item.slug}.md"
        text = _plan(path, item, result)
        if text is not None:
            planned[path] = text
    for path, text in planned.items():
        current = path.read_text() if path.exists() else None
        if current == text:
            result.unchanged.append(path.name)
            continue
        if path.resolve() in dirty:
            result.problems.append(
                f"{path.name} has uncommitted edits; left as it is (commit them and the next "
                "analysis refreshes it)"
            )
            continue
        tmp = path.with_suffix(".md.tmp")
        tmp.write_text(text)
        tmp.replace(path)
        result.written.append(path.name)
    if repo is not None:
        # Ours to commit: every file now as planned that HEAD does not have yet (written now, or
        # by an attempt that crashed before its commit); a person's edits are never among them.
        ours = [p for p in planned if p.read_text() == planned[p] and _differs_from_head(repo, p)]
        _clear_stale_lock(repo, stale_before, result)
        result.commit = _commit(repo, ours, input.analysis_id, result)
    return result


def _clear_stale_lock(repo: git.Repo, stale_before: datetime | None, result: DocsResult) -> None:
    lock = Path(repo.git_dir) / "index.lock"
    if stale_before is None or not lock.exists():
        return
    if datetime.fromtimestamp(lock.stat().st_mtime, UTC) < stale_before:
        lock.unlink(missing_ok=True)
        result.notes.append(f"removed {lock}, left by an analysis attempt that crashed")


def _plan(path: Path, item: Learning, result: DocsResult) -> str | None:
    """The file's new text; None (and a problem) when its front matter is malformed."""
    body, sha = prose(item), None
    if path.exists():
        try:
            post = frontmatter.loads(path.read_text())
            if not isinstance(post.metadata, dict) or not post.metadata:
                raise ValueError("no front matter block")
        except (yaml.YAMLError, ValueError, UnicodeDecodeError) as err:
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            result.problems.append(
                f"{path.name}: malformed front matter ({first}); not overwritten"
            )
            return None
        recorded = str(post.metadata.get("prose_sha256") or "")
        if recorded and prose_hash(post.content) != recorded:
            body, sha = post.content, recorded  # a person's prose: kept as it is
            result.kept_prose.append(path.name)
            text = person_hint(post.content)
            if text and text != " ".join(item.hint.split()):
                result.person_hints.append(PersonHint(learning_id=item.id, text=text))
                item = item.model_copy(update={"hint": text, "hint_source": "person"})
    return render(front_matter(item, sha or prose_hash(body)), body)


def _repo(directory: Path) -> git.Repo | None:
    try:
        return git.Repo(directory, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return None


def _dirty_paths(repo: git.Repo) -> set[Path]:
    """Files whose working copy differs from HEAD (staged or not); untracked ones are not."""
    root = Path(repo.working_tree_dir or ".")
    paths: set[Path] = set()
    try:
        diffs = [*repo.index.diff(None), *(repo.index.diff("HEAD") if repo.head.is_valid() else [])]
    except git.GitCommandError:
        return paths
    for diff in diffs:
        for name in (diff.a_path, diff.b_path):
            if name:
                paths.add((root / name).resolve())
    return paths


def _commit(repo: git.Repo, paths: list[Path], analysis_id: str, result: DocsResult) -> str | None:
    """One commit of ``paths`` for the analysis; the existing one if a retry finds it made."""
    done = _commit_of(repo, analysis_id)
    if not paths:
        return done
    if done is not None:
        # Made before a crash, and the files were written again with the same content.
        pending = [p for p in paths if _differs_from_head(repo, p)]
        if not pending:
            return done
    names = [str(p.resolve()) for p in paths]
    message = (
        f"docs(patterns): learnings after analysis {analysis_id}\n\n"
        f"{len(paths)} file(s) written by selfheal's pattern analysis.\n\n"
        f"{TRAILER}: {analysis_id}\n"
    )
    try:
        repo.git.add("--", *names)
        repo.git.execute(
            [
                "git",
                *_identity(repo),
                "commit",
                "--no-verify",
                "--only",
                "-m",
                message,
                "--",
                *names,
            ]
        )
    except git.GitCommandError as err:
        first = (err.stderr or str(err)).strip().splitlines()
        result.problems.append(
            f"git commit in {repo.working_tree_dir} failed: {first[-1] if first else err}; "
            "the files are written, not committed"
        )
        return None
    return repo.head.commit.hexsha


def _commit_of(repo: git.Repo, analysis_id: str) -> str | None:
    if not repo.head.is_valid():
        return None
    for commit in repo.iter_commits(max_count=50):
        if f"{TRAILER}: {analysis_id}" in str(commit.message):
            return commit.hexsha
    return None


def _differs_from_head(repo: git.Repo, path: Path) -> bool:
    root = Path(repo.working_tree_dir or ".").resolve()
    rel = path.resolve().relative_to(root).as_posix()
    try:
        return repo.git.show(f"HEAD:{rel}").rstrip() != path.read_text().rstrip()
    except git.GitCommandError:
        return True


def _identity(repo: git.Repo) -> list[str]:
    """A committer for a repository (or machine) that has none configured."""
    reader = repo.config_reader()
    if reader.has_option("user", "email") and reader.has_option("user", "name"):
        return []
    return ["-c", "user.name=selfheal", "-c", "user.email=selfheal@localhost"]
