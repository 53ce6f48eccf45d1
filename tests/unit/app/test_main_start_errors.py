"""ipamd's entry point turns a path it cannot write at start into one line and exit status 1, not a
traceback: in a container with a read-only root, that is what an unmounted hostPath looks like."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_a_log_file_that_cannot_be_opened_is_one_line_and_exit_1(tmp_path: Path) -> None:
    (tmp_path / "not-a-dir").write_text("")
    log_file = tmp_path / "not-a-dir" / "ipamd.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "VPCCNI_"))}
    env["AWS_VPC_K8S_CNI_LOG_FILE"] = str(log_file)
    done = subprocess.run([sys.executable, "-m", "ipamd"], env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith(f"vpccni-ipamd: cannot start: cannot open the log file {log_file} "
                                  "(AWS_VPC_K8S_CNI_LOG_FILE): "), done.stderr
    assert len(done.stderr.splitlines()) == 1 and "Traceback" not in done.stderr
