"""``report/index.html``: one page that works opened from disk, rendered from ``templates/index.html.j2``.

Pictures are linked by relative path into the run tree (``../gan/wgan_gp/samples.gif``) rather than
inlined, so the page stays small and always shows the job's current files.
"""
from __future__ import annotations

import os
from pathlib import Path

from fashion import artifacts
from fashion.report.summary import COLUMNS, cells

TEMPLATE = "index.html.j2"


def render(report_dir: Path, run: str, header: dict, rows: list[dict], sections: list[dict],
           fid_curves: Path | None = None) -> Path:
    """Write index.html. ``sections``: per job, {"job", "state", "note", "pictures": [Path], "samples": Path,
    "log": text or None}; ``fid_curves``: the FID-over-epochs plot, if any job kept snapshots."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
                             autoescape=True, trim_blocks=True, lstrip_blocks=True,
                             undefined=jinja2.StrictUndefined)
    env.filters["anchor"] = lambda name: "job-" + "".join(c if c.isalnum() else "-" for c in name)

    def link(path: Path) -> str:
        return Path(os.path.relpath(path, report_dir)).as_posix()

    table = [{"cells": cells(row), "raw": row} for row in rows]
    html = env.get_template(TEMPLATE).render(
        run=run, header=header, columns=COLUMNS, table=table,
        sheet=[{**s, "samples": link(s["samples"])} for s in sections if s.get("samples")],
        sections=[{**s, "pictures": [(link(p), p.relative_to(s["path"]).as_posix()) for p in s["pictures"]],
                   "strip": link(s["strip"]) if s.get("strip") else None} for s in sections],
        problems=[s for s in sections if s.get("log")],
        fid_curves=link(fid_curves) if fid_curves else None,
    )
    return artifacts.write_text(report_dir / "index.html", html)
