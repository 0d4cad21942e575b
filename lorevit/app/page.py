"""The page of ``lorevit app`` (Gradio, the ``app`` extra): two tabs over an :class:`~lorevit.app.explorer.Explorer`.

- **Classify**: upload an image or pick a test image of the adapter's dataset → the top-k classes with probabilities
  and Fig. 3's panels side by side (the true class, when known or chosen, is KLA's second query);
- **Correspondence**: upload (or pick) images A and B, click a point on A → the similarity map over B and its best
  match, B-B beside the adapter.

Gradio loads only here (:func:`require_gradio` names the extra when it is missing). Every handler turns an
input error into a message on the page (the ``#message`` and ``#match-message`` boxes); any other failure is
logged on the server with its traceback and shown as one line, never as a stack trace.

No ``from __future__ import annotations`` here: Gradio reads the handlers' ``gr.SelectData`` annotation at run time.
"""
import functools
import logging
import os
from typing import Callable

from typing import TYPE_CHECKING

from lorevit.app.errors import AppError
from lorevit.errors import UserError

if TYPE_CHECKING:
    from lorevit.app.explorer import Explorer

MAX_FILE_SIZE = "50mb"  # Gradio refuses a bigger upload itself, with its own message
UNKNOWN = "(unknown)"
log = logging.getLogger(__name__)


def require_gradio():
    """The ``gradio`` module, or an AppError naming the extra to install."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home from a local page
    try:
        import gradio
    except ImportError:
        raise AppError('lorevit app needs Gradio, which is not installed: pip install "lorevit[app]" '
                       "(or pip install gradio)") from None
    return gradio


def check_address(host: str, port: int | None) -> None:
    """An AppError now, before the adapter loads, when ``host:port`` cannot be served (the port is taken, the host is
    not this machine's); ``port=None`` (Gradio picks a free one) is not checked."""
    if port is None:
        return
    import socket

    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.bind((host, port))
    except OSError as err:
        raise AppError(f"cannot serve on {host}:{port} ({err.strerror or err}); pass another --port, or none for the "
                       "first free one from 7860") from None


def _warning(text: str) -> str:
    return f"**⚠ {text}**"


def _note(text: str | None) -> str:
    """A view's note (what it cannot show, and why) as the page's message, or nothing."""
    return f"*{text}*" if text else ""


def _guarded(fn: Callable, fallback: Callable[[str], tuple]) -> Callable:
    """``fn`` with its failures as page messages: ``fallback(message)`` gives the outputs then. The wrapper keeps
    ``fn``'s signature (Gradio passes a ``gr.SelectData`` argument by its annotation)."""
    @functools.wraps(fn)
    def run(*args):
        try:
            return fn(*args)
        except UserError as err:
            return fallback(_warning(str(err)))
        except Exception as err:  # noqa: BLE001 - the page shows one line; the traceback goes to the server's log
            log.exception("lorevit app: %s failed", getattr(fn, "__name__", "a handler"))
            return fallback(_warning(f"unexpected error ({type(err).__name__}: {err}); the server's log has the details"))
    return run


def build_page(explorer: "Explorer"):
    """The ``gr.Blocks`` of the app (not launched)."""
    import numpy as np

    from lorevit.app.explorer import fit_picture, open_picture

    gr = require_gradio()
    samples = explorer.samples()
    classes = [UNKNOWN] + explorer.classnames

    def picture_of(source):
        """``source``: an uploaded file's path or ``("sample", name)`` → (PIL image, its true class or None)."""
        if source is None:
            raise AppError("upload an image or pick a test image first")
        if isinstance(source, (tuple, list)):
            return explorer.sample(source[1])
        return open_picture(source), None

    def classify(source, true_class):
        picture, _ = picture_of(source)
        result = explorer.classify(picture, None if true_class in (None, UNKNOWN) else true_class)
        best = result.top[0]
        text = f"### predicted: {result.predicted} ({best['prob'] * 100:.1f}%)"
        if result.true is not None:
            text += f" · true: {result.true}"
        return (text, {t["class"]: t["prob"] for t in result.top}, [(p, c) for p, c in result.panels],
                _note(result.note))

    def uploaded(path):
        return path, UNKNOWN

    def picked(name):
        if not name:
            return None, UNKNOWN
        return ("sample", name), explorer.sample(name)[1]

    def shown(source):
        """An upload or a pick for the correspondence tab → (the fitted picture kept in the state, shown pixels, "")."""
        picture, _ = picture_of(source)
        picture = fit_picture(picture)
        return picture, np.asarray(picture), ""

    def match(image_a, image_b, evt: gr.SelectData):
        if image_a is None or image_b is None:
            raise AppError("upload or pick both images, then click a point on image A")
        result = explorer.correspond(image_a, image_b, tuple(evt.index))
        lines = [f"point ({result.point[0]}, {result.point[1]}) on A → " + "; ".join(
            f"{m.source}: best match ({m.best[0]}, {m.best[1]}) on B, cosine {m.cosine:.3f}" for m in result.matches)]
        if result.note:
            lines.append(_note(result.note))
        if explorer.merged is not None:  # one ViT, the merged one: its match in the adapter's view, B stays shown
            return (result.source_panel, gr.skip(), result.matches[0].panel, "\n\n".join(lines))
        panels = [m.panel for m in result.matches] + [None] * (2 - len(result.matches))
        return (result.source_panel, *panels, "\n\n".join(lines))

    with gr.Blocks(title=f"lorevit · {explorer.method}") as page:
        gr.Markdown(f"## lorevit app\n{explorer.describe()}")
        with gr.Tab("Classify"):
            source = gr.State(None)
            with gr.Row():
                with gr.Column(scale=1):
                    upload = gr.File(label="upload an image", type="filepath", elem_id="upload")
                    pick = gr.Dropdown(list(samples), value=None, label="…or pick a test image", elem_id="pick",
                                       visible=bool(samples))
                    true_class = gr.Dropdown(classes, value=UNKNOWN, label="true class (KLA's second query)",
                                             elem_id="true-class")
                    message = gr.Markdown(elem_id="message")
                with gr.Column(scale=2):
                    prediction = gr.Markdown(elem_id="prediction")
                    top = gr.Label(num_top_classes=explorer.top_k, label="top classes", elem_id="top")
            panels = gr.Gallery(label="Fig. 3: attention over the image", columns=5, height=262,
                                object_fit="contain", elem_id="panels", allow_preview=False)
            outputs = [prediction, top, panels, message]
            run_classify = _guarded(classify, lambda text: ("", None, [], text))
            upload.upload(uploaded, [upload], [source, true_class]).then(run_classify, [source, true_class], outputs)
            pick.input(_guarded(picked, lambda text: (None, UNKNOWN)), [pick], [source, true_class]).then(
                run_classify, [source, true_class], outputs)
            true_class.input(run_classify, [source, true_class], outputs)

        with gr.Tab("Correspondence"):
            compared = (f"for {explorer.method}'s ViT (B-B needs the adapter itself)" if explorer.merged is not None
                        else f"for the Black Box (B-B) and for {explorer.method}'s prompts")
            gr.Markdown("Upload or pick two images, then **click a point on image A**: the cosine of its upsampled "
                        "patch token with every pixel of image B (scaled to its range) and the best match (dot), "
                        f"{compared}.")
            state_a, state_b = gr.State(None), gr.State(None)
            with gr.Row():
                upload_a = gr.File(label="image A", type="filepath", elem_id="upload-a")
                upload_b = gr.File(label="image B", type="filepath", elem_id="upload-b")
            with gr.Row(visible=bool(samples)):
                pick_a = gr.Dropdown(list(samples), value=None, label="…or pick image A", elem_id="pick-a")
                pick_b = gr.Dropdown(list(samples), value=None, label="…or pick image B", elem_id="pick-b")
            match_message = gr.Markdown(elem_id="match-message")
            with gr.Row():
                view_a = gr.Image(label="image A: click a point", interactive=False, elem_id="image-a")
                view_plain = gr.Image(label="image B" if explorer.merged is not None else "B-B on image B",
                                      interactive=False, elem_id="match-bb")
                view_adapter = gr.Image(label=f"{explorer.method} on image B", interactive=False, elem_id="match-adapter")
            show_failed = lambda text: (None, None, text)  # noqa: E731
            for files, picks, state, view in ((upload_a, pick_a, state_a, view_a), (upload_b, pick_b, state_b, view_plain)):
                files.upload(_guarded(shown, show_failed), [files], [state, view, match_message])
                picks.input(_guarded(lambda name: shown(("sample", name)), show_failed), [picks],
                            [state, view, match_message])
            view_a.select(_guarded(match, lambda text: (gr.skip(), gr.skip(), gr.skip(), text)), [state_a, state_b],
                          [view_a, view_plain, view_adapter, match_message])
    return page


def serve(explorer: "Explorer", host: str = "127.0.0.1", port: int | None = None,
          ready: Callable[[str], None] | None = None, block: bool = True):
    """Launch the page on ``host:port`` (Gradio's first free port from 7860 when None); ``ready(url)`` once it
    answers; with ``block`` until Ctrl-C, else the launched page is returned (``page.close()`` stops it)."""
    gr = require_gradio()
    page = build_page(explorer)
    page.queue(default_concurrency_limit=1)  # the explorer serialises its calls anyway
    try:
        page.launch(server_name=host, server_port=port, share=False, inbrowser=False, quiet=True, show_error=False,
                    prevent_thread_lock=True, max_file_size=MAX_FILE_SIZE, ssr_mode=False, footer_links=[],
                    theme=gr.themes.Default())
    except OSError as err:  # the port is taken, or the host is not this machine's
        raise AppError(f"cannot serve on {host}:{port} ({err}); pass another --port") from None
    if ready is not None:
        ready(page.local_url)
    if block:
        page.block_thread()
    return page
