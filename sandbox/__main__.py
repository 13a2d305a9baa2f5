"""`python -m sandbox`: the sandbox workspace (see sandbox/run.py)."""

import sys

from sandbox.run import main

sys.exit(main())
