import sys

from dltspec.entry import main

sys.exit(main())
