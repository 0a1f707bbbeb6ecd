"""``python -m edgeface.cli``: what the systemd unit's ExecStart= runs."""

import sys

from edgeface.cli import main

sys.exit(main())
