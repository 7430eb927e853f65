"""Implementation -> model over TCP: step logs of real processes, merged, checked by TLC.

One run of real processes shaped like Scheduling's Small model (two nodes
of one slot and one worker each, one owner on the first): the owner's
first task holds the first node's worker, so its second spills to the other
node, where its worker is SIGKILLed in the middle of it; the owner retries
it on the lease it still holds. The processes' step logs are merged and
validated against the spec.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import cloudpickle
import pytest
import trio

import ownership
from conformance.eventlog import read_log, write_log
from conformance.merge import StepLogError, event_log, merge_dir
from conformance.replay import model_constants
from conformance.specs import resolve_spec
from conformance.validate import validate
from ownership.cli import main
from ownership.runtime.cluster import cluster
from ownership.tla.itf import encode_value

# Workers cannot import this test module: ship its functions by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

REPO = Path(__file__).resolve().parents[2]
SPEC_DIR = REPO / "spec"
TRACES = REPO / "traces"


def _wait_for_file(path: str) -> None:
    """Inside a task: block until ``path`` exists (a cross-process barrier)."""
    while not os.path.exists(path):
        time.sleep(0.01)


@ownership.remote
def hold(release: str) -> str:
    _wait_for_file(release)
    return "held"


@ownership.remote
def killed_once(marker: str, never: str) -> str:
    if not os.path.exists(marker):
        Path(marker).write_text(str(os.getpid()))
        _wait_for_file(never)  # the test kills this worker here
    return "retried"


async def _until_exists(path: Path) -> None:
    with trio.fail_after(60):
        while not path.exists():
            await trio.sleep(0.01)


@pytest.fixture(scope="module")
def constants():
    # As the committed traces record them (the corpus drift test keeps them
    # those of the config); TLC reads them when there are none.
    return model_constants(resolve_spec("Scheduling", SPEC_DIR), "Small", TRACES)


@pytest.fixture(scope="module")
def tcp_run(constants, tmp_path_factory):
    """The step logs of the run described in the module doc."""
    nodes = sorted(constants["Nodes"])
    capacity = {constants["Capacity"][n] for n in nodes}
    per_node = {n: sum(1 for w in constants["Workers"] if constants["WorkerNode"][w] == n) for n in nodes}
    order = constants["SubmitOrder"]
    t1, t2 = order
    retries = constants["TaskRetries"]
    shape_ok = (
        len(constants["Owners"]) == 1
        and capacity == {1}
        and set(per_node.values()) == {1}
        and len(nodes) == 2
        and retries[t2] >= 1
        and len(constants["Keys"]) == 1
    )
    assert shape_ok, f"Scheduling Small changed shape ({constants}): adapt this run to it"
    tmp = tmp_path_factory.mktemp("tcp")
    log_dir = tmp / "steps"

    async def workload() -> None:
        config = {"pipeline_depth": 1, "max_pending_lease_requests": 1, "lease_idle_ticks": 1_000_000}
        async with cluster(nodes=len(nodes), num_cpus=1, config=config, event_log=log_dir) as local:
            with trio.fail_after(90):
                first = hold.options(max_retries=retries[t1]).remote(str(tmp / "release"))
                second = killed_once.options(max_retries=retries[t2]).remote(str(tmp / "marker"), str(tmp / "never"))
                await _until_exists(tmp / "marker")  # the second task runs on the other node's worker
                with pytest.raises(ValueError, match="not a worker of this cluster"):
                    local.kill_worker(os.getpid())
                (tmp / "release").touch()
                assert await first == "held"  # the owner keeps the idle lease (long idle timeout)
                local.kill_worker(int((tmp / "marker").read_text()))
                assert await second == "retried"

    trio.run(workload)
    return log_dir


def _header(constants) -> dict:
    return {"spec": "Scheduling", "config": "Small", "constants": {k: encode_value(v) for k, v in sorted(constants.items())}}


@pytest.mark.slow  # the TCP run (module fixture)
def test_tcp_run_with_a_worker_killed_mid_task_is_accepted(tcp_run, constants, tmp_path, capsys):
    status = main(["conformance", "log", "--from-dir", str(tcp_run), "--spec", "Scheduling", "--config", "Small",
                   "--traces", str(TRACES), "--spec-dir", str(SPEC_DIR), "-o", str(tmp_path / "run.ndjson")])
    text = capsys.readouterr().out
    assert status == 0, text
    assert "crashed: 127.0.0.1:" in text
    _header_data, lines = read_log(tmp_path / "run.ndjson")
    actions = [line.action for line in lines]
    t2 = constants["SubmitOrder"][1]
    crash = actions.index("WorkerCrash")
    killed = lines[crash].params["w"]
    # The killed worker never finished its task: its push is lost, the owner
    # hears of the death, resubmits, and reuses the lease it kept.
    assert not any(l.action == "WorkerExecute" and l.params["w"] == killed for l in lines)
    lost = [l for l in lines[crash:] if l.action == "LoseMessage"]
    assert [(l.params["m"]["type"], l.params["m"]["task"], l.params["m"]["worker"]) for l in lost] == [("PushTask", t2, killed)]
    assert actions[crash:].count("OwnerResubmit") == 1 and "OwnerReuseLease" in actions[crash:]
    assert actions.count("WorkerExecute") == 2 and actions[-1] == "OwnerHandleReply"
    clocks = [line.clock for line in lines]
    assert clocks == sorted(clocks)
    status = main(["conformance", "validate", str(tmp_path / "run.ndjson"), "--spec-dir", str(SPEC_DIR)])
    text = capsys.readouterr().out
    assert status == 0, text
    assert f"accepted: Scheduling (Small) can take all {len(lines)} lines" in text


@pytest.mark.slow  # the TCP run (module fixture)
def test_tcp_log_missing_a_send_is_rejected_at_its_receipt(tcp_run, constants, tmp_path):
    lines, _notes = event_log(merge_dir(tcp_run), "Scheduling", constants)
    spill = next(i for i, l in enumerate(lines) if l.action == "SchedulerSpillback")
    tampered = lines[:spill] + lines[spill + 1 :]
    receipt = next(i for i, l in enumerate(tampered) if l.action == "OwnerHandleSpillback")
    path = tmp_path / "tampered.ndjson"
    write_log(path, _header(constants), tampered)
    result = validate(path, resolve_spec("Scheduling", SPEC_DIR), "Small")
    assert not result.accepted
    # Every line before the redirect's receipt is taken; the receipt is not:
    # no Spillback was ever sent.
    assert result.consumed == receipt and result.failed == tampered[receipt]
    assert result.state is not None and not any(m["type"] == "Spillback" for m in result.state["msgs"])


@pytest.mark.slow  # the TCP run (module fixture)
def test_step_log_cut_short_is_read_to_its_last_complete_record(tcp_run, constants, tmp_path, capsys):
    copy = tmp_path / "steps"
    shutil.copytree(tcp_run, copy)
    victim = max(copy.glob("worker-*.steps"), key=lambda p: p.stat().st_size)
    whole = event_log(merge_dir(copy), "Scheduling", constants)[0]
    with open(victim, "ab") as f:
        f.write(b'{"seq":999,"time":1,"what":"Rec')  # a process killed in the middle of a write
    run = merge_dir(copy)
    assert any(str(victim) in note and "cut short" in note for note in run.notes), run.notes
    assert event_log(run, "Scheduling", constants)[0] == whole
    # A worker killed (or paused, then killed) between creating its log and
    # writing the header: an empty file, a process that took no step.
    unborn = copy / "worker-999999-1.steps"
    unborn.touch()
    run = merge_dir(copy)
    assert any(str(unborn) in note and "took no step" in note for note in run.notes), run.notes
    assert event_log(run, "Scheduling", constants)[0] == whole
    unborn.unlink()
    status = main(["conformance", "log", "--from-dir", str(copy), "--spec", "Scheduling", "--traces", str(TRACES),
                   "--spec-dir", str(SPEC_DIR), "-o", str(tmp_path / "cut.ndjson")])
    text = capsys.readouterr().out
    assert status == 0 and "cut short" in text and "kept the" in text, text


@pytest.mark.slow  # the TCP run (module fixture)
def test_bad_step_logs_get_a_clear_error_naming_the_file_and_line(tcp_run, tmp_path, capsys):
    with pytest.raises(StepLogError, match="no such folder"):
        merge_dir(tmp_path / "missing")
    with pytest.raises(StepLogError, match=r"no step logs \(\*\.steps\)"):
        merge_dir(tmp_path)
    copy = tmp_path / "steps"
    shutil.copytree(tcp_run, copy)
    victim = sorted(copy.glob("node-*.steps"))[0]
    lines = victim.read_text().splitlines(keepends=True)
    victim.write_text("".join(lines[:2] + lines[3:]))  # a record missing in the middle
    with pytest.raises(StepLogError, match=rf"{victim}:3: step 3 where step 2 was due"):
        merge_dir(copy)
    victim.write_text("".join(lines[:2] + ["{oops\n"] + lines[2:]))
    with pytest.raises(StepLogError, match=rf"{victim}:3: not JSON"):
        merge_dir(copy)
    # A log of another version: its messages' fields differ from this one's
    # (unpickled, they would lack fields), so it is refused, not misread.
    header = json.loads(lines[0])
    header["schema"] = "0123456789abcdef"
    victim.write_text("".join([json.dumps(header) + "\n"] + lines[1:]))
    with pytest.raises(StepLogError, match=rf"{victim}:1: written by another version of ownership \(message schema 0123456789abcdef"):
        merge_dir(copy)
    victim.write_text('{"format": "something else"}\n')
    status = main(["conformance", "log", "--from-dir", str(copy), "--spec", "Scheduling", "--spec-dir", str(SPEC_DIR)])
    text = capsys.readouterr().out
    assert status == 2 and f"{victim}:1: the first line must be a header" in text, text


async def test_cluster_refuses_an_event_log_folder_of_another_run(tmp_path):
    (tmp_path / "node-1-1.steps").write_text("")
    with pytest.raises(FileExistsError, match="already holds step logs"):
        async with cluster(nodes=1, num_cpus=1, event_log=tmp_path):
            pass
    assert [p.name for p in tmp_path.iterdir()] == ["node-1-1.steps"]  # refused before anything started or wrote


# ---------------------------------------------------------------------------
# The merge itself, on step logs written by the sink for stand-in cores
# ---------------------------------------------------------------------------


class _Core:
    """A stand-in core: answers each event with the effects it is given."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.answers: list = []

    def handle(self, event):
        return self.answers.pop(0) if self.answers else []


class _Shell:
    def __init__(self, address: str) -> None:
        self.address = address
        self.core = _Core(address)


def _two_processes(directory: Path, b_first: bool):
    """A sends m1 to B; B sends m2 to A. With ``b_first`` each receives the
    other's message before sending its own: no run can do that."""
    from ownership.core.events import Received, Send, Tick
    from ownership.core.messages import WorkerDied
    from ownership.runtime.steplog import StepLog

    log = StepLog(directory)
    a, b = _Shell("a:1"), _Shell("b:2")
    log.attach(a)
    log.attach(b)
    m1, m2 = WorkerDied(worker="x", node="a:1"), WorkerDied(worker="y", node="b:2")
    if b_first:
        b.core.handle(Received("a:1", m1))
        b.core.answers.append([Send("a:1", m2)])
        b.core.handle(Tick())
        a.core.handle(Received("b:2", m2))
        a.core.answers.append([Send("b:2", m1)])
        a.core.handle(Tick())
    else:
        # B logs its receipt first (a skewed clock, or a slow writer): the
        # merge must still put A's send first.
        b.core.handle(Received("a:1", m1))
        a.core.answers.append([Send("b:2", m1)])
        a.core.handle(Tick())
    log.close()
    return m1, m2


def test_merge_puts_each_receipt_after_its_send_whatever_the_times_logged(tmp_path):
    from ownership.core.events import Received

    m1, _m2 = _two_processes(tmp_path, b_first=False)
    run = merge_dir(tmp_path)
    assert [(s.process, type(s.event).__name__) for s in run.steps] == [("a:1", "Tick"), ("b:2", "Received")]
    send, receipt = run.steps
    assert send.clock < receipt.clock and receipt.event == Received("a:1", m1)
    assert any("no cluster.ndjson" in note for note in run.notes)


def test_merge_refuses_logs_that_contradict_causality(tmp_path):
    _two_processes(tmp_path, b_first=True)
    with pytest.raises(StepLogError, match="contradict causality"):
        merge_dir(tmp_path)


@pytest.mark.slow  # the TCP run (module fixture)
def test_tcp_run_is_accepted_with_the_model_sized_from_the_run(tcp_run):
    """No model config: the constants come from the run (every worker process
    a worker of the model, the killed one too), and every line is checked."""
    from conformance.sized import scheduling_log, validate_log

    run = merge_dir(tcp_run)
    constants, lines, _notes = scheduling_log(run, pipeline_depth=1)
    assert len(constants["Nodes"]) == 2 and len(constants["Owners"]) == 1 and len(constants["Tasks"]) == 2
    workers = [log for log in run.processes.values() if log.role == "worker"]
    assert len(constants["Workers"]) == len(workers) and constants["MaxCrashes"] >= 1
    # the owners' bounds come from their logs' headers; every worker joins its
    # node's pool when it registers
    assert constants["MaxPendingLeaseRequests"] == 1 and constants["Unregistered"] == constants["Workers"]
    result = validate_log(run, pipeline_depth=1)
    assert result["accepted"] and result["consumed"] == result["lines"] == len(lines), result
    assert {"WorkerCrash", "OwnerResubmit", "OwnerReuseLease", "SchedulerRegisterWorker"} <= {line.action for line in lines}


def test_a_sized_model_refuses_owners_with_different_bounds():
    from types import SimpleNamespace

    from conformance.sized import _owner_limit

    run = SimpleNamespace(processes={"a:1": SimpleNamespace(limits={"max_pending_lease_requests": 8}), "b:2": SimpleNamespace(limits={})})
    notes: list[str] = []
    assert _owner_limit(run, ["a:1", "b:2"], "max_pending_lease_requests", 1, notes) == 8 and notes == []
    assert _owner_limit(run, ["b:2"], "max_pending_lease_requests", 1, notes) == 1 and "1 assumed" in notes[0]
    run.processes["b:2"].limits["max_pending_lease_requests"] = 2
    with pytest.raises(StepLogError, match="different max_pending_lease_requests"):
        _owner_limit(run, ["a:1", "b:2"], "max_pending_lease_requests", 1, notes)


@pytest.mark.slow  # the TCP run (module fixture), and TLC once per window
def test_a_log_checked_in_windows_gets_the_verdict_of_the_whole_log(tcp_run):
    """Each window starts in the states the one before ended in, with the
    model cut to what its lines can touch (conformance.sized.window_model):
    the run's log is accepted in windows of a few lines, as in one, and a
    log missing a line of a later window is rejected at the same line."""
    from conformance.sized import scheduling_log, validate_lines

    run = merge_dir(tcp_run)
    constants, lines, _notes = scheduling_log(run, pipeline_depth=1)
    window = 6
    assert len(lines) > 2 * window, [line.action for line in lines]
    windowed = validate_lines(constants, lines, window=window)
    assert windowed["accepted"] and windowed["consumed"] == len(lines), windowed
    later = next(i for i, line in enumerate(lines) if i >= window and line.action in ("WorkerExecute", "SchedulerGrantLease"))
    missing = lines[:later] + lines[later + 1 :]
    whole = validate_lines(constants, missing, window=len(missing))
    in_windows = validate_lines(constants, missing, window=window)
    assert not whole["accepted"] and not in_windows["accepted"], (whole, in_windows)
    assert in_windows["consumed"] == whole["consumed"] >= window, (whole["summary"], in_windows["summary"])


@pytest.mark.slow  # the TCP run (module fixture)
def test_validate_command_checks_a_runs_step_logs_with_the_sized_model(tcp_run, tmp_path, capsys):
    assert main(["conformance", "validate", "--from-dir", str(tcp_run), "--window", "6"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("accepted: Scheduling accepted all") and "windows of 6" in out and "[/]" not in out, out
    mistakes = [
        ([], "give an event log LOG or --from-dir DIR"),
        (["x.ndjson", "--from-dir", str(tcp_run)], "one of the two"),
        (["--from-dir", str(tcp_run), "--config", "Small"], "no --config"),
        (["--from-dir", str(tmp_path / "none")], "no such folder"),
    ]
    for args, fragment in mistakes:
        assert main(["conformance", "validate", *args]) == 2, args
        out = capsys.readouterr().out
        assert fragment in out and "Traceback" not in out and len(out.strip().splitlines()) == 1, (args, out)
