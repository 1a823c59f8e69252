"""``patterns.write_docs`` against real files and a real git repository: front matter, a person's
prose kept, malformed front matter reported, dirty files left, one commit per analysis."""

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import frontmatter

from activities.ledger import Ledger
from activities.patterns import person_hint, write_docs
from selfheal.learning import Learning
from selfheal.patterns import DocsInput
from tests.learning_ledger import fail, git, git_repo, publish

NOW = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
ERROR = "ImportError: cannot import name 'Money' from billing.py"


def learnings(tmp_path: Path) -> list[Learning]:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    fp = ""
    for i, agent in enumerate(["SAM", "ALEX", "LEO"]):
        fp = fail(ledger, ERROR, f"t{i}", NOW - timedelta(hours=3 - i), agent=agent)
    return [publish(ledger, fp, "task", ERROR, NOW - timedelta(hours=1))]


def docs(items: list[Learning], analysis: str = "patterns-1") -> DocsInput:
    return DocsInput(analysis_id=analysis, learnings=items, now=NOW)


def test_writes_front_matter_then_prose_and_commits_once(tmp_path: Path):
    items = learnings(tmp_path)
    directory = git_repo(tmp_path / "repo")
    result = write_docs(directory, docs(items))
    assert result.problems == [] and result.written == [f"{items[0].slug}.md"]
    post = frontmatter.load(directory / result.written[0])
    assert post["id"] == items[0].id and post["status"] == "published"
    assert post["template"] == "importerror: cannot import name 'money' from billing.py"
    assert post["counts"]["occurrences"] == 3 and post["advice"]["strategy"] == "alternative"
    assert post["agents_seen"] == ["ALEX", "LEO", "SAM"]
    assert person_hint(post.content) == " ".join(items[0].hint.split())
    log = git(directory, "log", "--format=%H %s%n%b")
    assert log.count("Selfheal-Analysis: patterns-1") == 1 and result.commit in log

    again = write_docs(directory, docs(items))  # a retried activity: same files, same commit
    assert again.written == [] and again.commit == result.commit
    assert git(directory, "log", "--oneline").count("\n") == 2


def test_a_persons_prose_is_kept_and_their_hint_taken(tmp_path: Path):
    items = learnings(tmp_path)
    directory = git_repo(tmp_path / "repo")
    path = directory / write_docs(directory, docs(items)).written[0]
    post = frontmatter.load(path)
    edited = "# Money moved\n\nNotes by Dana.\n\n## Hint\n\nImport Money from billing.money now.\n"
    path.write_text(path.read_text().replace(post.content, edited))
    git(directory, "commit", "-qam", "dana: a better hint")

    items[0] = items[0].model_copy(update={"score": 4, "occurrences": 5})
    result = write_docs(directory, docs(items, "patterns-2"))
    assert result.kept_prose == [path.name] and result.problems == []
    assert [h.text for h in result.person_hints] == ["Import Money from billing.money now."]
    post = frontmatter.load(path)
    assert post.content.strip() == edited.strip()  # byte for byte
    assert post["score"] == 4 and post["hint_source"] == "person"
    assert "Selfheal-Analysis: patterns-2" in git(directory, "log", "-1", "--format=%b")

    third = write_docs(directory, docs(items, "patterns-3"))  # still the person's
    assert frontmatter.load(path).content.strip() == edited.strip() and third.written == []


def test_malformed_front_matter_is_reported_not_overwritten(tmp_path: Path):
    items = learnings(tmp_path)
    directory = git_repo(tmp_path / "repo")
    path = directory / f"{items[0].slug}.md"
    broken = "---\nid: [unclosed\nstatus: published\n---\n\nmy notes\n"
    path.write_text(broken)
    result = write_docs(directory, docs(items))
    assert len(result.problems) == 1 and "malformed front matter" in result.problems[0]
    assert path.read_text() == broken and result.commit is None


def test_uncommitted_edits_are_left_and_reported(tmp_path: Path):
    items = learnings(tmp_path)
    directory = git_repo(tmp_path / "repo")
    path = directory / write_docs(directory, docs(items)).written[0]
    path.write_text(path.read_text() + "\nwork in progress\n")
    (directory.parent.parent / "README.md").write_text("edited elsewhere\n")
    items[0] = items[0].model_copy(update={"score": 5})
    result = write_docs(directory, docs(items, "patterns-2"))
    assert any("uncommitted edits; left as it is" in p for p in result.problems)
    assert any("besides the learnings" in p for p in result.problems)
    assert path.read_text().endswith("work in progress\n")
    assert "edited elsewhere" in (directory.parent.parent / "README.md").read_text()
    assert git(directory, "status", "--porcelain").count(" M ") == 2  # nothing lost


def test_a_missing_or_read_only_directory_is_a_problem(tmp_path: Path):
    items = learnings(tmp_path)
    missing = write_docs(tmp_path / "nowhere", docs(items))
    assert "does not exist" in missing.problems[0] and missing.written == []
    read_only = tmp_path / "ro"
    read_only.mkdir()
    read_only.chmod(0o500)
    try:
        result = write_docs(read_only, docs(items))
    finally:
        read_only.chmod(0o700)
    if os.geteuid() != 0:  # root writes anywhere
        assert "not writable" in result.problems[0]


def test_without_git_files_are_written_and_nothing_committed(tmp_path: Path):
    items = learnings(tmp_path)
    directory = tmp_path / "plain"
    directory.mkdir()
    result = write_docs(directory, docs(items))
    assert result.written and result.commit is None and result.problems == []
