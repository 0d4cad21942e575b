"""``lorevit hub save`` / ``lorevit hub push``: share an adapter as a hub-style folder or a Hub repo.
huggingface_hub loads when a command runs, never while the parser is built."""
from __future__ import annotations

from pathlib import Path


def cmd_hub_save(args) -> int:
    from lorevit.adapters.hub import CARD_NAME, CONFIG_NAME, WEIGHTS_NAME, HubError

    output = Path(args.output)
    if output.exists() and not output.is_dir():
        raise HubError(f"--output {output} is a file; name a folder "
                       f"(it gets {CONFIG_NAME}, {WEIGHTS_NAME}, {CARD_NAME})")
    from lorevit.factory import shareable_adapter

    shareable_adapter(args.run, args.weights, args.strict).save_pretrained(output)
    print(f"{args.run} → {output}/ ({CONFIG_NAME}, {WEIGHTS_NAME}, {CARD_NAME})")
    return 0


def cmd_hub_push(args) -> int:
    from lorevit.adapters.hub import HubError
    from lorevit.adapters.paths import REPO_ID
    from lorevit.factory import shareable_adapter

    if not REPO_ID.match(args.repo):
        raise HubError(f"--repo {args.repo!r} is not a Hub repo id; write it as org/name")
    adapter = shareable_adapter(args.run, args.weights, args.strict)
    url = adapter.push_to_hub(args.repo, private=args.private or None, token=args.token, commit_message=args.message)
    print(f"{args.run} → https://huggingface.co/{args.repo} ({url})")
    return 0


def register(commands) -> None:
    """``lorevit hub save`` / ``lorevit hub push``."""
    hub = commands.add_parser("hub", help="share adapters: a hub-style folder, or a push to the Hugging Face Hub")
    sub = hub.add_subparsers(dest="hub_command", required=True)
    save = sub.add_parser("save", help="a run's adapter → config.json + model.safetensors + README.md "
                                       "(no machine paths)")
    push = sub.add_parser("push", help="upload a run's adapter to a Hub repo (network; `hf auth login` or --token)")
    for p in (save, push):
        p.add_argument("run", metavar="RUN_DIR", help="a run's output directory, a hub-style folder or a repo id")
        p.add_argument("--weights", default="unset",
                       help="a local copy of the backbone's weights, for adapters saved without a fingerprint")
        p.add_argument("--strict", action="store_true", help="a backbone fingerprint mismatch is an error")
    save.add_argument("--output", required=True, help="folder to write (created; its three files are replaced)")
    save.set_defaults(func=cmd_hub_save)
    push.add_argument("--repo", required=True, help="Hub repo id org/name (created if missing)")
    push.add_argument("--private", action="store_true", help="create the repo private")
    push.add_argument("--token", default=None, help="Hub token (default: the one `hf auth login` stored)")
    push.add_argument("--message", default="lorevit adapter", help="commit message")
    push.set_defaults(func=cmd_hub_push)
