import sys

from charon_ci.cli import main

sys.exit(main())
