"""Small helpers shared by tests: images and PDFs on disk."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw


def make_image(path: Path, size: tuple[int, int] = (320, 240), colour: str = "red") -> Path:
    """A real PNG with a shape on it (so two images with different colours differ in content)."""
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    w, h = size
    draw.rectangle([w // 4, h // 4, 3 * w // 4, 3 * h // 4], fill=colour)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def make_pdf(path: Path, pages: list[str], size: tuple[int, int] = (300, 200)) -> Path:
    """A real PDF with one small page per text (12 pt at 20, 40), so it has a text layer to search and rank."""
    import pymupdf

    document = pymupdf.open()
    for text in pages:
        document.new_page(width=size[0], height=size[1]).insert_text((20, 40), text, fontsize=12)
    document.save(path)
    document.close()
    return path


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    """Run `assistant ARGS...` in this process (assistant.cli.main): exit code, stdout, stderr."""
    from assistant.cli import main

    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str) -> str:
    """The single `error: ...` line a refused command printed (no traceback, nothing else on stderr)."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]
