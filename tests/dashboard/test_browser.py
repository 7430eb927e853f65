"""The dashboard as a person uses it: a real cluster, a real workload, a real browser.

One cluster for the module, started as a user would (``ownership start
--head``, which serves the dashboard), and one driver process
(``workload.py``: tasks, a task that raises, a worker killed mid-task and
its task retried, a future an actor borrows). Headless Chromium opens the
pages and the tests read what they show; ``/metrics`` goes through
prometheus-client's parser and ``ownership timeline`` through ``json``.
Every wait is bounded.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from ownership.dashboard.chromium import ChromiumMissing, chromium, find_chromium

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
#: seconds any one thing may take to show up on a page
WAIT = 30.0

try:
    find_chromium()
except ChromiumMissing as exc:  # `make test` installs them; a bare pytest may not have them
    pytest.skip(f"no headless browser: {exc}", allow_module_level=True)

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


def _cli(env: dict, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ownership.cli", *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def _read_line(proc: subprocess.Popen, prefix: str, timeout: float) -> str:
    """The next line of ``proc``'s stdout starting with ``prefix`` (others are skipped)."""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {prefix!r} line from the workload within {timeout} s")
            if sel.select(left):
                line = proc.stdout.readline()
                if not line:
                    raise RuntimeError(f"the workload exited ({proc.wait()}) before saying {prefix!r}")
                if line.startswith(prefix):
                    return line[len(prefix) :].strip()


class Dashboard:
    def __init__(self, url: str, env: dict, session: dict, info: dict, driver_proc: subprocess.Popen, browser) -> None:
        self.url = url
        self.env = env
        self.session = session
        self.info = info
        self.driver_proc = driver_proc
        self.browser = browser

    def open(self, page: str) -> None:
        self.browser.get(self.url + page)

    def wait(self, condition, what: str):
        return WebDriverWait(self.browser, WAIT, poll_frequency=0.1).until(condition, message=f"the page never showed {what}")

    # The pages redraw as news comes: each read is one script, so that no
    # element goes stale between finding it and reading it.
    def count(self, css: str) -> int:
        return self.browser.execute_script("return document.querySelectorAll(arguments[0]).length", css)

    def text_of(self, css: str) -> str:
        return self.browser.execute_script(
            "return Array.from(document.querySelectorAll(arguments[0]), e => e.textContent).join(' ')", css
        )

    def cells(self, row_css: str) -> list[str]:
        """The text of each cell of the first row matching ``row_css`` ([] if none)."""
        return self.browser.execute_script(
            "const r = document.querySelector(arguments[0]);"
            "return r ? Array.from(r.querySelectorAll('td'), c => c.textContent) : []",
            row_css,
        )

    def attributes(self, css: str, *names: str) -> list[list[str]]:
        return self.browser.execute_script(
            "return Array.from(document.querySelectorAll(arguments[0]), e => arguments[1].map(n => e.getAttribute(n)))",
            css,
            list(names),
        )

    def click(self, css: str) -> None:
        self.browser.execute_script("document.querySelector(arguments[0]).click()", css)

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=WAIT) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()


@pytest.fixture(scope="module")
def dash(tmp_path_factory):
    home = tmp_path_factory.mktemp("ownership-home")
    env = {**os.environ, "OWNERSHIP_HOME": str(home)}
    started = _cli(env, "start", "--head", "--num-cpus", "2", "--dashboard-port", "0")
    assert started.returncode == 0, started.stderr
    session = json.loads((home / "session.json").read_text())
    url = session["dashboard"]
    assert f"dashboard {url}" in started.stdout  # printed at start
    driver_proc = None
    try:
        driver_proc = subprocess.Popen(
            [sys.executable, str(HERE / "workload.py"), session["head"]],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        info = json.loads(_read_line(driver_proc, "READY ", 120))
        with chromium(width=1400, height=1000) as browser:
            yield Dashboard(url, env, session, info, driver_proc, browser)
    finally:
        if driver_proc is not None:
            driver_proc.stdin.close()
            try:
                driver_proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                driver_proc.kill()
                driver_proc.wait()
            driver_proc.stdout.close()
        stopped = _cli(env, "stop")
        assert stopped.returncode == 0, stopped.stderr


def test_cluster_page_shows_the_node_and_the_workers(dash):
    dash.open("cluster")
    (node,) = dash.session["nodes"]
    dash.wait(lambda b: dash.cells(f'#nodes tr[data-node="{node}"]'), f"node {node}")
    cells = dash.cells(f'#nodes tr[data-node="{node}"]')
    assert cells[1] == "alive" and "CPU" in cells[2]
    driver_row = f'#workers tr[data-worker="{dash.info["driver"]}"]'
    dash.wait(lambda b: "driver" in dash.cells(driver_row), "the driver among the workers")
    keeper_row = f'#workers tr[data-worker="{dash.info["keeper"]}"]'
    dash.wait(lambda b: "actor Keeper" in dash.cells(keeper_row), "the actor's worker")


def test_tasks_page_shows_counts_by_function_and_the_failed_traceback(dash):
    dash.open("tasks")
    row = '#functions tr[data-function="square"]'
    dash.wait(lambda b: dash.cells(row), "the square function")
    # function, progress, submitted, pending, running, finished, failed, retried
    cells = dash.cells(row)
    assert cells[0] == "square" and int(cells[2]) >= 20 and cells[5] == cells[2] and cells[6] == "0"
    failed = "#failed-tasks details[data-task]"
    dash.wait(lambda b: "parse_port" in dash.text_of(failed), "the failed parse_port task")
    assert "ValueError" in dash.text_of(f"{failed} summary")
    dash.click(f"{failed} summary")  # opens it, as a click does; it stays open across redraws
    dash.wait(lambda b: dash.text_of(f"{failed}[open] pre.traceback"), "the traceback")
    traceback = dash.text_of(f"{failed}[open] pre.traceback")
    assert "Traceback (most recent call last)" in traceback and "in parse_port" in traceback
    assert "invalid literal for int() with base 10: 'eighty'" in traceback
    retried = '#functions tr[data-function="dies_first_time"]'
    dash.wait(lambda b: dash.cells(retried), "the retried function")
    cells = dash.cells(retried)
    assert cells[5] == "1" and cells[7] == "1"  # finished once, after one retry


def test_tasks_page_updates_live_as_tasks_run(dash):
    dash.open("tasks")
    row = '#functions tr[data-function="square"]'
    dash.wait(lambda b: dash.cells(row), "the square function")
    before = int(dash.cells(row)[2])
    dash.driver_proc.stdin.write("more 7\n")
    dash.driver_proc.stdin.flush()
    assert _read_line(dash.driver_proc, "DONE ", WAIT) == "7"
    # No reload: the open page gets the news by server-sent events.
    dash.wait(lambda b: dash.cells(row)[2] == str(before + 7) and dash.cells(row)[5] == str(before + 7), "7 more square tasks, finished")


def test_task_stream_draws_each_attempt_and_the_killed_one(dash):
    dash.open("stream")
    # The runs a killed worker had not reported yet are lost with it; the
    # attempt that died with it is drawn from what its owner saw.
    dash.wait(lambda b: dash.count('#stream-svg rect.task[data-function="dies_first_time"]') == 2, "both attempts")
    assert dash.count('#stream-svg rect.task[data-function="square"][data-outcome="ok"]') >= 1
    assert dash.count('#stream-svg rect.task[data-function="dies_first_time"][data-outcome="killed"]') == 1
    assert dash.count('#stream-svg rect.task.retry[data-function="dies_first_time"][data-outcome="ok"]') == 1


def test_objects_page_shows_the_borrower_and_the_ownership_graph(dash):
    oid, keeper, owner = dash.info["shared"], dash.info["keeper"], dash.info["driver"]
    dash.open("objects")
    row = f'#objects-table tr[data-object="{oid}"]'
    dash.wait(lambda b: dash.cells(row), f"object {oid}")
    # object, owner, kind, status, size, copies, local, task refs, contained in, borrowers, held by
    cells = dash.cells(row)
    assert cells[1] == owner and cells[9] == keeper and cells[10] == keeper and cells[4] == "256 KiB"
    everything = dash.count("#objects-table tbody tr")
    dash.browser.find_element(By.ID, "filter").send_keys(oid)
    dash.wait(lambda b: dash.count("#objects-table tbody tr") == 1, "only that object under the filter")
    assert everything > 1  # the actor's handle is an object too
    dash.click(row)
    dash.wait(lambda b: dash.count('#graph-svg .gnode[data-kind="borrower"]'), "the borrower in the graph")
    nodes = dict(dash.attributes("#graph-svg .gnode", "data-node", "data-kind"))
    assert nodes == {f"process:{owner}": "owner", f"object:{oid}": "object", f"process:{keeper}": "borrower"}
    assert ["borrowed by"] in dash.attributes("#graph-svg line.edge", "data-kind")


def test_failures_page_lists_the_killed_worker_and_its_retried_task(dash):
    dash.open("failures")
    dash.wait(lambda b: dash.count("#deaths tbody tr"), "a death")
    text = dash.text_of("#deaths tbody tr")
    assert "worker" in text and "dies_first_time" in text and "retry" in text


def test_metrics_parse_with_prometheus_client(dash):
    from prometheus_client.parser import text_string_to_metric_families

    status, text = dash.get("metrics")
    assert status == 200
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    assert samples[("ownership_tasks_submitted_total", (("function", "square"),))] >= 20
    assert samples[("ownership_tasks_failed_total", (("function", "parse_port"),))] == 1
    assert samples[("ownership_tasks_retried_total", (("function", "dies_first_time"),))] == 1
    assert samples[("ownership_nodes", (("state", "alive"),))] == 1
    assert samples[("ownership_borrowers", ())] >= 1
    assert samples[("ownership_deaths_total", (("kind", "worker"),))] >= 1
    assert samples[("ownership_messages_sent_total", (("type", "PushTask"),))] >= 20
    assert samples[("ownership_recovery_seconds_count", ())] >= 1


def test_timeline_command_writes_chrome_trace_events(dash, tmp_path):
    out = tmp_path / "trace.json"
    done = _cli(dash.env, "timeline", "-o", str(out))
    assert done.returncode == 0, done.stderr
    trace = json.loads(out.read_text())
    tasks = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    assert {"dies_first_time", "Keeper.__init__", "Keeper.keep"} <= {e["name"] for e in tasks}
    for event in tasks:
        assert {"name", "ph", "ts", "dur", "pid", "tid"} <= set(event)
        assert isinstance(event["ts"], (int, float)) and event["dur"] >= 0
        assert isinstance(event["pid"], int) and isinstance(event["tid"], int)


def test_api_answers_a_bad_query_with_a_clear_400(dash):
    status, body = dash.get("api/nothing")
    assert status == 400 and "unknown view 'nothing'" in json.loads(body)["error"]
    status, body = dash.get("api/stream?window=soon")
    assert status == 400 and "window must be a number of seconds" in json.loads(body)["error"]
    status, body = dash.get("api/graph")
    assert status == 400 and "object=" in json.loads(body)["error"]
