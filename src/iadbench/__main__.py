import sys

from iadbench.cli import main

sys.exit(main())
