"""The plugin respects its host (DESIGN §3): the host's payload codec is kept end to end, a
payload converter of its own is kept when it speaks pydantic and refused in one clear message
when it does not, and a client or a replayer built with the plugin touches no file."""

from collections.abc import Sequence
from pathlib import Path

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import PydanticPayloadConverter
from temporalio.converter import DataConverter, DefaultPayloadConverter, PayloadCodec
from temporalio.worker import Replayer, Worker

from selfheal.config import Settings
from selfheal.models import AdapterSpec, TaskStatus
from selfheal.plugins import ConverterConflict, SelfHealing
from starter.client import build_task_input, start_task, task_outcome

ENCRYPTED = b"binary/test-encrypted"
HISTORIES = Path(__file__).parents[1] / "histories"


class XorCodec(PayloadCodec):
    """A stand-in for an encryption codec: the whole payload, XORed with a key."""

    key = 0x5A

    def _flip(self, data: bytes) -> bytes:
        return bytes(b ^ self.key for b in data)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [
            Payload(metadata={"encoding": ENCRYPTED}, data=self._flip(p.SerializeToString()))
            for p in payloads
        ]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        out = []
        for p in payloads:
            assert p.metadata["encoding"] == ENCRYPTED, "a payload reached the codec unencrypted"
            inner = Payload()
            inner.ParseFromString(self._flip(p.data))
            out.append(inner)
        return out


class OwnPydanticConverter(PydanticPayloadConverter):
    """A host's converter that already speaks pydantic."""


class MsgpackLikeConverter(DefaultPayloadConverter):
    """A host's converter that does not."""


async def connect(client: Client, converter: DataConverter, plugin: SelfHealing) -> Client:
    return await Client.connect(
        client.service_client.config.target_host,
        namespace=client.namespace,
        data_converter=converter,
        plugins=[plugin],
    )


async def test_a_hosts_codec_encrypts_every_payload_of_a_task(
    client: Client, settings: Settings
) -> None:
    codec = XorCodec()
    # This client has no time-skipping interceptor: the ladder's 1 min wait is scaled instead.
    settings = settings.model_copy(update={"time_scale": 600.0})
    plugin = SelfHealing(settings)
    host = await connect(client, DataConverter(payload_codec=codec), plugin)
    assert host.data_converter.payload_codec is codec
    assert host.data_converter.payload_converter_class is PydanticPayloadConverter

    async with Worker(host, task_queue=settings.task_queue):
        task = build_task_input(
            settings, agent="SAM", title="encrypted secret title",
            adapter=AdapterSpec(kind="sim", sim="transient,ok"),
        )  # fmt: skip
        handle = await start_task(host, settings, task)
        status = await task_outcome(handle)
    assert isinstance(status, TaskStatus)
    assert status.state == "succeeded" and len(status.attempts) == 2

    payloads: list[Payload] = []
    async for event in handle.fetch_history_events():
        started = event.workflow_execution_started_event_attributes
        scheduled = event.activity_task_scheduled_event_attributes
        completed = event.activity_task_completed_event_attributes
        done = event.workflow_execution_completed_event_attributes
        for group in (started.input, scheduled.input, completed.result, done.result):
            payloads.extend(group.payloads)
    assert len(payloads) >= 4  # the input, two attempts' input and result, the outcome
    assert {p.metadata["encoding"] for p in payloads} == {ENCRYPTED}
    assert not any(b"encrypted secret title" in p.data for p in payloads)


async def test_a_hosts_pydantic_converter_is_kept(client: Client, settings: Settings) -> None:
    codec = XorCodec()
    converter = DataConverter(payload_converter_class=OwnPydanticConverter, payload_codec=codec)
    host = await connect(client, converter, SelfHealing(settings))
    assert host.data_converter.payload_converter_class is OwnPydanticConverter
    assert host.data_converter.payload_codec is codec


async def test_a_converter_that_cannot_carry_pydantic_is_refused_clearly(
    client: Client, settings: Settings
) -> None:
    converter = DataConverter(payload_converter_class=MsgpackLikeConverter)
    with pytest.raises(ConverterConflict) as refused:
        await connect(client, converter, SelfHealing(settings))
    message = str(refused.value)
    assert "\n" not in message
    assert "MsgpackLikeConverter" in message and "PydanticPayloadConverter" in message
    with pytest.raises(ConverterConflict):
        Replayer(workflows=[], data_converter=converter, plugins=[SelfHealing(settings)])


async def test_a_client_and_a_replayer_touch_no_file(
    client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the default data dir (.selfheal) would be made here
    settings = Settings(data_dir=tmp_path / "data")
    plugin = SelfHealing(settings)
    await connect(client, DataConverter(payload_codec=XorCodec()), plugin)
    history = HISTORIES / "agent_task_retry_succeeded.json"
    replayer = Replayer(workflows=[], plugins=[plugin])
    await replayer.replay_workflow(WorkflowHistory.from_json("task", history.read_text()))
    assert list(tmp_path.iterdir()) == []
