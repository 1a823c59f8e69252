"""``selfheal pr replay FILE``: sign a saved webhook payload and POST it to the local API."""

import argparse
import json
import uuid
from pathlib import Path

import httpx

from selfheal.config import load_settings
from starter.api.webhook import PATH, sign
from starter.cli.commands import add_command
from starter.cli.errors import UsageError
from starter.stack import api_url


def register(sub: argparse._SubParsersAction) -> None:
    pr = add_command(sub, "pr")
    cmds = pr.add_subparsers(dest="pr_command", required=True, parser_class=type(pr))
    replay = cmds.add_parser(
        "replay", help="sign a saved GitHub payload with the configured secret and POST it"
    )
    replay.add_argument("file", type=Path, help="a saved webhook payload (JSON)")
    replay.add_argument(
        "--event", default="pull_request", help="X-GitHub-Event (default: %(default)s)"
    )
    replay.add_argument(
        "--url",
        help=f"webhook URL (default: SELFHEAL_API_URL, else the API of the `selfheal dev` "
        f"running on this data dir, else http://127.0.0.1:8080; then {PATH})",
    )
    replay.add_argument(
        "--data-dir",
        type=Path,
        help="whose `selfheal dev` to follow (default: SELFHEAL_DATA_DIR or .selfheal)",
    )
    replay.add_argument("--delivery", help="X-GitHub-Delivery (default: a new id; reuse one to "
                        "play a redelivery)")  # fmt: skip
    replay.add_argument("--json", action="store_true")
    replay.set_defaults(handler=pr_replay)


async def pr_replay(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    if settings.github_secret is None:
        raise UsageError("no webhook secret is configured (set SELFHEAL_GITHUB_SECRET)")
    if not args.event.strip() or not args.event.isprintable():
        raise UsageError(f"--event must be a GitHub event name, got {args.event!r}")
    try:
        body = args.file.read_bytes()
    except OSError as err:
        raise UsageError(f"cannot read {args.file}: {err.strerror}") from None
    try:
        json.loads(body)
    except ValueError:
        raise UsageError(f"{args.file} is not JSON") from None
    if args.url is None:
        args.url = api_url(args.data_dir or settings.data_dir) + PATH
    if not args.url.startswith(("http://", "https://")):
        raise UsageError(f"--url must be an http(s) URL, got {args.url!r}")
    delivery = args.delivery or str(uuid.uuid4())
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": args.event.strip(),
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": sign(settings.github_secret.get_secret_value().encode(), body),
        "User-Agent": "selfheal-pr-replay",
    }
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            response = await http.post(args.url, content=body, headers=headers)
    except httpx.InvalidURL:
        raise UsageError(f"--url is not a URL: {args.url!r}") from None
    except httpx.HTTPError as err:
        raise UsageError(f"cannot reach {args.url}: {type(err).__name__} "
                         "(is `selfheal api` or `selfheal dev` running?)") from None  # fmt: skip
    try:
        answer = response.json()
    except ValueError:
        answer = {"body": response.text[:500]}
    if args.json:
        print(json.dumps({"status": response.status_code, "delivery": delivery, "answer": answer}))
    else:
        detail = answer.get("workflow_id") or answer.get("reason") or answer.get("error") or ""
        print(f"{response.status_code} {detail}".rstrip())
    return 0 if response.is_success else 1
