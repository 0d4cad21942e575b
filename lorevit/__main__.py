"""``python -m lorevit``: the command line."""
import sys

from lorevit.cli import main

sys.exit(main())
