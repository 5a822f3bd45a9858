# /// script
# requires-python = ">=3.10"
# dependencies = ["tabulate>=0.9"]
# ///
"""A uv: job with a dependency of its own: uv installs tabulate for this script
(cached after the first run); supertask's environment never sees it.

    supertask run --file examples/scripts/weather_report.py      # once, now
    supertask run --file examples/uv.yaml                        # on its schedule
"""

import os
import platform
import sys

from tabulate import tabulate

rows = [
    ["job", os.environ.get("SUPERTASK_JOB", "-")],
    ["run", os.environ.get("SUPERTASK_RUN_ID", "-")],
    ["scheduled", os.environ.get("SUPERTASK_SCHEDULED", "-")],
    ["python", platform.python_version()],
    ["args", " ".join(sys.argv[1:]) or "-"],
]
print(tabulate(rows, headers=["what", "value"]))
