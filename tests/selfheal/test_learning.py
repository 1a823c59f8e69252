"""The learning loop's pure core: templates, scope, scores, the Pattern state machine, hints."""

from datetime import UTC, datetime, timedelta

import pytest

from selfheal.errors import fingerprint
from selfheal.learning import (
    Advice,
    Hint,
    HintsRequest,
    Learning,
    LearningPolicy,
    LearningScope,
    Occurrence,
    PatternState,
    Resolution,
    advice_from,
    merge_templates,
    near_duplicate_groups,
    observe,
    relevance,
    rescore,
    scope_for,
    scope_words,
    score_from,
    select_learnings,
    similarity,
    slug,
    template_of,
)
from selfheal.models import AgentRunInput, TaskInput
from selfheal.sim import SimScriptError, mistake_error, mistake_fingerprint, parse_sim_script

T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
POLICY = LearningPolicy()


def learning(id: str, **kw) -> Learning:
    base = {"fingerprint": f"task-{id}", "kind": "task", "template": f"tests fail {id}",
            "slug": id, "status": "published", "score": 2}  # fmt: skip
    return Learning(id=id, **(base | kw))


def occurrence(n: int, at: datetime, task: str = "t1", agent: str = "SAM", **kw) -> Occurrence:
    base = {"fingerprint": "task-x", "kind": "task", "template": "x",
            "workflow_id": f"task-{task}", "task_id": task, "attempt": n, "agent": agent,
            "strategy": "initial", "at": at}  # fmt: skip
    return Occurrence(**(base | kw))


def test_hints_accept_bare_strings_and_travel_as_objects():
    task = TaskInput.model_validate(
        {"id": "a", "agent": "SAM", "title": "t", "hints": ["check the cookie"]}
    )
    assert task.hints == [Hint(text="check the cookie")]
    dumped = task.model_dump(mode="json")["hints"]
    assert dumped == [{"id": None, "text": "check the cookie", "advice": None, "fingerprints": []}]
    run = AgentRunInput.model_validate(
        {"workflow_id": "w", "task_id": "a", "title": "t", "agent": "SAM", "attempt": 1,
         "strategy": "initial", "adapter": {"kind": "sim"},
         "hints": ["plain", {"id": "L-1", "text": "learned", "advice": {"strategy": "fresh"}}]}
    )  # fmt: skip
    assert run.hints[0].id is None and run.hints[1].advice == Advice(strategy="fresh")


def test_templates_are_sentry_normalised_and_drain_merged():
    a = template_of("cannot import module billing from /srv/app/x.py at 2026-03-02T06:00:00Z")
    b = template_of("cannot import module orders from /srv/other/y.py at 2026-03-09T06:00:00Z")
    assert a == "cannot import module billing from <path> at <time>"
    assert similarity(a, b) == pytest.approx(7 / 8)
    assert merge_templates(a, b) == "cannot import module <*> from <path> at <time>"
    assert similarity(a, "cannot import module") == 0.0
    assert similarity(merge_templates(a, b), template_of("cannot import module x from /a at 1")) < 1


def test_near_duplicates_group_by_kind_and_keep_the_most_seen():
    a = learning("a", template="cannot import module billing here", occurrences=3)
    b = learning("b", template="cannot import module orders here", occurrences=5)
    c = learning("c", template="cannot import module orders here", kind="agent", occurrences=9)
    d = learning("d", template="tests fail in login", occurrences=9)
    groups = near_duplicate_groups([a, b, c, d], 0.8)
    assert [[x.id for x in g] for g in groups] == [["b", "a"]]
    assert near_duplicate_groups([d, c, b, a], 0.8) == groups  # whatever the order
    assert near_duplicate_groups([a, b], 0.9) == []


def test_scope_filters_then_ranks_by_score_relevance_recency():
    everyone = learning("everyone", score=3)
    migrations = learning("migrations", scope=LearningScope(words=["migration", "schema"]))
    in_repo = learning("in-repo", scope=LearningScope(repos=["shop"]), score=4)
    for_leo = learning("for-leo", scope=LearningScope(agents=["LEO"]), score=5)
    labelled = learning("labelled", scope=LearningScope(labels=["db"]), score=5)
    zero = learning("zero", score=0)
    retired = learning("retired", status="retired", score=5)
    pool = [zero, retired, migrations, everyone, in_repo, for_leo, labelled]

    def ids(**kw) -> list[str]:
        return [x.id for x in select_learnings(pool, HintsRequest(**({"agent": "SAM"} | kw)))]

    # what singles this work out comes first, then what applies everywhere
    assert ids(title="add the orders migration") == ["migrations", "everyone"]
    assert ids(title="rename a column", description="schema change") == ["migrations", "everyone"]
    assert ids(title="x", context={"repo": "shop", "labels": ["DB"]}) == [
        "labelled", "in-repo", "everyone",
    ]  # fmt: skip
    assert ids(agent="leo", title="x") == ["for-leo", "everyone"]
    assert ids(title="migration", limit=1) == ["migrations"]
    assert ids(title="css") == ["everyone"]
    transient = learning("blip", kind="transient", score=5)
    assert select_learnings([transient], HintsRequest(agent="SAM", title="x", kinds=["task"])) == []
    assert select_learnings([transient], HintsRequest(agent="SAM", title="x")) == []  # task, agent
    assert select_learnings([transient], HintsRequest(agent="SAM", title="x", kinds=["transient"]))
    schema = HintsRequest(agent="SAM", title="the schema migration")
    assert relevance(migrations.scope, schema) == 2
    assert relevance(migrations.scope, HintsRequest(agent="SAM", title="css")) is None


def test_the_pattern_publishes_at_the_second_occurrence_within_the_window():
    state = PatternState(fingerprint="task-x", kind="task", template="x")
    assert observe(state, occurrence(1, T0), POLICY) == "counted"
    late = T0 + timedelta(days=8)  # the first one is out of the 7-day window
    assert observe(state, occurrence(1, late, task="t2"), POLICY) == "counted"
    assert observe(state, occurrence(1, late, task="t2"), POLICY) == "duplicate"
    assert observe(state, occurrence(2, late + timedelta(hours=1), task="t2"), POLICY) == "publish"
    assert state.occurrences == 3 and state.tasks == ["t1", "t2"]


def test_a_published_pattern_regresses_after_more_than_two_repeats_once():
    state = PatternState(fingerprint="task-x", kind="task", template="x", status="published")
    events = [observe(state, occurrence(1, T0, task=f"r{i}"), POLICY) for i in range(5)]
    assert events == ["counted", "counted", "regress", "counted", "counted"]
    assert state.status == "regressed" and state.regressions == 1 and state.repeats == 5


def test_a_retired_pattern_that_comes_back_counts_afresh():
    state = PatternState(
        fingerprint="task-x", kind="task", template="x", status="retired", repeats=9, recent=[T0]
    )
    assert observe(state, occurrence(1, T0 + timedelta(days=40)), POLICY) == "counted"
    assert state.status == "new" and state.repeats == 0


def test_scope_comes_from_the_failing_tasks_titles_and_their_one_repo():
    state = PatternState(fingerprint="task-x", kind="task", template="x")
    observe(state, occurrence(1, T0, title="Add the orders migration", repo="shop"), POLICY)
    observe(state, occurrence(1, T0, task="t2", title="Users migration", repo="shop"), POLICY)
    scope = scope_for(state)
    assert scope.words[0] == "migration" and set(scope.words) == {"migration", "orders", "users"}
    assert scope_words(["orders migration", "users migration", "login page"]) == ["migration"]
    assert scope_words(["a page", "b table", "c cookie"]) == []  # unrelated work: everywhere
    assert scope.repos == ["shop"] and scope.agents == []
    observe(state, occurrence(1, T0, task="t3", title="x"), POLICY)  # one without a repo
    assert scope_for(state).repos == []


def test_advice_follows_what_resolved_it():
    resolved = [
        Resolution(strategy="fresh", agent="ALEX"),
        Resolution(strategy="fresh", agent="LEO"),
        Resolution(strategy="alternative", agent="ALEX"),
    ]
    assert advice_from("agent", resolved, ["same", "fresh"]) == Advice(
        strategy="fresh", agent="ALEX", avoid=["same"]
    )
    assert advice_from("task", [], ["initial", "same"]) == Advice(
        strategy="alternative", avoid=["same"]
    )
    assert advice_from("permanent", [], []).strategy is None


def test_scores_are_votes_that_stop_at_zero_and_a_ceiling():
    assert rescore(2, "succeeded", POLICY) == 3
    assert rescore(5, "succeeded", POLICY) == 5
    assert rescore(0, "failed_same", POLICY) == 0
    assert rescore(2, "failed_other", POLICY) == 2
    assert score_from(["failed_same", "failed_same", "succeeded"], POLICY) == 1


def test_slugs_are_readable_and_unique_per_fingerprint():
    assert slug("cannot import <path> module billing", "task-1").startswith(
        "cannot-import-module-billing-"
    )
    assert slug("x", "task-1") != slug("x", "task-2")


def test_the_mistake_token_and_its_fingerprint():
    steps = parse_sim_script("mistake:skip-migration,ok")
    assert steps[0].kind == "mistake" and steps[0].name == "skip-migration"
    assert mistake_fingerprint("skip-migration") == fingerprint(
        "task", mistake_error("skip-migration")
    )
    assert mistake_fingerprint("step-1") == mistake_fingerprint("step-2")  # numbers normalised
    assert mistake_fingerprint("a") != mistake_fingerprint("b")
    for bad in ("mistake:", "mistake:Bad Name!", "mistake:/x"):
        with pytest.raises(SimScriptError):
            parse_sim_script(bad)


def test_a_kind_that_is_not_fed_back_never_regresses():
    state = PatternState(fingerprint="transient-x", kind="transient", template="x",
                         status="published")  # fmt: skip
    events = [observe(state, occurrence(1, T0, task=f"r{i}"), POLICY) for i in range(5)]
    assert "regress" not in events and state.status == "published" and state.repeats == 5
