"""``lorevit app``: an interactive page over one adapter, served on this machine (issue 22 §2).

    lorevit app --adapter DIR [--host 127.0.0.1] [--port N] [--top-k K] [--weights W] [--strict]

One library call (:func:`lorevit.app.page.serve` over :meth:`lorevit.app.explorer.Explorer.load`) plus the line
saying where it serves. Gradio is the optional extra ``lorevit[app]``: without it the command is one
``lorevit: error:`` line (exit 2) before anything loads.
"""
from __future__ import annotations

import sys
import time

from lorevit.cli.options import add_adapter_options


def register(commands) -> None:
    p = commands.add_parser("app", help="an interactive page: top-k classes, Fig. 3 attention maps and point "
                                        "correspondence for uploaded images (needs lorevit[app])",
                            description="Serve a Gradio page for one adapter on this machine: upload or pick an image "
                                        "→ top-k classes and the Fig. 3 attention maps (Black Box, the adapter, KLA "
                                        "for the predicted and the true class); click a point on image A → its "
                                        "best match on image B, B-B beside the adapter.")
    p.add_argument("--adapter", required=True,
                   help="a run's output directory, a hub-style folder (lorevit hub save), an adapter file, a Hub repo "
                        "id, or a merged export (lorevit export --merge --format timm: top-k and its own attention only)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 opens it to the network)")
    p.add_argument("--port", type=int, default=None, help="port (default: the first free one from 7860)")
    p.add_argument("--top-k", "--top_k", dest="top_k", type=int, default=5, help="classes shown per image (default 5)")
    add_adapter_options(p)
    p.set_defaults(func=cmd_app)


def cmd_app(args) -> int:
    from lorevit.app.errors import AppError

    if args.port is not None and not 1 <= args.port <= 65535:
        raise AppError(f"--port must be between 1 and 65535, got {args.port}")
    start = time.perf_counter()
    from lorevit.app.page import check_address, require_gradio

    require_gradio()  # a missing extra and a taken port are reported before the adapter loads
    check_address(args.host, args.port)
    from lorevit.app.explorer import Explorer
    from lorevit.app.page import serve

    explorer = Explorer.load(args.adapter, weights=args.backbone_weights, strict=args.strict, top_k=args.top_k)

    def ready(url: str) -> None:
        print(f"lorevit app: {explorer.describe()}\n  serving at {url} (ready in {time.perf_counter() - start:.1f} s; "
              "Ctrl-C stops it)", flush=True)

    serve(explorer, args.host, args.port, ready)
    print("lorevit app: stopped", file=sys.stderr)
    return 0
