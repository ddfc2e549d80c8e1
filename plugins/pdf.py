"""Built-in plugin: PDF pages as images and text (pymupdf), the `assistant pdf` commands and the TUI's /pdf.

Written only against the public hooks, so it doubles as an example for plugin authors. It handles a path
that ends in .pdf or whose content starts with %PDF, and returns None for anything else so that another
plugin can handle other document types.
"""

from __future__ import annotations

import math
import shlex
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from assistant import hookimpl
from assistant.document_index import TextIndex, load_index
from assistant.documents import DocumentPasswordError, prepare_document
from assistant.errors import AssistantError
from assistant.hooktypes import PageRequest, PageText, ProgressView, RenderedPage, SlashCommand

if TYPE_CHECKING:
    import pymupdf

MAGIC_WINDOW = 1024
"""PDF readers accept the %PDF- header anywhere in the first kilobyte."""


# --- reading PDFs -----------------------------------------------------------------------------

def _head(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            return handle.read(MAGIC_WINDOW)
    except OSError:
        return b""


def handles(path: Path) -> bool:
    """True for a path this plugin reads: it ends in .pdf, or its content starts with %PDF."""
    return path.suffix.lower() == ".pdf" or b"%PDF-" in _head(path)


@contextmanager
def open_pdf(path: Path, password: str | None = None) -> Iterator["pymupdf.Document"]:
    """Open a PDF for reading, or raise an AssistantError that says what is wrong with it."""
    import pymupdf

    name = path.name
    if not path.exists():
        raise AssistantError(f"{path} not found; check the path")
    if not path.is_file():
        raise AssistantError(f"{path} is not a file; give a PDF file such as report.pdf")
    head = _head(path)
    if not head:
        raise AssistantError(f"{name} is empty; re-download or re-export it")
    if b"%PDF-" not in head:
        raise AssistantError(f"{name} is not a PDF (its content does not start with %PDF); check that it is the right file")
    try:
        document = pymupdf.open(path, filetype="pdf")
    except Exception as error:  # noqa: BLE001 - MuPDF raises several types for broken files
        raise _damaged(name, error) from None
    try:
        if document.needs_pass:
            if not password:
                raise DocumentPasswordError(path)
            if not document.authenticate(password):
                raise DocumentPasswordError(path, wrong_password=True)
        try:
            page_count = document.page_count
        except Exception as error:  # noqa: BLE001 - a broken page tree only shows here
            raise _damaged(name, error) from None
        if page_count < 1:
            raise AssistantError(f"{name} has no pages; check that it is the right file")
        yield document
    finally:
        document.close()


def _damaged(name: str, error: BaseException) -> AssistantError:
    return AssistantError(
        f"{name} is damaged or truncated and cannot be opened ({_short(error)}); re-download or re-export it"
    )


def _short(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _load_page(document: "pymupdf.Document", number: int, name: str) -> "pymupdf.Page":
    count = document.page_count
    if not 1 <= number <= count:
        pages = "1 page" if count == 1 else f"{count} pages"
        raise AssistantError(f"page {number} is out of range: {name} has {pages}")
    try:
        return document.load_page(number - 1)
    except Exception as error:  # noqa: BLE001
        raise AssistantError(f"page {number} of {name} is damaged ({_short(error)}); try another page") from None


def fit_zoom(width_pt: float, height_pt: float, dpi: int, max_pixels: int) -> float:
    """The zoom for `dpi`, lowered until the rendered bitmap has at most `max_pixels` pixels."""
    zoom = dpi / 72.0
    if width_pt * height_pt * zoom * zoom > max_pixels:
        zoom = math.sqrt(max_pixels / (width_pt * height_pt))
    # MuPDF rounds the bitmap outwards: shave the zoom until the rounded size fits too.
    while (math.ceil(width_pt * zoom) + 1) * (math.ceil(height_pt * zoom) + 1) > max_pixels and zoom > 1e-3:
        zoom *= 0.995
    return zoom


def render(request: PageRequest) -> RenderedPage:
    """Render one page at `request.dpi`, at most `request.max_pixels` pixels (the dpi is lowered to fit)."""
    import pymupdf
    from PIL import Image

    path = Path(request.path)
    if request.dpi < 1:
        raise AssistantError(f"dpi must be at least 1 (got {request.dpi})")
    with open_pdf(path, request.password) as document:
        page = _load_page(document, request.page, path.name)
        rect = page.rect
        if rect.width < 1 or rect.height < 1:
            raise AssistantError(f"page {request.page} of {path.name} has no area ({rect.width}x{rect.height} pt)")
        zoom = fit_zoom(rect.width, rect.height, request.dpi, request.max_pixels)
        try:
            pixmap = page.get_pixmap(matrix=pymupdf.Matrix(zoom, zoom), alpha=False, colorspace=pymupdf.csRGB)
        except Exception as error:  # noqa: BLE001
            raise AssistantError(
                f"page {request.page} of {path.name} cannot be rendered ({_short(error)}); try another page"
            ) from None
        image = Image.frombytes("RGB", (pixmap.width, pixmap.height), pixmap.samples)
        return RenderedPage(image=image, page=request.page, page_count=document.page_count, dpi=round(72 * zoom))


def extract_text(request: PageRequest) -> PageText:
    """The page's text layer in reading order (blocks top to bottom, left to right); "" when it has none."""
    path = Path(request.path)
    with open_pdf(path, request.password) as document:
        page = _load_page(document, request.page, path.name)
        try:
            text = reading_order_text(page)
        except Exception as error:  # noqa: BLE001
            raise AssistantError(f"page {request.page} of {path.name} is damaged ({_short(error)})") from None
        return PageText(text=text, page=request.page, page_count=document.page_count)


def reading_order_text(page: "pymupdf.Page") -> str:
    """The page's text blocks top to bottom, left to right, one paragraph per block.

    As fast as MuPDF's plain extraction: pymupdf's word-level `sort=True` costs ~20x more (seconds on a long
    manual) and pads lines with layout spaces that only cost the model tokens.
    """
    import pymupdf

    blocks = page.get_textpage(flags=pymupdf.TEXTFLAGS_TEXT).extractBLOCKS()
    blocks.sort(key=lambda block: (block[3], block[0]))
    return "\n".join(text for block in blocks if block[6] == 0 and (text := block[4].strip()))


def extract_all_text(request: PageRequest, progress: Any = None) -> list[PageText]:
    """Every page's text layer (as `extract_text` gives it), opening the file once.

    A page that cannot be read counts as a page without text: one damaged page must not stop the ranking.
    """
    path = Path(request.path)
    with open_pdf(path, request.password) as document:
        count = document.page_count
        pages: list[PageText] = []
        for index in range(count):
            try:
                text = reading_order_text(document.load_page(index))
            except Exception:  # noqa: BLE001 - see the docstring
                text = ""
            pages.append(PageText(text=text, page=index + 1, page_count=count))
            if progress is not None:
                progress(index + 1, count)
        return pages


# --- hooks ------------------------------------------------------------------------------------

@hookimpl
def render_page(request: PageRequest) -> RenderedPage | None:
    """Render a PDF page; None for documents that are not PDFs."""
    if not handles(Path(request.path)):
        return None
    return render(request)


@hookimpl
def page_text(request: PageRequest) -> PageText | None:
    """Extract a PDF page's text layer; None for documents that are not PDFs."""
    if not handles(Path(request.path)):
        return None
    return extract_text(request)


@hookimpl
def document_text(request: PageRequest, progress: Any) -> list[PageText] | None:
    """Extract every page's text layer of a PDF in one pass; None for documents that are not PDFs."""
    if not handles(Path(request.path)):
        return None
    return extract_all_text(request, progress)


def _manager() -> Any:
    from assistant.plugins import get_plugin_manager

    return get_plugin_manager()


@hookimpl
def register_commands(cli: click.Group) -> None:
    @cli.group(name="pdf")
    def pdf_group() -> None:
        """Render PDF pages to images and print their text."""

    @pdf_group.command(name="render")
    @click.argument("file", type=click.Path(path_type=Path))
    @click.option("--page", type=click.IntRange(min=1), default=1, show_default=True, help="Page number (from 1).")
    @click.option("--dpi", type=click.IntRange(min=1, max=2400), default=144, show_default=True, help="Resolution.")
    @click.option("--password", default=None, help="Password of an encrypted PDF.")
    @click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False), required=True, help="Image file to write (.png, .jpg).")
    @click.option("--force", is_flag=True, help="Replace an existing file.")
    def pdf_render(file: Path, page: int, dpi: int, password: str | None, output: Path, force: bool) -> None:
        """Render one page of FILE to an image."""
        from assistant.outputs import check_output

        check_output(output, force)
        request = PageRequest(path=file.expanduser(), page=page, dpi=dpi, password=password)
        rendered = _manager().call_first("render_page", request=request)
        if rendered is None:
            raise AssistantError(f"cannot render {file.name}: no plugin handles this kind of document")
        _save(rendered.image, output, force)
        note = ""
        if rendered.dpi < dpi:
            note = f", lowered from {dpi} dpi to stay under {request.max_pixels:,} pixels"
        click.echo(
            f"wrote {output} ({rendered.image.width}x{rendered.image.height}, page {rendered.page} of "
            f"{rendered.page_count}, {rendered.dpi} dpi{note})"
        )

    @pdf_group.command(name="text")
    @click.argument("file", type=click.Path(path_type=Path))
    @click.option("--page", type=click.IntRange(min=1), default=1, show_default=True, help="Page number (from 1).")
    @click.option("--password", default=None, help="Password of an encrypted PDF.")
    def pdf_text(file: Path, page: int, password: str | None) -> None:
        """Print the text layer of one page of FILE."""
        request = PageRequest(path=file.expanduser(), page=page, password=password)
        found = _manager().call_first("page_text", request=request)
        if found is None:
            raise AssistantError(f"cannot read {file.name}: no plugin handles this kind of document")
        if found.text:
            click.echo(found.text)
        else:
            click.echo(f"(page {page} of {file.name} has no text layer)", err=True)


def _save(image: Any, output: Path, force: bool = False) -> None:
    """Write the rendered page: never over an existing file without --force, never through a symlink, atomically."""
    from assistant.outputs import save_image_output

    save_image_output(image, output, force)


# --- TUI --------------------------------------------------------------------------------------

def split_pdf_argument(argument: str) -> tuple[str, str | None]:
    """`report.pdf 2-4` -> ("report.pdf", "2-4"); quotes allow spaces in the path."""
    try:
        words = shlex.split(argument)
    except ValueError as error:
        raise AssistantError(f"cannot read /pdf {argument}: {error}; quote paths that contain spaces") from None
    if not words:
        raise AssistantError("/pdf needs a file: /pdf report.pdf [pages, e.g. 2-4]")
    if len(words) == 1:
        return words[0], None
    if len(words) == 2:
        return words[0], words[1]
    raise AssistantError("/pdf takes a file and optional pages, e.g. /pdf report.pdf 2-4; quote paths with spaces")


TUI_PROGRESS_AFTER_S = 1.0
"""/pdf opens a progress screen when reading the document's text takes longer than this."""


def _read_index(context: Any, path: Path, password: str | None) -> TextIndex | None:
    """The document's text layer (cached by content), with a progress screen when reading it takes a while."""
    state: dict[str, Any] = {"done": 0, "total": None, "finished": False, "shown": False}
    started = time.monotonic()

    def view() -> ProgressView:
        total = state["total"]
        status = f"{state['done']:,} of {total:,} pages read" if total else "opening…"
        return ProgressView(title=f"Reading {path.name}", completed=state["done"], total=total, status=status,
                            finished=state["finished"])

    def progress(done: int, total: int) -> None:
        state.update(done=done, total=total)
        show = getattr(context, "show_progress", None)
        if not state["shown"] and show is not None and done < total and time.monotonic() - started >= TUI_PROGRESS_AFTER_S:
            state["shown"] = True
            show(view)

    try:
        return load_index(context.plugin_manager, path, password, progress)
    finally:
        state["finished"] = True


def _slash_pdf(context: Any, argument: str) -> None:
    """/pdf FILE PAGES attaches those pages; /pdf FILE attaches the document, whose pages the question chooses."""
    try:
        file, pages = split_pdf_argument(argument)
    except AssistantError as error:
        context.notify(str(error), severity="error")
        return
    path = Path(file).expanduser()
    settings = getattr(getattr(context, "profile", None), "documents", None)
    budget = max(1, getattr(settings, "page_budget", 3))
    # A TUI that can hold a document until the question is sent lets the question choose the pages.
    by_question = pages is None and callable(getattr(context, "attach_document", None))

    def start(password: str | None) -> None:
        def work() -> Any:
            try:
                index = _read_index(context, path, password) if by_question and path.is_file() else None
                if index is not None and index.page_count > budget and index.has_text:
                    return index
                return prepare_document(context.plugin_manager, path, "", pages, settings, password=password, index=index)
            except DocumentPasswordError as error:
                return error

        context.run_in_background(work, lambda result: done(result, password))

    def done(result: Any, password: str | None) -> None:
        if isinstance(result, DocumentPasswordError):
            prompt = f"Password for {path.name}" + (" (wrong, try again)" if result.wrong_password else "")

            def answered(password: str | None) -> None:
                if password:
                    start(password)
                else:
                    context.notify(f"{path.name} not attached: no password given", severity="warning")

            context.ask_password(prompt, answered)
            return
        if isinstance(result, TextIndex):
            index = result

            def choose(question: str) -> Any:
                return prepare_document(context.plugin_manager, path, question, None, settings, password=password, index=index)

            context.attach_document(f"{path.name} ({index.page_count:,} pages)", choose)
            context.notify(
                f"{path.name} attached: the {budget} pages that best match your question go with it "
                f"(or /pdf {shlex.quote(file)} 2-4 for pages of your choice)"
            )
            return
        for image, source in result.images:
            context.attach_image(image, source)
        if result.text:
            context.attach_text(result.text, f"{result.name} text")
        context.notify(result.footer)

    start(None)


@hookimpl
def register_slash_commands(register: Any) -> None:
    register(
        SlashCommand(
            name="pdf",
            help="/pdf FILE [PAGES]: attach a PDF (e.g. /pdf report.pdf 2-4; default: the pages that match your question)",
            run=_slash_pdf,
            complete_paths=True,
        )
    )
