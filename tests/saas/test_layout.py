"""The layout rules that keep every page within a phone's width, checked over all templates."""

from __future__ import annotations

import re
from pathlib import Path

from flask import Flask

PRINTED = {"reports/reconciliation/pdf.html"}  # a PDF page has a fixed width and no scrolling


def test_every_data_table_scrolls_inside_its_own_box(app: Flask) -> None:
    templates = Path(app.root_path, app.template_folder or "templates")
    assert templates.is_dir()
    unboxed = []
    for template in sorted(templates.rglob("*.html")):
        name = template.relative_to(templates).as_posix()
        if name in PRINTED:
            continue
        text = template.read_text(encoding="utf-8")
        for found in re.finditer(r"<table\b[^>]*\bclass=\"data\b", text):
            before = text[: found.start()].rstrip()
            if not before.endswith('<div class="table-scroll">'):
                unboxed.append(f"{name}:{text.count(chr(10), 0, found.start()) + 1}")
    assert not unboxed, 'wrap these tables in <div class="table-scroll">: ' + ", ".join(unboxed)
