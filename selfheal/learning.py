"""Learnings (M2.5): failure patterns, the learnings drawn from them, and the hints that carry
them into the next dispatch. Pure functions and pydantic models, safe inside workflows.

- A *pattern* is one fingerprint (``selfheal.errors.fingerprint``: Sentry-style, volatile parts
  normalised away); its normalised message is its *template*. Near-duplicate templates (same
  kind, same number of tokens, most tokens equal: Drain's ``simSeq``) are merged by the weekly
  analysis, the differing tokens becoming ``<*>``.
- A *learning* is a published pattern with its advice (the strategy and agent that resolved it
  most often, the strategies that did not) and a hint text. Its *score* is a vote count in the
  manner of ExpeL: it starts at ``initial_score``; a use whose attempt succeeded adds one (up to
  ``max_score``), a use whose attempt failed with the same fingerprint again takes one away; a
  learning at zero is no longer attached to new dispatches.
- Its *scope* says which dispatches it is attached to: agents and repos (empty: any), labels
  (empty: any) and words (empty: any; else at least one must occur in the task's title or
  description).
"""

import hashlib
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from selfheal.errors import normalize
from selfheal.policies import RetryStrategy, Seconds

LearningStatus = Literal["new", "published", "regressed", "retired", "merged"]
PatternStatus = Literal["new", "published", "regressed", "retired"]
UseOutcome = Literal["succeeded", "failed_same", "failed_other"]
HintSource = Literal["generated", "person"]
ATTACHABLE: frozenset[str] = frozenset({"published", "regressed"})

DAY = 86400.0
WILDCARD = "<*>"


class LearningPolicy(BaseModel):
    """DESIGN §5 "Learning", all overridable in ``selfheal.toml`` (``[policies.learning]``).

    ``feedback`` off still logs every failure and runs the Pattern entities (so a week with
    learning off can be measured the same way); it only stops learnings reaching dispatches."""

    feedback: bool = True
    min_occurrences: int = Field(default=2, ge=1)
    window: Seconds = 7 * DAY
    max_repeats_after_learning: int = Field(default=2, ge=0)
    retire_after: Seconds = 30 * DAY
    max_attached: int = Field(default=5, ge=0)
    # Kinds whose learnings reach dispatches. A transient blip or a permanent refusal is counted
    # and reported like any pattern, but what an agent is told changes neither.
    feedback_kinds: list[str] = Field(default_factory=lambda: ["task", "agent"])
    initial_score: int = Field(default=2, ge=1)
    max_score: int = Field(default=5, ge=1)
    merge_similarity: float = Field(default=0.8, gt=0, le=1)

    def scaled(self, factor: float) -> "LearningPolicy":
        return self.model_copy(
            update={"window": self.window / factor, "retire_after": self.retire_after / factor}
        )


class Advice(BaseModel):
    """What the next attempt after this failure should do."""

    strategy: RetryStrategy | None = None
    agent: str | None = None
    avoid: list[RetryStrategy] = Field(default_factory=list)


class Hint(BaseModel):
    """One hint an attempt is given: a person's free text (no id), or a learning's.

    A bare string (the older form, still accepted from orchestrators and recorded histories)
    is a hint with that text and nothing else."""

    id: str | None = None
    text: str
    advice: Advice | None = None
    fingerprints: list[str] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        return {"text": value} if isinstance(value, str) else value


class LearningScope(BaseModel):
    agents: list[str] = Field(default_factory=list)
    repos: list[str] = Field(default_factory=list)
    labels: list[str] = Field(default_factory=list)
    words: list[str] = Field(default_factory=list)


class Learning(BaseModel):
    """A pattern and what was learned from it, as the ledger keeps it."""

    id: str
    fingerprint: str
    fingerprints: list[str] = Field(default_factory=list)
    kind: str
    template: str
    slug: str
    status: LearningStatus = "new"
    scope: LearningScope = Field(default_factory=LearningScope)
    advice: Advice = Field(default_factory=Advice)
    hint: str = ""
    hint_source: HintSource = "generated"
    score: int = 2
    occurrences: int = 0
    repeats_after_publication: int = 0
    regressions: int = 0
    uses: int = 0
    successes: int = 0
    failures: int = 0
    agents_seen: list[str] = Field(default_factory=list)
    tasks_seen: int = 0
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    published_at: datetime | None = None
    retired_at: datetime | None = None
    merged_into: str | None = None

    def all_prints(self) -> list[str]:
        """Its own fingerprint and those of the near-duplicates merged into it."""
        return sorted({self.fingerprint, *self.fingerprints})

    def covers(self, fingerprint: str) -> bool:
        return fingerprint in self.all_prints()

    def as_hint(self) -> Hint:
        return Hint(id=self.id, text=self.hint, advice=self.advice, fingerprints=self.all_prints())


class Occurrence(BaseModel):
    """One failed attempt, as the ``Pattern`` entity of its fingerprint hears of it."""

    fingerprint: str
    kind: str
    template: str
    error: str = ""
    workflow_id: str
    task_id: str
    attempt: int
    agent: str
    strategy: str
    title: str = ""
    description: str = ""
    repo: str | None = None
    labels: list[str] = Field(default_factory=list)
    learning_ids: list[str] = Field(default_factory=list)
    at: datetime


class UseRecord(BaseModel):
    """One learning given to one attempt, and how that attempt ended."""

    learning_id: str
    workflow_id: str
    attempt: int
    agent: str
    how: Literal["attached", "advised"]
    outcome: UseOutcome
    fingerprint: str | None = None
    at: datetime


# -- identifiers ---------------------------------------------------------------------------------


def learning_id(fingerprint: str) -> str:
    return f"L-{fingerprint}"


def pattern_workflow_id(fingerprint: str) -> str:
    return f"pattern-{fingerprint}"


def slug(template: str, fingerprint: str) -> str:
    """A file name for the learning: the template's words (placeholders dropped), then a short
    hash of the fingerprint so two learnings never share a file."""
    words = [w for w in re.findall(r"[a-z][a-z0-9]*", re.sub(r"<[^>]*>", " ", template.lower()))]
    head = "-".join(words[:7])[:60].strip("-") or "pattern"
    return f"{head}-{hashlib.sha256(fingerprint.encode()).hexdigest()[:6]}"


# -- templates (Sentry normalisation, Drain similarity) -------------------------------------------


def template_of(error: str) -> str:
    return normalize(error)


def similarity(a: str, b: str) -> float:
    """Drain's ``simSeq``: the share of positions whose tokens are equal (a wildcard equals
    anything); templates of different lengths are not similar at all."""
    ta, tb = a.split(), b.split()
    if len(ta) != len(tb) or not ta:
        return 1.0 if ta == tb else 0.0
    same = sum(1 for x, y in zip(ta, tb, strict=True) if x == y or WILDCARD in (x, y))
    return same / len(ta)


def merge_templates(a: str, b: str) -> str:
    ta, tb = a.split(), b.split()
    if len(ta) != len(tb):
        return a
    return " ".join(x if x == y else WILDCARD for x, y in zip(ta, tb, strict=True))


def near_duplicate_groups(learnings: Sequence[Learning], threshold: float) -> list[list[Learning]]:
    """Groups of learnings (of one kind) whose templates are near-duplicates. The first of each
    group is the one that survives: most occurrences, then the earliest, then the smallest id.
    Deterministic whatever the input order."""
    order = sorted(
        learnings,
        key=lambda x: (-x.occurrences, x.first_seen or datetime.max, x.id),
    )
    groups: list[tuple[str, list[Learning]]] = []
    for item in order:
        for i, (template, members) in enumerate(groups):
            if members[0].kind == item.kind and similarity(template, item.template) >= threshold:
                members.append(item)
                groups[i] = (merge_templates(template, item.template), members)
                break
        else:
            groups.append((item.template, [item]))
    return [members for _, members in groups if len(members) > 1]


# -- scope -----------------------------------------------------------------------------------------

_STOPWORDS_TEXT = """a an and are as at be but by can do does for from has have if in into is it
    its not no of on or so than that the then this to too was were when which while will with
    without add adds added fix fixes fixed update updates make use new remove change changes
    refactor implement support some more less again also task tasks please should need needs"""
_STOPWORDS = frozenset(_STOPWORDS_TEXT.split())
_WORD = re.compile(r"[a-z][a-z0-9_]+(?:-[a-z0-9_]+)*")


def words(*texts: str) -> set[str]:
    found: set[str] = set()
    for text in texts:
        found.update(w for w in _WORD.findall(text.lower()) if len(w) > 2 and w not in _STOPWORDS)
    return found


def scope_words(titles: Iterable[str], limit: int = 8) -> list[str]:
    """The words that characterise the failing tasks: those in at least half of their titles
    (one vote per task), the most common first. Failures spread over unrelated work share no
    such word, and their learning applies everywhere."""
    titles = list(titles)
    counts: Counter[str] = Counter()
    for title in titles:
        counts.update(words(title))
    common = [(w, n) for w, n in counts.items() if 2 * n >= len(titles)]
    return [w for w, _ in sorted(common, key=lambda kv: (-kv[1], kv[0]))[:limit]]


def context_repo(context: Mapping[str, Any]) -> str | None:
    repo = context.get("repo")
    return str(repo) if repo else None


def context_labels(context: Mapping[str, Any]) -> list[str]:
    labels = context.get("labels") or []
    if isinstance(labels, str):
        labels = [labels]
    return sorted({str(label).lower() for label in labels if label})


class HintsRequest(BaseModel):
    """Input of ``learning.hints_for``: the dispatch the learnings are for."""

    agent: str
    title: str
    description: str = ""
    context: dict[str, Any] = Field(default_factory=dict)
    limit: int = 5
    kinds: list[str] = Field(default_factory=lambda: ["task", "agent"])


def relevance(scope: LearningScope, dispatch: HintsRequest) -> int | None:
    """How well a dispatch fits a scope: None when it is out of scope, else the number of scope
    words found in its title and description."""
    if scope.agents and dispatch.agent.upper() not in {a.upper() for a in scope.agents}:
        return None
    if scope.repos and context_repo(dispatch.context) not in scope.repos:
        return None
    labels = {x.lower() for x in scope.labels}
    if labels and not labels & set(context_labels(dispatch.context)):
        return None
    if not scope.words:
        return 0
    found = words(dispatch.title, dispatch.description) & set(scope.words)
    return len(found) if found else None


def select_learnings(learnings: Iterable[Learning], request: HintsRequest) -> list[Learning]:
    """The learnings to attach to a dispatch: published (or regressed) ones of ``kinds`` with a
    positive score whose scope matches. The ones whose scope singles this work out (a word of
    its title, its repo, its labels or agent) come before those that apply to all work; within
    each, best score first, then the most relevant, then the most recently published."""
    ranked: list[tuple[int, int, int, float, str, Learning]] = []
    for item in learnings:
        if item.status not in ATTACHABLE or item.score <= 0 or item.kind not in request.kinds:
            continue
        fit = relevance(item.scope, request)
        if fit is None:
            continue
        scope = item.scope
        specific = fit > 0 or bool(scope.agents or scope.repos or scope.labels)
        published = item.published_at.timestamp() if item.published_at else 0.0
        ranked.append((0 if specific else 1, -item.score, -fit, -published, item.id, item))
    return [r[-1] for r in sorted(ranked, key=lambda r: r[:5])[: request.limit]]


# -- advice, hint text, score ---------------------------------------------------------------------

_DEFAULT_STRATEGY: dict[str, RetryStrategy | None] = {
    "transient": "same",
    "agent": "fresh",
    "task": "alternative",
    "permanent": None,
}


class Resolution(BaseModel):
    """The attempt that succeeded after a failure of the same task."""

    strategy: str
    agent: str


def advice_from(
    kind: str, resolutions: Sequence[Resolution], failed_strategies: Iterable[str]
) -> Advice:
    """The strategy (and, for ``agent`` faults, the agent) that resolved the pattern most often;
    the retry strategies that failed with it and never resolved it. Without a resolution, the
    ladder's own preference for the kind."""
    retry = ("same", "fresh", "alternative")
    by_strategy = Counter(r.strategy for r in resolutions if r.strategy in retry)
    strategy = (
        min(by_strategy, key=lambda s: (-by_strategy[s], retry.index(s)))
        if by_strategy
        else _DEFAULT_STRATEGY.get(kind)
    )
    agent = None
    if kind == "agent":
        by_agent = Counter(r.agent for r in resolutions)
        agent = min(by_agent, key=lambda a: (-by_agent[a], a)) if by_agent else None
    avoid = sorted({s for s in failed_strategies if s in retry} - set(by_strategy) - {strategy})
    return Advice(strategy=strategy, agent=agent, avoid=avoid)


def hint_text(learning: Learning) -> str:
    """The generated hint: what went wrong, what worked and what did not."""
    advice = learning.advice
    parts = [
        f"Known {learning.kind} failure (seen {learning.occurrences}x"
        + (f" by {', '.join(learning.agents_seen)}" if learning.agents_seen else "")
        + f"): {learning.template!r}."
    ]
    if advice.strategy:
        who = f" on {advice.agent}" if advice.agent else ""
        parts.append(f"What resolved it: the {advice.strategy} strategy{who}.")
    if advice.avoid:
        parts.append(f"What did not: {', '.join(advice.avoid)}.")
    parts.append("Check for this mistake before you finish.")
    return " ".join(parts)


def rescore(score: int, outcome: UseOutcome, policy: LearningPolicy) -> int:
    if outcome == "succeeded":
        return min(policy.max_score, score + 1)
    if outcome == "failed_same":
        return max(0, score - 1)
    return score


def score_from(outcomes: Iterable[UseOutcome], policy: LearningPolicy) -> int:
    score = policy.initial_score
    for outcome in outcomes:
        score = rescore(score, outcome, policy)
    return score


def use_outcome(attempt_outcome: str, failed_fingerprint: str | None, learning: Hint) -> UseOutcome:
    if attempt_outcome == "succeeded":
        return "succeeded"
    if failed_fingerprint and failed_fingerprint in learning.fingerprints:
        return "failed_same"
    return "failed_other"


def in_window(times: Iterable[datetime], now: datetime, window: float) -> list[datetime]:
    return sorted(t for t in times if (now - t).total_seconds() <= window)


# -- the Pattern entity's state machine ----------------------------------------------------------

_KEEP = 20  # distinct tasks, titles and agents kept for the scope; older ones drop off


class PatternState(BaseModel):
    """What the ``Pattern`` entity of one fingerprint knows; carried across continue-as-new."""

    fingerprint: str
    kind: str
    template: str
    status: PatternStatus = "new"
    occurrences: int = 0
    recent: list[datetime] = Field(default_factory=list)
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    published_at: datetime | None = None
    learning_id: str | None = None
    repeats: int = 0
    regressions: int = 0
    agents: list[str] = Field(default_factory=list)
    tasks: list[str] = Field(default_factory=list)
    titles: list[str] = Field(default_factory=list)
    repos: list[str] = Field(default_factory=list)
    repo_missing: bool = False
    strategies_failed: list[str] = Field(default_factory=list)
    # (workflow id, attempt) of the latest occurrences: a re-delivered signal counts once.
    recent_keys: list[str] = Field(default_factory=list)
    open_escalations: list[str] = Field(default_factory=list)


PatternEvent = Literal["duplicate", "counted", "publish", "regress"]


def _remember(items: list[str], item: str | None) -> None:
    if item and item not in items:
        items.append(item)
        del items[:-_KEEP]


def observe(state: PatternState, occurrence: Occurrence, policy: LearningPolicy) -> PatternEvent:
    """Count one occurrence into ``state`` (in place) and say what the entity must do now:
    publish the learning (``min_occurrences`` within the window), open a regression (a published
    pattern recurring more than ``max_repeats_after_learning`` times), or nothing more."""
    at = occurrence.at
    key = f"{occurrence.workflow_id}#{occurrence.attempt}"
    if key in state.recent_keys:
        return "duplicate"
    state.recent_keys = [*state.recent_keys, key][-50:]
    if state.status == "retired":  # it is back: count afresh
        state.status, state.recent, state.repeats = "new", [], 0
    state.occurrences += 1
    state.first_seen = state.first_seen or at
    state.last_seen = max(state.last_seen or at, at)
    state.recent = in_window([*state.recent, at], at, policy.window)[-policy.min_occurrences :]
    _remember(state.agents, occurrence.agent)
    if occurrence.task_id not in state.tasks:
        _remember(state.tasks, occurrence.task_id)
        _remember(state.titles, occurrence.title)
    _remember(state.repos, occurrence.repo)
    state.repo_missing = state.repo_missing or occurrence.repo is None
    if occurrence.strategy != "initial":
        _remember(state.strategies_failed, occurrence.strategy)
    if state.status != "new":
        state.repeats += 1
    return decide(state, policy)


def decide(state: PatternState, policy: LearningPolicy) -> PatternEvent:
    """What the entity owes ``state`` now (also after it was rebuilt from the ledger): publish a
    new pattern seen ``min_occurrences`` times within the window, or regress a published one
    that recurred more than ``max_repeats_after_learning`` times (the regression is counted).
    Only a kind whose learnings reach dispatches (``feedback_kinds``) can regress: a transient
    blip recurs whatever anyone learned."""
    if state.status == "new":
        return "publish" if len(state.recent) >= policy.min_occurrences else "counted"
    fed_back = state.kind in policy.feedback_kinds  # else no learning reached a dispatch
    if (
        fed_back
        and state.status == "published"
        and state.repeats > policy.max_repeats_after_learning
    ):
        state.status = "regressed"
        state.regressions += 1
        return "regress"
    return "counted"


def scope_for(state: PatternState) -> LearningScope:
    """A new learning's scope: every agent; the one repo its failures came from, when they all
    named the same one; the words of the failing tasks' titles."""
    repos = state.repos if not state.repo_missing and len(state.repos) == 1 else []
    return LearningScope(repos=repos, words=scope_words(state.titles))
