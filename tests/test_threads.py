"""amt/threads.py: the load other programs put on the machine, and thread counts that give way to it."""

import subprocess
import sys
import time

import pytest
import torch

from amt.errors import AmtError
from amt.threads import CpuLoad, ThreadSettings, usable_cores


@pytest.fixture
def restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def spinning(count: int) -> list[subprocess.Popen]:
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    time.sleep(0.5)
    return spinners


def stop(spinners: list[subprocess.Popen]) -> None:
    for spinner in spinners:
        spinner.kill()
        spinner.wait()


def test_a_busy_program_counts_and_this_process_s_own_work_does_not():
    load = CpuLoad()
    end = time.monotonic() + 0.6
    while time.monotonic() < end:  # this process busy on one core
        pass
    own_only = load.others()
    spinners = spinning(1)
    try:
        load = CpuLoad()
        time.sleep(0.6)
        with_spinner = load.others()
    finally:
        stop(spinners)
    assert with_spinner - own_only > 0.5, (own_only, with_spinner)


def test_a_measurement_too_short_to_trust_goes_on_until_it_is_long_enough():
    load = CpuLoad()
    assert load.others() is None
    started = time.monotonic()
    assert load.others(wait=True) is not None and time.monotonic() - started < 0.5


@pytest.mark.skipif(usable_cores() < 2, reason="giving way needs a second core")
def test_auto_threads_give_a_busy_core_away_and_take_it_back(restore_threads):
    if CpuLoad().others(wait=True) > 0.5:
        pytest.skip("another program keeps a core busy already, so none comes back when the spinner stops")
    settings = ThreadSettings()
    spinners = spinning(1)
    try:
        busy = settings.apply(CpuLoad(), wait=True)
    finally:
        stop(spinners)
    time.sleep(0.3)
    idle = settings.apply(CpuLoad(), wait=True)
    assert busy < usable_cores() and idle > busy


def test_fixed_threads_are_applied_as_given(restore_threads):
    assert ThreadSettings(intra_op=1).apply(CpuLoad()) == 1 == torch.get_num_threads()


@pytest.mark.parametrize(
    ("options", "message"),
    [({"intra_op": 0}, "intra_op=0"), ({"intra_op": "all"}, "intra_op='all'"), ({"interop": 0}, "interop=0")],
)
def test_settings_a_run_cannot_use_are_refused_in_one_line(options, message):
    with pytest.raises(AmtError, match=message):
        ThreadSettings(**options)


def test_a_sweep_job_s_share_of_the_cpu_becomes_its_thread_setting():
    from omegaconf import OmegaConf

    from amt.jobs import apply_pinning

    cfg = OmegaConf.create({"threads": {"_target_": "amt.threads.ThreadSettings", "intra_op": "auto"}})
    OmegaConf.set_struct(cfg, True)
    apply_pinning({"threads": 1}, cfg)
    assert cfg.threads.intra_op == 1
    fixed = OmegaConf.create({"threads": {"intra_op": 2}})
    apply_pinning({"threads": 1}, fixed)
    assert fixed.threads.intra_op == 2  # a number the user chose stands
