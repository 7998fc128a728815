"""`python -m transfer ...` is the same as the `detstyle` command."""

import sys

from transfer.cli import main

sys.exit(main())
