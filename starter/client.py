"""Client helpers: connect (temporalio.envconfig + settings), start an AgentTask, and read its
outcome (a ``failed`` task is a Failed execution whose ``TaskFailed`` error carries its status)."""

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.common import WorkflowIDReusePolicy
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.envconfig import ClientConfig

from selfheal.config import Settings
from selfheal.ids import check_task_id
from selfheal.learning import Hint
from selfheal.models import AdapterSpec, TaskInput, TaskPriority, TaskStatus
from selfheal.outcome import status_of_failure
from selfheal.shell import absolute_program, relative_program
from selfheal.sim import parse_sim_script
from selfheal.task_options import task_options
from workflows.agent_task import AgentTask


class UnreachableError(RuntimeError):
    pass


def connect_config() -> dict[str, Any]:
    """Connection settings from TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TLS and
    temporal.toml profiles; ``localhost:7233`` and ``default`` otherwise."""
    config: dict[str, Any] = dict(ClientConfig.load_client_connect_config())
    config.setdefault("target_host", "localhost:7233")
    config.setdefault("namespace", "default")
    return config


async def connect(plugins: list[Any] | None = None, **overrides: Any) -> Client:
    config = connect_config() | overrides
    try:
        return await Client.connect(
            **config, data_converter=pydantic_data_converter, plugins=plugins or []
        )
    except RuntimeError as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UnreachableError(
            f"cannot reach Temporal at {config['target_host']}: {first}"
        ) from None


def build_task_input(
    settings: Settings,
    *,
    agent: str,
    title: str,
    task_id: str | None = None,
    description: str = "",
    priority: TaskPriority = "normal",
    adapter: AdapterSpec | None = None,
    context: dict[str, Any] | None = None,
    hints: list[Hint | str] | None = None,
    time_scale: float | None = None,
) -> TaskInput:
    """A validated, scaled ``TaskInput``; raises ``ConfigError``/``ValueError`` on bad input."""
    name = agent.upper()
    settings.agent(name)
    if not title.strip():
        raise ValueError("the title must not be empty")
    if task_id is not None:
        check_task_id(task_id)
    adapter = adapter or AdapterSpec(kind=settings.agents[name].adapter)
    if adapter.kind == "sim":
        parse_sim_script("ok" if adapter.sim is None else adapter.sim)
    if adapter.kind == "command" and not (adapter.command or settings.agents[name].command):
        raise ValueError(f"the command adapter needs --command (or a command for {name})")
    if adapter.kind == "command" and adapter.command:
        adapter = adapter.model_copy(update={"command": from_start_dir(adapter.command)})
    if adapter.kind == "http" and not (adapter.url or settings.agents[name].url):
        raise ValueError(f"the http adapter needs --url (or a url for {name})")
    scale = time_scale or settings.time_scale
    policies = settings.policies.scaled(scale)
    return TaskInput(
        id=task_id or f"{name.lower()}-{uuid.uuid4().hex[:10]}",
        agent=name,
        title=title,
        description=description,
        priority=priority,
        adapter=adapter,
        peers=settings.peers(),
        lead=settings.agents[name].lead,
        retry=policies.retry,
        stuck=policies.stuck,
        escalation=policies.escalation,
        context=context or {},
        hints=[Hint.model_validate(h) for h in hints or []],
        time_scale=scale,
        learning=settings.learning.scaled(scale),
    )


def from_start_dir(command: str, start_dir: Path | None = None) -> str:
    """``command`` with a relative program (``./run-agent.sh``) made absolute against the
    directory the task is started from, where it is checked to exist; the task's attempts run
    in its workspace, where the relative path would not be found."""
    word = relative_program(command)
    if word is None:
        return command
    start_dir = start_dir or Path.cwd()
    if not (start_dir / word).is_file():
        raise ValueError(
            f"command {word!r} is not a file in {start_dir} (a relative command is resolved "
            "against the directory the task is started from)"
        )
    return absolute_program(command, start_dir)


async def start_task(
    client: Client, settings: Settings, input: TaskInput, *, rerun: bool = False
) -> WorkflowHandle[AgentTask, TaskStatus]:
    """Start ``AgentTask`` for ``input`` on the selfheal task queue (id ``task-<id>``).

    An id that is running, or that already ran, raises ``WorkflowAlreadyStartedError``: a
    finished task is run again only with ``rerun=True``."""
    return await client.start_workflow(
        AgentTask.run,
        input,
        **task_options(input, settings.task_queue),
        id_reuse_policy=(
            WorkflowIDReusePolicy.ALLOW_DUPLICATE
            if rerun
            else WorkflowIDReusePolicy.REJECT_DUPLICATE
        ),
    )


async def task_outcome(
    handle: WorkflowHandle[Any, Any], rpc_timeout: timedelta | None = None
) -> TaskStatus:
    """The status document of a finished AgentTask, whether it succeeded (the result) or failed
    (the ``TaskFailed`` error's details). Any other end (cancelled, terminated, timed out)
    raises the ``WorkflowFailureError``."""
    try:
        result = await handle.result(rpc_timeout=rpc_timeout)
    except WorkflowFailureError as err:
        status = status_of_failure(err)
        if status is None:
            raise
        return status
    return result if isinstance(result, TaskStatus) else TaskStatus.model_validate(result)
