"""`python -m serving MODULE:ATTR ...`: see `serving.server`."""

import sys

from serving.server import main

if __name__ == "__main__":
    sys.exit(main())
