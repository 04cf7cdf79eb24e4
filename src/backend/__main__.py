"""`python -m backend [--port 8000] [--workers N] ...`: the backend through `serving`."""

import sys

from serving.server import main

if __name__ == "__main__":
    sys.exit(main(["backend.main:app", *sys.argv[1:]]))
