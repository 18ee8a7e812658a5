"""`python -m wattserve.controller [options]`: same as `wattserve operator`."""

import sys

from wattserve.controller.cli import run

raise SystemExit(run(sys.argv[1:]))
