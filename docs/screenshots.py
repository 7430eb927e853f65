"""The README's dashboard screenshots: each page after the demo's cluster workload.

    .venv/bin/python docs/screenshots.py [OUT_DIR]     # default docs/dashboard/

Starts the demo's embedded cluster, runs its workload (``ownership.demo``:
nested tasks, an actor, an array by reference, a task that raises, a future
an actor borrows, a worker and a node killed), then opens each page in a
headless Chromium and saves ``<page>.png``; the objects page with the
borrowed future's ownership graph drawn.
"""

from __future__ import annotations

import sys
from pathlib import Path

import trio

from ownership.dashboard.app import PAGES
from ownership.dashboard.chromium import chromium
from ownership.demo import cluster, workload

OUT = Path(__file__).resolve().parent / "dashboard"


def _wait_for(driver, css: str, text: str = "", timeout: float = 30.0) -> None:
    """Until an element matching ``css`` (whose text has ``text``) is on the page."""
    from selenium.webdriver.support.ui import WebDriverWait

    script = "return Array.from(document.querySelectorAll(arguments[0]), e => e.textContent).join(' ')"
    WebDriverWait(driver, timeout, poll_frequency=0.1).until(
        lambda d: (found := d.execute_script(script, css)) and text in found,
        message=f"no {css!r} with {text!r} on {driver.current_url}",
    )


def shoot(url: str, out: Path, shared_object: str) -> list[Path]:
    ready = {
        "cluster": ("#workers tbody tr", "actor Keeper"),
        "tasks": ("#task-totals", "0 pending · 0 running"),  # every task of the workload ended
        "stream": ("#stream-svg rect.task.killed", ""),
        "objects": ("#graph-svg .gnode.borrower", ""),
        "failures": ("#deaths tbody tr:nth-child(2)", ""),  # the worker and the node
    }
    written = []
    with chromium(width=1400, height=900) as driver:
        for page in PAGES:
            query = f"?object={shared_object}" if page == "objects" else ""
            driver.get(f"{url}{page}{query}")
            _wait_for(driver, *ready[page])
            if page == "tasks":
                driver.execute_script("document.querySelector('#failed-tasks details').open = true")
            path = out / f"{page}.png"
            driver.save_screenshot(str(path))
            written.append(path)
    return written


async def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    async with cluster(nodes=2, num_cpus=2, node_timeout=1.0) as local:
        keeper, shared = await workload(local)
        paths = await trio.to_thread.run_sync(shoot, local.dashboard_url, out, shared.object_id)
        del keeper, shared
    for path in paths:
        print(f"wrote {path}")


if __name__ == "__main__":
    trio.run(main, Path(sys.argv[1]) if len(sys.argv) > 1 else OUT)
