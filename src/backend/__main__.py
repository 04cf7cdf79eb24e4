"""`python -m backend`: see `backend.serve`."""

import sys

from backend.serve import main

if __name__ == "__main__":
    sys.exit(main())
