import sys

from dltspec.cli import main

sys.exit(main())
