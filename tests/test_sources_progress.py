"""Progress bars of the passes over a source (issue 12): the bar itself (the 2 s rule, totals
learnt as a Spark pass's stages start) and the Spark status-tracker counting, against scripted
trackers whose true task counts are known. The bars over real Dask and Spark passes are tested
in test_sources_dask.py and test_sources_spark.py (they reuse those modules' cluster and session),
with the helpers here."""

from __future__ import annotations

import re

import pytest

from mixedmodels.postestimation import progress as progress_module
from mixedmodels.postestimation.progress import Progress
from mixedmodels.sources.engines import _SparkTasks

pytest.importorskip("tqdm")


class Bars:
    """A ``progress(total, desc)`` factory that records its bars: ``bars.seen`` lists
    ``(desc, total, done, closed)`` of every bar it made."""

    def __init__(self):
        self.made: list[Bar] = []

    def __call__(self, total: int, desc: str) -> "Bar":
        bar = Bar(total, desc)
        self.made.append(bar)
        return bar

    @property
    def seen(self) -> list[tuple[str, int, int, bool]]:
        return [(b.desc, b.total, b.done, b.closed) for b in self.made]


class Bar:
    def __init__(self, total: int, desc: str):
        self.total, self.desc, self.done, self.closed = total, desc, 0, False

    def update(self, k: int = 1) -> None:
        self.done += k

    def add_total(self, k: int) -> None:
        self.total += k

    def close(self) -> None:
        self.closed = True


def last_states(err: str) -> dict[str, str]:
    """The last ``done/total`` that tqdm drew for each bar label in ``err``."""
    found = {}
    for line in re.split(r"[\r\n]+", err):
        match = re.match(r"\s*(.+? \((?:rows|partitions|tasks)\)): .*?(\d+/\d+) \[", line)
        if match:
            found[match.group(1)] = match.group(2)
    return found


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_auto_bar_opens_when_the_work_will_pass_2_s_and_counts_each_step_once(monkeypatch, capsys):
    clock = FakeClock()
    monkeypatch.setattr(progress_module.time, "perf_counter", clock)
    monkeypatch.setattr(progress_module, "interactive", lambda: True)
    bar = Progress(10, "pass 2 (partitions)", "auto")
    clock.now = 0.1
    bar.update(1)  # 0.1 s a step, 1 s in all: no bar
    assert bar.bar is None
    clock.now = 0.9
    bar.update(2)  # 0.3 s a step, 3 s in all: the bar opens at 3 of 10
    assert bar.bar is not None and bar.bar.n == 3
    bar.update(7)
    assert bar.bar.n == 10
    bar.close()
    assert last_states(capsys.readouterr().err) == {"pass 2 (partitions)": "10/10"}
    quiet = Progress(10, "x", "auto")
    monkeypatch.setattr(progress_module, "interactive", lambda: False)
    assert Progress(10, "x", "auto").enabled is False and quiet.enabled is True


def test_a_total_learnt_late_opens_the_forced_bar(capsys):
    bar = Progress(0, "pass 2 (tasks)", True)
    assert bar.bar is None  # nothing to draw before the first stage starts
    bar.add_total(2)
    bar.update(2)
    bar.add_total(3)  # the stage after a shuffle
    bar.update(3)
    assert (bar.bar.n, bar.bar.total) == (5, 5)
    bar.close()
    assert last_states(capsys.readouterr().err) == {"pass 2 (tasks)": "5/5"}
    off = Progress(0, "x", False)
    off.add_total(3)
    off.update(3)
    assert off.bar is None and capsys.readouterr().err == ""


class Job:
    def __init__(self, stage_ids, status="RUNNING"):
        self.stageIds, self.status = stage_ids, status


class Stage:
    def __init__(self, tasks, done=0, active=0):
        self.numTasks, self.numCompletedTasks, self.numActiveTasks = tasks, done, active


class Tracker:
    """Spark's StatusTracker as a script: the jobs and stages of one group at one moment."""

    def __init__(self):
        self.jobs, self.stages, self.active = {}, {}, []

    def getJobIdsForGroup(self, group):
        return list(self.jobs)

    def getJobInfo(self, job):
        return self.jobs.get(job)

    def getStageInfo(self, stage):
        return self.stages.get(stage)

    def getActiveStageIds(self):
        return list(self.active)


def test_spark_tasks_of_the_stages_that_ran():
    tracker, bars = Tracker(), Bars()
    bar = bars(0, "pass 2 (tasks)")
    tasks = _SparkTasks(tracker, "g", bar)
    assert tasks.look() is False  # no job yet
    tracker.jobs[0] = Job([0])  # AQE: the shuffle's map stage as a job of its own
    tracker.stages[0] = Stage(4, 1, 3)
    tracker.active = [0]
    tasks.look()
    assert (bar.total, bar.done) == (4, 1)
    tracker.jobs[0].status = "SUCCEEDED"
    tracker.stages[0] = Stage(4, 4)
    # the result job: stage 1 is skipped (its shuffle is written), stage 2 reads it
    tracker.jobs[1] = Job([1, 2])
    tracker.stages[1], tracker.stages[2] = Stage(4), Stage(3, 0, 2)
    tracker.active = [2]
    assert tasks.look() is False
    assert (bar.total, bar.done) == (7, 4)
    tracker.jobs[1].status = "SUCCEEDED"
    tracker.stages[2] = Stage(3, 3)
    tracker.active = []
    assert tasks.look() is True
    assert (bar.total, bar.done) == (7, 7)  # the skipped stage's 4 tasks never count
