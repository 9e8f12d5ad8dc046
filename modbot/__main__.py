"""`python -m modbot` is the same as the `modbot` command."""

import sys

from modbot.cli import main

sys.exit(main())
