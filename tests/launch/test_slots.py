"""The per-machine job cap used under submitit's local launcher."""

import threading
import time

from harness.launch.slots import default_slots, job_slot


def test_at_most_n_jobs_hold_a_slot(tmp_path):
    running, peak, lock = [0], [0], threading.Lock()

    def job():
        with job_slot(tmp_path, 2):
            with lock:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
            time.sleep(0.3)
            with lock:
                running[0] -= 1

    threads = [threading.Thread(target=job) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert peak[0] == 2 and running[0] == 0


def test_cap_only_for_submitit_local():
    assert default_slots("hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher") >= 1
    assert default_slots("hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher") is None
    assert default_slots("hydra._internal.core_plugins.basic_launcher.BasicLauncher") is None


def test_jobs_sharing_a_machine_split_its_cores():
    from harness.launch.slots import threads_per_job

    assert threads_per_job(None, 8) is None  # no cap: torch's default
    assert threads_per_job(2, 2) == 1 and threads_per_job(1, 2) == 2 and threads_per_job(4, 16) == 4
    assert threads_per_job(4, 2) == 1  # never 0 threads
