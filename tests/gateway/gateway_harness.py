"""Moved to the test-support package: `from llmplatform_testing import gateway as h`.

Kept only so gateway tests written in parallel against the old module name still import while
their branches are merged; it defines nothing. Delete it once no test imports `gateway_harness`
(`grep -rn gateway_harness tests`).
"""

from llmplatform_testing.gateway import *  # noqa: F403
from llmplatform_testing.gateway import PLATFORM, UPSTREAM_KEY  # noqa: F401
from llmplatform_testing.metrics import metric_value  # noqa: F401
from llmplatform_testing.procs import Proc, cli, free_port  # noqa: F401
