import sys

from lorevit.cli import main

sys.exit(main())
